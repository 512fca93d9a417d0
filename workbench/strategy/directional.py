"""Directional strategies: enter on a signal, leave on take-profit, stop, time or the signal turning.

:class:`Directional` holds what the order-book-imbalance scalper, the mean-reversion and the momentum strategies
share: one position at a time, sized by :mod:`workbench.strategy.sizing`; entries as market orders (taker) or as
limits joining the touch (maker, cancelled after ``entry_timeout_ms``); exits as market orders. A subclass says
when to enter (:meth:`Directional.signal`: +1 long, -1 short, 0 nothing) and, optionally, when its signal no
longer holds a position (:meth:`Directional.signal_exit`). Decisions run every ``decide_every_ms`` of time, or on
every book update when it is 0.
"""

from __future__ import annotations

from workbench.strategy.base import Env, Strategy
from workbench.strategy.orders import OwnOrder
from workbench.strategy.params import Param
from workbench.strategy.sizing import SIZING_PARAMS, sized

__all__ = ["Directional", "DIRECTIONAL_PARAMS"]

DIRECTIONAL_PARAMS = (
    Param("decide_every_ms", 100, lo=0, hi=60_000, unit="ms", doc="decision interval (0: every book update)"),
    Param("entry", "market", choices=("market", "join"), doc="take liquidity, or join the touch as maker"),
    Param("entry_timeout_ms", 2000, lo=1, hi=600_000, unit="ms", doc="cancel an unfilled joining entry after"),
    Param("take_profit_ticks", 20, lo=1, hi=100_000, unit="ticks", doc="exit when the mid moved this far our way"),
    Param("stop_loss_ticks", 20, lo=1, hi=100_000, unit="ticks", doc="exit when the mid moved this far against"),
    Param("max_hold_ms", 30_000, lo=1, hi=86_400_000, unit="ms", doc="exit after holding this long"),
    Param("cooldown_ms", 1000, lo=0, hi=3_600_000, unit="ms", doc="no new entry this long after an exit"),
) + SIZING_PARAMS


class Directional(Strategy):
    """Base of the single-position directional strategies (see the module docstring)."""

    act_on_trade = False

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._entry_px = 0.0       # ticks, average of the entry fills
        self._entry_ns = 0
        self._last_exit_ns = -(2**62)
        self._pending: OwnOrder | None = None
        self.reset_signal()

    @property
    def act_on_book(self) -> bool:  # type: ignore[override]
        return self.params.decide_every_ms == 0

    # -- for subclasses ---------------------------------------------------------------------------------------------
    def reset_signal(self) -> None:
        """(Re)build the signal state, e.g. after a window parameter changed."""

    def observe(self, env: Env) -> None:
        """Take the current market into the signal state (called at every decision, before :meth:`signal`)."""

    def signal(self, env: Env) -> int:
        return 0

    def signal_exit(self, env: Env, position_side: int) -> bool:
        return False

    # -- the loop ---------------------------------------------------------------------------------------------------
    def on_params(self, env: Env, changes) -> None:
        self.reset_signal()

    def on_book(self, env: Env, symbol: str) -> None:
        self._decide(env)

    def on_timer(self, env: Env) -> None:
        self._decide(env)

    def on_fill(self, env: Env, order: OwnOrder, px_ticks: int, qty_lots: int, fee_units: int, is_maker: bool) -> None:
        pos = env.position_lots()
        before = pos - order.side * qty_lots
        if before == 0 or (before > 0) != (pos > 0):  # a new position (or a flip): its entry starts here
            self._entry_px, self._entry_ns = float(px_ticks), env.now_ns
        elif abs(pos) > abs(before):  # added to it: average the entry
            self._entry_px = (self._entry_px * abs(before) + px_ticks * qty_lots) / abs(pos)
        if pos == 0:
            self._last_exit_ns = env.now_ns

    def _decide(self, env: Env) -> None:
        p = self.params
        book = env.book()
        bid, ask = book.best_bid_ticks(), book.best_ask_ticks()
        if bid is None or ask is None:
            return
        self.observe(env)
        o = self._pending
        if o is not None:
            if o.state.is_open:
                if o.type.name != "MARKET" and env.now_ns - o.created_ns > p.entry_timeout_ms * 1_000_000:
                    env.cancel(o)
                return
            self._pending = None
        pos = env.position_lots()
        if pos:
            side = 1 if pos > 0 else -1
            mid = (bid + ask) / 2
            moved = side * (mid - self._entry_px)
            held_ms = (env.now_ns - self._entry_ns) / 1e6
            if (moved >= p.take_profit_ticks or moved <= -p.stop_loss_ticks or held_ms >= p.max_hold_ms
                    or self.signal_exit(env, side)):
                self._pending = env.market(-side, abs(pos), tag="exit")
            return
        if env.now_ns - self._last_exit_ns < p.cooldown_ms * 1_000_000:
            return
        sig = self.signal(env)
        if sig == 0:
            return
        qty = sized(p, env, None, sig)
        if qty <= 0:
            return
        if p.entry == "market":
            self._pending = env.market(sig, qty, tag="entry")
        else:
            self._pending = env.limit(sig, qty, bid if sig > 0 else ask, post_only=True, tag="entry")
