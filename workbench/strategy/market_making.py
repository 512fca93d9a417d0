"""Spread capture: quote both sides, skew by inventory, earn the spread and the maker rebate."""

from __future__ import annotations

from workbench.strategy.base import Env, Strategy
from workbench.strategy.orders import OrderState, OwnOrder
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

    def requote(self, env: Env) -> None:
        p = self.params
        book = env.book()
        bid, ask = book.best_bid_ticks(), book.best_ask_ticks()
        if bid is None or ask is None:
            return
        lot = float(env.instrument().lot_size)
        q = max(int(round(p.order_qty / lot)), 1)
        pos = env.position_lots()
        skew = int(round(p.skew_ticks * pos / q))
        targets = {1: bid - p.half_spread_ticks - skew, -1: ask + p.half_spread_ticks - skew}
        on = {1: pos + q <= p.max_position * q, -1: pos - q >= -p.max_position * q}
        kept: dict[int, OwnOrder] = {}
        for o in env.open_orders():
            if o.state in (OrderState.PENDING_NEW, OrderState.PENDING_CANCEL):
                continue  # a request in flight: leave it alone
            if on[o.side] and o.px_ticks == targets[o.side] and o.side not in kept:
                kept[o.side] = o
            else:
                env.cancel(o)
        busy = {o.side for o in env.open_orders() if o.state is OrderState.PENDING_NEW}
        for side in (1, -1):
            if on[side] and side not in kept and side not in busy:
                env.limit(side, q, targets[side], post_only=True, tag="bid" if side > 0 else "ask")
