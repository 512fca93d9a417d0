"""Backtesting: replay recordings through the venue with the same strategy, risk and order code as live."""
