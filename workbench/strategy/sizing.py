"""Position sizing: how many lots an entry asks for.

Three rules, combined: a fixed size (``order_qty``, base units), or a fraction of equity (``equity_frac`` of the
account's equity at the current price); then capped by the visible depth (``depth_cap_frac`` of the lots shown on
the book's best ``depth_levels`` levels of the side the order would take from). The risk guard applies
its own concentration limit afterwards; this is the strategy's choice, that is the account's limit.
"""

from __future__ import annotations

from decimal import Decimal

from workbench.strategy.params import Param

__all__ = ["SIZING_PARAMS", "sized"]

SIZING_PARAMS = (
    Param("size_mode", "fixed", choices=("fixed", "equity"), doc="fixed size, or a fraction of equity"),
    Param("order_qty", 0.001, lo=0.0, hi=1e9, unit="base", doc="order size in base units (size_mode fixed)"),
    Param("equity_frac", 0.01, lo=0.0, hi=1.0, doc="notional per entry as a fraction of equity (size_mode equity)"),
    Param("depth_cap_frac", 0.5, lo=0.0, hi=10.0, doc="at most this fraction of the visible depth (0: no cap)"),
)


def sized(params, env, symbol: str | None, side: int, *, depth_levels: int = 5) -> int:
    """Lots for an entry on ``side`` (+1 buy, -1 sell) under ``params`` (which include :data:`SIZING_PARAMS`)."""
    ins = env.instrument(symbol)
    lot = float(Decimal(ins.lot_size))
    book = env.book(symbol)
    if params.size_mode == "equity":
        bid, ask = book.best_bid_ticks(), book.best_ask_ticks()
        px_ticks = ask if side > 0 else bid
        if px_ticks is None:
            return 0
        px = px_ticks * float(Decimal(ins.tick_size))
        lots = int(env.equity() * params.equity_frac / px / lot)
    else:
        lots = int(round(params.order_qty / lot))
    if params.depth_cap_frac > 0:
        # what the book shows on the side the order would take from: more than that moves the price
        lots = min(lots, int(book.depth_lots(-side, depth_levels) * params.depth_cap_frac))
    return max(lots, 0)
