"""Backtests: a recording replayed through the simulated venue with the strategy and risk guard exactly as live.

>>> from workbench.backtest import Backtest, BacktestConfig, MarketData
>>> result = Backtest(MarketMaker(), MarketData(instrument, events), BacktestConfig()).run()
>>> result.metrics["net_pnl"], result.fills.head()
"""

from workbench.backtest.engine import Backtest, BacktestConfig, MarketData
from workbench.backtest.metrics import compute_metrics, markouts, round_trips
from workbench.backtest.results import BacktestResult

__all__ = ["Backtest", "BacktestConfig", "BacktestResult", "MarketData", "compute_metrics", "markouts",
           "round_trips"]
