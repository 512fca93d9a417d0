"""The quick start in one object: the embedded simulated exchange and an engine trading it, in this process.

>>> with Sandbox(MarketMaker(order_qty=0.001)) as sb:     # doctest: +SKIP
...     sb.engine.snapshot()

The venue is the synthetic Binance-protocol market (:class:`~workbench.venue.SyntheticVenue`) served on 127.0.0.1
from a thread of its own; the engine is a normal :class:`~workbench.live.Engine` that reaches it by URL and key,
exactly as it would reach a real exchange. :meth:`Sandbox.stop` kills nothing: it stops the engine (resting orders
stay on the venue) and then the venue; call ``sandbox.engine.kill()`` first to leave flat.
"""

from __future__ import annotations

from workbench.live.engine import Engine, EngineConfig
from workbench.live.executor import Credentials
from workbench.risk import RiskConfig
from workbench.strategy import MarketMaker, Strategy
from workbench.venue import SyntheticVenue, new_api_key
from workbench.venue.server import ThreadedVenue

__all__ = ["Sandbox"]

USER = 1  # the synthetic venue's funded API user


class Sandbox:
    """``strategy`` (default: a small market maker) trading the synthetic market of ``symbols``, seeded ``seed``.

    ``risk`` defaults to the design's thresholds except the concentration cap, which is lifted to the whole visible
    depth: the synthetic book is thin, and 10 % of it is less than one minimum order. Other keywords go to
    :class:`~workbench.live.EngineConfig` (``journal_path``, ``snapshot_hz``, ``control``, ...).
    """

    def __init__(self, strategy: Strategy | None = None, *, symbols: tuple[str, ...] = ("BTCUSDT",), seed: int = 7,
                 risk: RiskConfig | None = None, **engine_kw) -> None:
        # re-quoting every 250 ms keeps the default well inside the venue's 50 orders / 10 s
        self.strategy = strategy or MarketMaker(half_spread_ticks=1, order_qty=0.001, max_position=3,
                                                decide_every_ms=250)
        self.venue = SyntheticVenue.default(symbols, seed=seed)
        self._key = new_api_key(USER)
        self._risk = risk or RiskConfig(max_depth_frac=1.0)
        self._engine_kw = engine_kw
        self.symbols = tuple(symbols)
        self.server: ThreadedVenue | None = None
        self.engine: Engine | None = None

    def __repr__(self) -> str:
        return f"Sandbox({type(self.strategy).__name__}, {', '.join(self.symbols)}, running={self.running})"

    @property
    def running(self) -> bool:
        return self.engine is not None and self.engine.running

    @property
    def urls(self) -> dict[str, str]:
        return self.server.urls if self.server else {}

    def start(self) -> "Sandbox":
        """Serve the venue, start the engine; returns once the engine trades."""
        if self.engine is not None:
            return self
        self.server = ThreadedVenue(self.venue, [self._key]).start()
        u = self.server.urls
        try:
            cfg = EngineConfig(rest=u["rest"], stream=u["stream"], ws_api=u["ws_api"],
                               credentials=Credentials(self._key.key, self._key.secret), symbols=self.symbols,
                               risk=self._risk, **self._engine_kw)
            self.engine = Engine(self.strategy, cfg).start()
        except BaseException:
            self.server.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the engine, then the venue. Idempotent."""
        if self.engine is not None:
            self.engine.stop()
        if self.server is not None:
            self.server.stop()

    def open_orders(self) -> list:
        """The user's open orders as the venue sees them (a check from outside the engine)."""
        return self.venue.open_orders(USER)

    def balances(self) -> dict:
        """The user's balances as the venue sees them, ``asset -> (free, locked)`` in lots or notional units."""
        return self.venue.balances(USER)

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
