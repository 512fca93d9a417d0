"""One strategy run across several instruments at once."""

from __future__ import annotations

from workbench.exceptions import ConfigError
from workbench.strategy.base import Env, Strategy
from workbench.strategy.orders import OwnOrder

__all__ = ["Portfolio"]


class _Bound:
    """The environment as one child sees it: its own symbol is the default, the rest is shared."""

    def __init__(self, env: Env, symbol: str) -> None:
        self._env = env
        self._symbol = symbol
        self.symbols = (symbol,)

    @property
    def now_ns(self) -> int:
        return self._env.now_ns

    def instrument(self, symbol=None):
        return self._env.instrument(symbol or self._symbol)

    def book(self, symbol=None):
        return self._env.book(symbol or self._symbol)

    def position_lots(self, symbol=None) -> int:
        return self._env.position_lots(symbol or self._symbol)

    def equity_units(self) -> int:
        return self._env.equity_units()

    def equity(self) -> float:
        return self._env.equity()

    def open_orders(self, symbol=None):
        return self._env.open_orders(symbol or self._symbol)

    def limit(self, side, qty_lots, px_ticks, *, symbol=None, **kw):
        return self._env.limit(side, qty_lots, px_ticks, symbol=symbol or self._symbol, **kw)

    def market(self, side, qty_lots, *, symbol=None, **kw):
        return self._env.market(side, qty_lots, symbol=symbol or self._symbol, **kw)

    def cancel(self, order) -> bool:
        return self._env.cancel(order)

    def cancel_all(self, symbol=None) -> int:
        return self._env.cancel_all(symbol or self._symbol)

    def log(self, message: str) -> None:
        self._env.log(f"[{self._symbol}] {message}")


class Portfolio(Strategy):
    """A portfolio runner: one single-instrument strategy class run on several instruments at once, one instance
    per instrument with the same parameters (changing a parameter changes it for every instance). Each instance sees
    its own symbol as the default in every call, so it runs unchanged; the account, its equity and the risk guard
    are shared, so the guard's limits hold for the portfolio as a whole.
    """

    name = "portfolio"
    summary = "run one strategy on several instruments"

    def __init__(self, strategy: type[Strategy], symbols: tuple[str, ...], **params) -> None:
        if strategy.n_symbols != 1:
            raise ConfigError(f"a portfolio runs single-instrument strategies; {strategy.__name__} trades "
                              f"{strategy.n_symbols}")
        if len(set(symbols)) != len(symbols) or not symbols:
            raise ConfigError("a portfolio needs distinct symbols")
        self.children = {s: strategy(**params) for s in symbols}
        self.params_spec = strategy.params_spec
        self.n_symbols = len(symbols)
        first = next(iter(self.children.values()))
        self.params = first.params  # for reading; set_params changes every child
        self._bound: dict[str, _Bound] = {}

    @property
    def act_on_book(self) -> bool:  # type: ignore[override]
        return any(c.act_on_book for c in self.children.values())

    @property
    def act_on_trade(self) -> bool:  # type: ignore[override]
        return any(c.act_on_trade for c in self.children.values())

    @property
    def timer_ns(self) -> int | None:
        return next(iter(self.children.values())).timer_ns

    def set_params(self, ts_ns: int, source: str = "user", **values):
        changes = []
        for c in self.children.values():
            changes = c.set_params(ts_ns, source, **values)
        return changes

    def _env(self, env: Env, symbol: str) -> _Bound:
        b = self._bound.get(symbol)
        if b is None or b._env is not env:
            b = self._bound[symbol] = _Bound(env, symbol)
        return b

    def on_start(self, env: Env) -> None:
        for s, c in self.children.items():
            c.on_start(self._env(env, s))

    def on_book(self, env: Env, symbol: str) -> None:
        c = self.children[symbol]
        if c.act_on_book:
            c.on_book(self._env(env, symbol), symbol)

    def on_trade(self, env: Env, symbol: str, px_ticks: int, qty_lots: int, aggressor: int, ts_ns: int) -> None:
        self.children[symbol].on_trade(self._env(env, symbol), symbol, px_ticks, qty_lots, aggressor, ts_ns)

    def on_timer(self, env: Env) -> None:
        for s, c in self.children.items():
            c.on_timer(self._env(env, s))

    def on_order(self, env: Env, order: OwnOrder) -> None:
        self.children[order.symbol].on_order(self._env(env, order.symbol), order)

    def on_fill(self, env: Env, order: OwnOrder, px_ticks: int, qty_lots: int, fee_units: int, is_maker: bool) -> None:
        self.children[order.symbol].on_fill(self._env(env, order.symbol), order, px_ticks, qty_lots, fee_units,
                                            is_maker)

    def on_params(self, env: Env, changes) -> None:
        for s, c in self.children.items():
            c.on_params(self._env(env, s), changes)

    def on_stop(self, env: Env) -> None:
        for s, c in self.children.items():
            c.on_stop(self._env(env, s))
