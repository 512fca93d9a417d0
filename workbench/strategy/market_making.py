"""Spread capture: quote both sides, skew by inventory, earn the spread and the maker rebate."""

from __future__ import annotations

import numpy as np

from workbench.strategy.base import Env, Strategy
from workbench.strategy.nb import mm_decide_nb
from workbench.strategy.params import Param

__all__ = ["MarketMaker"]


class MarketMaker(Strategy):
    """Spread capture / market making. Quote a post-only bid ``half_spread_ticks`` below the best bid and an ask as
    far above the best ask, ``order_qty`` each, and earn the spread (and the maker rebate, where the venue pays
    one) when both fill. Inventory is the risk: quotes shift by ``skew_ticks`` per ``order_qty`` held, against the
    position (long: both quotes lower, so the ask fills sooner and the bid later), and a side stops quoting when one
    more fill would take the position beyond ``max_position`` orders. Each decision keeps an acknowledged quote that
    sits exactly at its target, cancels every other one with no request in flight, and sends a new quote for each
    side that is on and has none (the same rules as the side-by-side benchmark against hftbacktest).

    The rule itself is :func:`workbench.strategy.nb.mm_decide_nb`, which this object calls on each decision and the
    backtester's compiled path calls from its kernel (:meth:`compiled`): one rule for live and backtest.
    """

    name = "market_maker"
    summary = "quote both sides with inventory skew (spread capture)"
    params_spec = (
        Param("decide_every_ms", 100, lo=0, hi=60_000, unit="ms", doc="requote interval (0: every book update)"),
        Param("half_spread_ticks", 1, lo=0, hi=10_000, unit="ticks", doc="quote this far outside the touch"),
        Param("order_qty", 0.01, lo=0.0, hi=1e9, unit="base", doc="size of each quote, base units"),
        Param("max_position", 10, lo=0, hi=100_000, unit="orders", doc="position limit in multiples of order_qty"),
        Param("skew_ticks", 0.0, lo=0.0, hi=10_000.0, unit="ticks", doc="quote shift per order_qty of inventory"),
    )

    @property
    def act_on_book(self) -> bool:  # type: ignore[override]
        return self.params.decide_every_ms == 0

    def on_timer(self, env: Env) -> None:
        self.requote(env)

    def on_book(self, env: Env, symbol: str) -> None:
        self.requote(env)

    def lots(self, env: Env) -> int:
        """``order_qty`` in lots of the instrument (at least 1)."""
        return max(int(round(self.params.order_qty / float(env.instrument().lot_size))), 1)

    def requote(self, env: Env) -> None:
        p = self.params
        book = env.book()
        bid, ask = book.best_bid_ticks(), book.best_ask_ticks()
        if bid is None or ask is None:
            return
        q = self.lots(env)
        opens = env.open_orders()
        n = len(opens)
        cancel = np.empty(n, np.int64)
        send_bid, px_bid, send_ask, px_ask = mm_decide_nb(
            bid, ask, env.position_lots(), q, p.half_spread_ticks, p.skew_ticks, p.max_position,
            np.array([o.side for o in opens], np.int64), np.array([o.px_ticks for o in opens], np.int64),
            np.array([int(o.state) for o in opens], np.int64), n, cancel)
        for o, c in zip(opens, cancel.tolist()):
            if c:
                env.cancel(o)
        if send_bid:
            env.limit(1, q, int(px_bid), post_only=True, tag="bid")
        if send_ask:
            env.limit(-1, q, int(px_ask), post_only=True, tag="ask")

    def compiled(self, lot_size: float) -> tuple[int, np.ndarray, np.ndarray] | None:
        """What the backtester's compiled path runs instead of the callbacks: ``(kind, int params, float
        params)`` for :func:`~workbench.strategy.nb.mm_decide_nb`, or None when a subclass changed a callback (its
        own code must run, so the Python paths take it). ``lot_size``: the instrument's, as a float."""
        cls = type(self)
        for name in ("on_start", "on_timer", "on_book", "on_trade", "on_order", "on_fill", "on_params", "on_stop",
                     "requote", "lots"):
            if getattr(cls, name) is not getattr(MarketMaker, name):
                return None
        p = self.params
        q = max(int(round(p.order_qty / lot_size)), 1)
        return STRAT_MM, np.array([q, p.half_spread_ticks, p.max_position], np.int64), np.array([p.skew_ticks])


#: :meth:`MarketMaker.compiled`'s kind (the compiled backtest's dispatch)
STRAT_MM = 1
