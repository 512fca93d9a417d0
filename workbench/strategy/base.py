"""The strategy API: one object, run unchanged by the backtester and by the live engine.

A strategy reacts to what its environment (:class:`Env`) tells it, with the environment's time passed in through
``env.now_ns``; it never reads a clock, a socket or a file. It asks for orders through the environment, which
puts each request through the risk guard before it reaches the venue, and learns what happened to them through
:meth:`Strategy.on_order` (every state change of :mod:`workbench.strategy.orders`) and :meth:`Strategy.on_fill`.

Calls, in the environment's order of time:

- ``on_start(env)`` once, before the first event;
- ``on_book(env, symbol)`` after a venue message changed the local book (only if ``act_on_book``);
- ``on_trade(env, symbol, px_ticks, qty_lots, aggressor, ts_ns)`` for each public trade (only if ``act_on_trade``);
- ``on_timer(env)`` every ``timer_ns`` of time (None: never);
- ``on_order(env, order)`` / ``on_fill(env, order, px_ticks, qty_lots, fee_units, is_maker)``;
- ``on_params(env, changes)`` after :meth:`Params.set` changed something;
- ``on_stop(env)`` once, at the end.

The environment is the only way out; an exception escaping a callback stops the strategy (the guard flattens).
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from workbench.instrument import Instrument
from workbench.strategy.orders import OwnOrder
from workbench.strategy.params import Param, ParamChange, Params

__all__ = ["Env", "BookView", "Strategy"]


class BookView(Protocol):
    """The strategy's view of one symbol's book (the local book: what the feed has delivered)."""

    def best_bid_ticks(self) -> int | None: ...
    def best_ask_ticks(self) -> int | None: ...
    def levels(self, side: int, n: int) -> list[tuple[int, int]]: ...   # (px_ticks, qty_lots), best first
    def depth_lots(self, side: int, n_levels: int) -> int: ...          # size of the best n levels


class Env(Protocol):
    """What a strategy may see and do. Integers: ticks, lots, quote notional units (tick x lot); time in ns."""

    now_ns: int
    symbols: tuple[str, ...]

    def instrument(self, symbol: str | None = None) -> Instrument: ...
    def book(self, symbol: str | None = None) -> BookView: ...
    def position_lots(self, symbol: str | None = None) -> int: ...
    def equity_units(self) -> int: ...                                     # cash + positions at mid, quote units
    def open_orders(self, symbol: str | None = None) -> list[OwnOrder]: ...

    def limit(self, side: int, qty_lots: int, px_ticks: int, *, symbol: str | None = None,
              post_only: bool = False, tif: str = "GTC", tag: str = "") -> OwnOrder | None: ...
    def market(self, side: int, qty_lots: int, *, symbol: str | None = None, tag: str = "") -> OwnOrder | None: ...
    def cancel(self, order: OwnOrder | str) -> bool: ...
    def cancel_all(self, symbol: str | None = None) -> int: ...
    def log(self, message: str) -> None: ...


class Strategy:
    """Base class: subclasses set ``name``, ``params_spec`` and the ``act_on_*`` / ``timer_ns`` switches, and
    override the callbacks they need. ``symbols``: how many instruments it trades (pairs: 2)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params_spec: ClassVar[tuple[Param, ...]] = ()
    n_symbols: ClassVar[int] = 1
    act_on_book: ClassVar[bool] = True
    act_on_trade: ClassVar[bool] = False

    def __init__(self, **params) -> None:
        self.params = Params(self.params_spec, params)

    @property
    def timer_ns(self) -> int | None:
        """How often :meth:`on_timer` runs (ns), or None. The default reads a ``decide_every_ms`` parameter."""
        ms = self.params.as_dict().get("decide_every_ms")
        return None if not ms else int(ms * 1_000_000)

    def compiled(self, lot_size: float):
        """The strategy's decision rule as a kernel for the backtester's compiled path, or None (the default: the
        Python callbacks run). See :meth:`workbench.strategy.MarketMaker.compiled`."""
        return None

    def set_params(self, ts_ns: int, source: str = "user", **values) -> list[ParamChange]:
        return self.params.set(ts_ns, source, **values)

    # -- callbacks ----------------------------------------------------------------------------------------------------
    def on_start(self, env: Env) -> None: ...
    def on_book(self, env: Env, symbol: str) -> None: ...
    def on_trade(self, env: Env, symbol: str, px_ticks: int, qty_lots: int, aggressor: int, ts_ns: int) -> None: ...
    def on_timer(self, env: Env) -> None: ...
    def on_order(self, env: Env, order: OwnOrder) -> None: ...
    def on_fill(self, env: Env, order: OwnOrder, px_ticks: int, qty_lots: int, fee_units: int,
                is_maker: bool) -> None: ...
    def on_params(self, env: Env, changes: list[ParamChange]) -> None: ...
    def on_stop(self, env: Env) -> None: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"
