"""The live engine: a strategy trading a Binance-protocol venue on its own event loop, in a daemon thread.

``Engine(strategy, config).start()`` returns at once; the engine runs on a loop of its own (uvloop where
installed) in a daemon thread, so a busy notebook cell never stalls it. :meth:`Engine.stop`, :meth:`pause`,
:meth:`resume`, :meth:`flatten`, :meth:`kill` and :meth:`set_params` may be called from any thread: each is carried
out on the engine's loop and returns once applied (idempotent: a second stop or kill does nothing).

Inside, as in the backtester: the feed (:class:`~workbench.live.feed.FeedClient`) keeps the local books; the
strategy gets ``on_book`` / ``on_trade`` / ``on_timer`` / ``on_order`` / ``on_fill`` with the engine's clock; every
order goes through the risk guard, then the executor (:class:`~workbench.live.executor.Executor`); the guard's
actions (cancel all, flatten) are carried out at once. Trading is halted while a symbol's book is out of sync
(orders for it are refused). A strategy that raises is stopped, and the guard kills: cancel all, flatten.
Kill = no new orders, ``openOrders.cancelAll``, flatten with market orders, then confirmed from the venue (no open
orders). With a journal, fills are written durably before they are applied.

Faults and halts: the engine refuses every strategy order while anything makes trading unsafe, and says why in
:attr:`Snapshot.halts` (and, with a journal, in its ``faults`` table: one row per fault, halt and resume). The
halts: a book out of sync (gap, crossed book, disconnect: until the feed is in sync again), the order connection
down or not yet reconciled (disconnect, ``serverShutdown``: until it is back and reconciled), a timestamp refused
with -1021 (until the clock has been checked against the venue's ``/api/v3/time``, and corrected if off), a 429
(-1003/-1015: for ``rate_limit_backoff_s``), an order whose execution status is unknown (until the venue says what
became of it; asked again every ``unknown_recheck_s``). The guard's own pauses (a stale book: > 300 ms without an
update; a wide spread) let only orders that reduce exposure pass, and its halts (a strategy that raised, a kill,
a breaker) none; they are listed too. Each fault, halt and resume is also one of :attr:`Snapshot.alerts`.

After a crash, a journal restores positions (its fills) and open orders (:meth:`OrderBook.restore`); the
executor reconciles them with the venue, the fills missed while the engine was down are fetched with ``myTrades``
and journaled, and only then does the strategy start.

:meth:`Engine.snapshot` returns the latest :class:`Snapshot` (book tops, position, P&L, guard state, counters),
published at ``snapshot_hz`` at most; the latest value wins.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from workbench.book.view import BookLevelsView
from workbench.exceptions import ConfigError
from workbench.instrument import Instrument
from workbench.live.executor import Credentials, Executor, ExecutorConfig
from workbench.live.feed import FeedClient, FeedConfig, Trade
from workbench.live.snapshot import Snapshot, Telemetry
from workbench.risk import GuardState, RiskConfig, RiskGuard
from workbench.risk.actions import GUARD_TAG, action_steps, flatten_lots
from workbench.strategy.base import Strategy
from workbench.strategy.orders import OrderBook, OrderState, OwnOrder
from workbench.venue.api import OrderType, TimeInForce

__all__ = ["EngineConfig", "Engine", "Snapshot"]

log = logging.getLogger("workbench.engine")


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Where to trade and how. ``rest``, ``stream``, ``ws_api``: the venue's URLs (``workbench venue`` prints them
    and writes them to its keys file)."""

    rest: str
    stream: str
    ws_api: str
    credentials: Credentials = field(repr=False)
    symbols: tuple[str, ...]
    risk: RiskConfig = field(default_factory=RiskConfig)
    journal_path: str | None = None
    snapshot_hz: float = 20.0             # as fast as a dashboard draws (20 Hz at most), so each frame has a new one
    snapshot_levels: int = 20              # book levels per side in each snapshot
    guard_tick_ms: int = 50
    flatten_timeout_s: float = 5.0
    cancel_on_stop: bool = True            # stop() cancels the engine's open orders and waits for the venue's answers
    control: bool = True                   # serve the control plane on 127.0.0.1
    control_port: int = 0                  # 0: a free port
    control_token: str | None = field(default=None, repr=False)  # None: a new random one
    rate_limit_backoff_s: float = 1.0      # after a 429 (-1003/-1015), no strategy order for this long
    unknown_recheck_s: float = 1.0         # an order of unknown status is asked about again this often
    # the account's equity at the start, quote currency (a decimal string; the backtester's ``initial_cash``): the
    # base of ``env.equity()`` and of the guard's drawdown and hourly-loss rules. None: measured from the venue at
    # start (account.status: quote balances plus base balances at mid). Without a base, the P&L since the start
    # would be the equity: a first small gain a positive peak, and any loss after it a "drawdown" of 100 %
    initial_equity: str | None = None
    # keep the tick-to-order path warm (opt-in): after this many us without a market frame, and every as many us
    # while that lasts, a dry tick runs the path on scratch objects (workbench.live.warm: nothing is sent, no state
    # of the engine or the strategy changes). A quiet market then finds code and data in the CPU's caches. On a
    # 2-vCPU VM they empty within ~0.5 ms of anything else (other tenants), so only a period of 100-200 us keeps
    # the path warm, and that needs busy_poll (asyncio's timers are 1 ms coarse): tick-to-order p50 ~300 us cold,
    # ~170 us at 1000 us, ~100-120 us at 200 us busy-polled (benchmarks/bench_engine.py). Its price: ~15-18 % of
    # a core at 1000 us while the market is quiet (1.8 % without); a frame that lands during a dry tick waits for
    # it. Off by default: hundreds of us matter on a colocated box, not behind a laptop's milliseconds to the
    # exchange. 0: off; under 1000 only with busy_poll
    keep_warm_us: int = 0
    # the engine's loop never sleeps: it polls its sockets without pause (a frame is read as soon as it lands, not
    # after the CPU wakes up) and keep-warm periods under 1 ms become possible. Its price: one core at 100 % for as
    # long as the engine runs, and in a notebook the kernel's own thread shares the GIL with a thread that never
    # waits (cells run slower). HFT engines run so on a dedicated core
    busy_poll: bool = False

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ConfigError("the engine needs at least one symbol")
        if self.initial_equity is not None:
            try:
                ok = Decimal(self.initial_equity).is_finite() and Decimal(self.initial_equity) > 0
            except Exception:
                ok = False
            if not ok:
                raise ConfigError(f"initial_equity must be a decimal string > 0, got {self.initial_equity!r}")
        if not 0 < self.snapshot_hz <= 1000:
            raise ConfigError("snapshot_hz must be in (0, 1000]")
        if self.keep_warm_us < 0:
            raise ConfigError("keep_warm_us must be >= 0 (0: off)")
        if 0 < self.keep_warm_us < 1000 and not self.busy_poll:
            raise ConfigError(f"keep_warm_us={self.keep_warm_us}: asyncio's timers are 1 ms coarse, so a period under "
                              "1000 us needs busy_poll=True (one core at 100 %)")

    @classmethod
    def from_keys_file(cls, path: str, symbols: tuple[str, ...], **kw) -> "EngineConfig":
        cred, urls = Credentials.from_keys_file(path)
        return cls(rest=urls["rest"], stream=urls["stream"], ws_api=urls["ws_api"], credentials=cred,
                   symbols=symbols, **kw)


class _LiveEnv:
    """The strategy's :class:`~workbench.strategy.base.Env` on the live engine."""

    def __init__(self, eng: "Engine") -> None:
        self._e = eng
        self.now_ns = time.time_ns()
        self.symbols = eng.config.symbols

    def _sym(self, symbol):
        return self.symbols[0] if symbol is None else symbol

    def instrument(self, symbol=None) -> Instrument:
        return self._e.instruments[self._sym(symbol)]

    def book(self, symbol=None):
        return self._e._views[self._sym(symbol)]

    def position_lots(self, symbol=None) -> int:
        return self._e.positions[self._sym(symbol)]

    def equity(self) -> float:
        return self._e._account_equity()

    def equity_units(self) -> int:
        return int(round(self._e._account_equity() * 1e6))

    def open_orders(self, symbol=None) -> list[OwnOrder]:
        return self._e.orders.open_orders(None if symbol is None else symbol)

    def limit(self, side, qty_lots, px_ticks, *, symbol=None, post_only=False, tif="GTC", tag=""):
        typ = OrderType.LIMIT_MAKER if post_only else OrderType.LIMIT
        return self._e._send(self._sym(symbol), side, typ, qty_lots, px_ticks, TimeInForce[tif], tag, "strategy")

    def market(self, side, qty_lots, *, symbol=None, tag=""):
        return self._e._send(self._sym(symbol), side, OrderType.MARKET, qty_lots, 0, TimeInForce.IOC, tag,
                             "strategy")

    def cancel(self, order) -> bool:
        coid = order if isinstance(order, str) else order.client_order_id
        return self._e._cancel(coid)

    def cancel_all(self, symbol=None) -> int:
        return sum(self._e._cancel(o.client_order_id) for o in self.open_orders(symbol))

    def log(self, message: str) -> None:
        log.info("strategy: %s", message)


class Engine:
    """Run ``strategy`` live with ``config`` (see the module docstring)."""

    def __init__(self, strategy: Strategy, config: EngineConfig) -> None:
        if strategy.n_symbols and len(config.symbols) != strategy.n_symbols:
            raise ConfigError(f"{type(strategy).__name__} trades {strategy.n_symbols} symbol(s), "
                              f"the config names {len(config.symbols)}")
        self.strategy = strategy
        self.config = config
        self.counters: Counter = Counter()
        self.orders = OrderBook("e" + format(time.time_ns() // 1_000_000 % (36**6), "x"))
        self.guard = RiskGuard(config.risk, config.symbols)
        self.instruments: dict[str, Instrument] = {}
        self.positions: dict[str, int] = {s: 0 for s in config.symbols}
        self._cash_units: dict[str, int] = {s: 0 for s in config.symbols}
        self._fee_units: dict[str, int] = {s: 0 for s in config.symbols}
        self._rebate_units: dict[str, int] = {s: 0 for s in config.symbols}  # sum of negative fees (rebates)
        self.risk_events: list = []
        self.last_error: str | None = None
        self.telemetry = Telemetry()
        self._units: dict[str, float] = {}
        self._closing = False
        self._equity_basis = 0.0               # see _measure_equity_basis
        self._assets: dict[str, tuple[str, str]] = {}
        self._param_specs = [dataclasses.asdict(p) for p in strategy.params.spec.values()]
        self._tick_ns = 0                  # perf_counter_ns of the book event being handled (0: none)
        self._sent_ns: dict[str, int] = {}  # client order id -> perf_counter_ns when sent, until its first report
        self._views: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._done = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._strategy_on = False  # True from on_start until it stops (or raises): no callback before on_start
        self.paused = False
        self._snapshot: Snapshot | None = None
        self._start_error: BaseException | None = None
        self.feed: FeedClient | None = None
        self.executor: Executor | None = None
        self.journal = None
        self.control = None
        self.env = _LiveEnv(self)
        self._halts: dict[str, str] = {}        # key -> why; strategy orders are refused while not empty
        self._halt_until: dict[str, float] = {}  # key -> monotonic time its halt ends by itself (429 backoff)
        self._unknown: dict[str, float] = {}     # client order id of unknown status -> monotonic time last asked
        self._rule_reasons: dict[str, str] = {}  # the guard's last reason per rule
        self._quiet_until_ns = 0                 # malformed input: noted at most once a second
        self._clock_task: asyncio.Task | None = None
        self._clock_base = None                  # the executor's clock before any correction
        self._clock_offset_ns = 0
        self.warmer = None                       # the keep-warm dry ticks (workbench.live.warm), while running

    def __repr__(self) -> str:
        return f"Engine({type(self.strategy).__name__}, {self.config.ws_api}, running={self.running})"

    # -- control, from any thread ---------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._done.is_set()

    def start(self, timeout: float = 30.0) -> "Engine":
        """Start the engine's thread and loop; returns once it trades (or raises what stopped it)."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._thread_main, name="workbench-engine", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("the engine did not start in time")
        if self._start_error is not None:
            raise self._start_error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop trading, close connections, end the thread. Idempotent.

        With ``cancel_on_stop`` (the default) the engine's open orders are cancelled first and the venue's answers
        awaited (up to ``flatten_timeout_s``), so that no fill happens after the journal closes; positions are kept
        (use :meth:`kill` to close them too). Without it, orders are left resting on the venue."""
        if self._thread is None or self._done.is_set():
            return
        self._call(self._shutdown(), timeout)
        self._thread.join(timeout)

    def pause(self) -> None:
        """No new orders from the strategy (it still sees the market); resting orders stay."""
        self._call(self._set_paused(True))

    def resume(self) -> None:
        self._call(self._set_paused(False))

    def flatten(self, timeout: float = 30.0) -> None:
        """Cancel everything and close every position with market orders; the strategy keeps running."""
        self._call(self._flatten(), timeout)

    def kill(self, reason: str = "kill switch", timeout: float = 30.0) -> bool:
        """Stop new orders, cancel all, flatten, and confirm from the venue; returns True once confirmed flat."""
        return self._call(self._kill(reason, "user"), timeout)

    def set_params(self, **values) -> list:
        """Change the strategy's parameters (each change is an event, and journaled)."""
        return self._call(self._set_params(values))

    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def command(self, name: str, **params) -> concurrent.futures.Future:
        """Send a control-plane command (``kill``, ``pause``, ``resume``, ``flatten``, ``stop``, ``set_params``) without
        waiting: the engine applies it on its loop; the returned future holds its result. For a caller that must not
        block, such as a button's handler on the kernel's thread."""
        cmd = self._control_commands().get(name)
        if cmd is None:
            raise ConfigError(f"unknown command {name!r}")
        loop = self._loop
        if loop is None or self._done.is_set():
            fut: concurrent.futures.Future = concurrent.futures.Future()
            fut.set_exception(RuntimeError("the engine is not running"))
            return fut
        return asyncio.run_coroutine_threadsafe(cmd(params), loop)

    def _call(self, coro, timeout: float = 30.0):
        loop = self._loop
        if loop is None or self._done.is_set():
            coro.close()
            return None
        if threading.current_thread() is self._thread:
            raise RuntimeError("call the engine's control methods from another thread, or await their coroutines")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    # -- the thread ---------------------------------------------------------------------------------------------------
    def _thread_main(self) -> None:
        from workbench.aio import run

        try:
            run(self._main())
        except BaseException as exc:  # a start that failed is raised by start(); later ones are in last_error
            if not self._started.is_set():
                self._start_error = exc
            else:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("engine stopped")
        finally:
            self._done.set()
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        cfg = self.config
        self.instruments, self._assets = await asyncio.to_thread(_exchange_info, cfg.rest, cfg.symbols)
        if cfg.journal_path:
            from workbench.journal import Journal

            self.journal = Journal(cfg.journal_path)
            self.journal.record_run(started_ns=time.time_ns(), strategy=type(self.strategy).__name__,
                                    params=self.strategy.params.as_dict(), venue_url=cfg.ws_api)
            self._restore()
        self.feed = FeedClient(FeedConfig(stream_url=cfg.stream, rest_url=cfg.rest, symbols=cfg.symbols),
                               self.instruments, on_book=self._on_book, on_trade=self._on_trade,
                               on_status=self._on_feed_status)
        self.executor = Executor(ExecutorConfig(ws_api_url=cfg.ws_api), cfg.credentials, self.instruments,
                                 self.orders, on_order=self._on_order, on_fill=self._on_fill,
                                 on_status=self._on_exec_status)
        self._views = {s: BookLevelsView(self.feed.book(s)) for s in cfg.symbols}
        self._tasks = [asyncio.create_task(self.feed.run(), name="engine-feed"),
                       asyncio.create_task(self.executor.run(), name="engine-executor")]
        await asyncio.wait_for(self.executor.ready.wait(), 30)  # restored orders are reconciled by now
        if self.journal is not None:
            await self._missed_fills()
        await asyncio.wait_for(self._all_in_sync(), 30)
        if cfg.initial_equity is None:
            await self._measure_equity_basis()
        self._tasks += [asyncio.create_task(self._guard_loop(), name="engine-guard"),
                        asyncio.create_task(self._snapshot_loop(), name="engine-snapshots")]
        if self.strategy.timer_ns:
            self._tasks.append(asyncio.create_task(self._timer_loop(), name="engine-timer"))
        if cfg.control:
            from workbench.live.control import ControlServer

            self.control = await ControlServer(self._control_commands(), self.snapshot, port=cfg.control_port,
                                               token=cfg.control_token, snapshot_hz=cfg.snapshot_hz).start()
        self.env.now_ns = time.time_ns()
        self._strategy_on = True
        self._strategy_call(self.strategy.on_start, self.env)
        if cfg.keep_warm_us or cfg.busy_poll:
            self._tasks.append(asyncio.create_task(self._warm_loop(), name="engine-keep-warm"))
        self._publish()
        self._started.set()
        await self._stopping.wait()

    async def _all_in_sync(self) -> None:
        while not all(self.feed.in_sync(s) for s in self.config.symbols):
            await asyncio.sleep(0.01)

    async def _shutdown(self) -> None:
        if self._stopping.is_set():
            return
        if self.control is not None:
            await self.control.stop()
        if self._strategy_on:
            self._strategy_call(self.strategy.on_stop, self.env)
        self._closing = True  # no strategy order from here on
        if self.config.cancel_on_stop and self.executor is not None:
            await self._cancel_open_orders()
        await self.feed.stop()
        await self.executor.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._publish(running=False)
        if self.journal is not None:
            self.journal.close()
        self._stopping.set()

    async def _cancel_open_orders(self) -> None:
        """Cancel every open order and wait (bounded) until the venue has answered for each: a fill that races the
        cancel is then reported, and journaled, before the engine goes."""
        for s in self.config.symbols:
            await self._cancel_all(s)
        deadline = time.monotonic() + self.config.flatten_timeout_s
        while self.orders.open_orders() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        left = self.orders.open_orders()
        if left:
            self.telemetry.alert(time.time_ns(), f"stop: {len(left)} order(s) not confirmed cancelled by the venue")
            log.warning("stop: %d order(s) not confirmed cancelled", len(left))

    # -- loops --------------------------------------------------------------------------------------------------------
    async def _timer_loop(self) -> None:
        period = self.strategy.timer_ns / 1e9
        nxt = time.monotonic()
        while True:
            nxt += period
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
            self.env.now_ns = time.time_ns()
            self.counters["decisions"] += 1
            if self._strategy_on:
                self._strategy_call(self.strategy.on_timer, self.env)

    async def _warm_loop(self) -> None:
        """Dry ticks of the tick-to-order path while no market frame has come for ``keep_warm_us`` (see
        :mod:`workbench.live.warm`), every ``keep_warm_us`` while that lasts; with ``busy_poll``, the loop's
        spinning too (this task yields to the loop without a timer, so the loop never waits in its poll). A dry
        tick that fails stops them (the engine trades on, only colder); the spinning goes on."""
        from workbench.live.warm import Warmer

        cfg = self.config
        period_ns = cfg.keep_warm_us * 1000
        warmer = None
        if period_ns:
            try:
                self.warmer = warmer = Warmer(self)
            except Exception:
                log.warning("keep-warm off: the dry path could not be built", exc_info=True)
        if warmer is None and not cfg.busy_poll:
            return
        try:
            if not cfg.busy_poll:
                await self._warm_every(warmer, period_ns)
            else:
                await self._spin(warmer, period_ns)
        finally:
            self.warmer = None

    async def _warm_every(self, warmer, period_ns: int) -> None:
        try:
            while True:
                await asyncio.sleep(period_ns / 1e9)
                quiet_ns = time.perf_counter_ns() - self.feed.recv_perf_ns
                if self._strategy_on and not self._closing and quiet_ns >= period_ns:
                    warmer.tick()
        except Exception:
            log.warning("keep-warm off: a dry tick failed", exc_info=True)

    async def _spin(self, warmer, period_ns: int) -> None:
        clock = time.perf_counter_ns
        feed = self.feed
        last_ns = 0
        while True:
            await asyncio.sleep(0)  # the loop polls its sockets (timeout 0: a callback is ready) and comes back
            if warmer is None:
                continue
            now = clock()
            # a dry tick every period_ns, and only once the market has been quiet as long
            if now - last_ns < period_ns or now - feed.recv_perf_ns < period_ns:
                continue
            last_ns = now
            if self._strategy_on and not self._closing:
                try:
                    warmer.tick()
                except Exception:
                    log.warning("keep-warm off: a dry tick failed (busy polling goes on)", exc_info=True)
                    self.warmer = warmer = None

    async def _guard_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.guard_tick_ms / 1000)
            now = time.time_ns()
            self._mark_guard(now)
            self.executor.roll_rate_windows()  # a count read before its window ended starts afresh
            self.guard.on_rate(now, self.executor.rate_usage)
            self.guard.tick(now)
            await self._drain_guard()
            self._watch()

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(1 / self.config.snapshot_hz)
            self._publish()

    def _publish(self, running: bool = True) -> None:
        now = time.time_ns()
        syms = self.config.symbols
        tops, sync, books = {}, {}, {}
        unreal = 0.0
        for s in syms:
            t = self.feed.book(s).top() if self.feed else None
            tops[s] = (t.bid_px_ticks, t.bid_qty_lots, t.ask_px_ticks, t.ask_qty_lots) if t else (None, 0, None, 0)
            sync[s] = bool(self.feed and self.feed.in_sync(s))
            view = self._views.get(s)
            if view is not None:
                n = self.config.snapshot_levels
                books[s] = {"bids": [list(x) for x in view.levels(1, n)],
                            "asks": [list(x) for x in view.levels(-1, n)]}
                mid, entry, pos = view.mid_ticks(), self.guard.avg_entry_ticks(s), self.positions[s]
                if pos and mid is not None and entry is not None:
                    unreal += pos * (mid - entry) * self._unit(s)
        cash = sum(self._cash_units[s] * self._unit(s) for s in syms)
        fees = sum(self._fee_units[s] * self._unit(s) for s in syms)
        equity = self._equity()
        tel = self.telemetry
        tel.peak_equity = max(tel.peak_equity, equity)
        self._snapshot = Snapshot(
            ts_ns=now, running=running and not self._done.is_set(), paused=self.paused,
            guard_state=self.guard.state.name, halted_by=self.guard.halted_by, tops=tops, in_sync=sync,
            positions=dict(self.positions), cash=cash, fees=fees, equity_change=equity,
            open_orders=len(self.orders.open_orders()), counters=dict(self.counters), last_error=self.last_error,
            strategy=type(self.strategy).__name__,
            instruments={s: [i.tick_size, i.lot_size] for s, i in self.instruments.items()},
            books=books, trades=list(tel.trades), fills=list(tel.fills),
            own_orders=[[o.symbol, o.side, o.px_ticks, o.open_lots, o.client_order_id]
                        for o in self.orders.open_orders()],
            realised=equity - unreal, unrealised=unreal,
            rebates=max(0.0, -sum(u * self._unit(s) for s, u in self._rebate_units.items())),
            peak_equity=tel.peak_equity, drawdown=tel.peak_equity - equity,
            breakers={k: list(v) for k, v in self.guard.breakers().items()},
            params=self.strategy.params.as_dict(), param_specs=self._param_specs, latency=tel.latency_summary(now),
            feed=tel.feed_health(now, self.counters), alerts=list(tel.alerts), halts=list(self._halt_texts()))

    # -- market events --------------------------------------------------------------------------------------------------
    def _on_book(self, symbol: str) -> None:
        view = self._views.get(symbol)
        if view is None:
            return
        view.invalidate()
        top = self.feed.top(symbol)  # computed by the feed after the change: no second kernel call
        view.set_top(top)
        now = time.time_ns()
        self.env.now_ns = now
        depth = self.feed.depth_lots  # measured by the kernel that applied the update, usually
        if depth is None:
            depth = view.depth_lots(1), view.depth_lots(-1)
        self.guard.on_book(now, symbol, top.bid_px_ticks, top.ask_px_ticks, depth[0], depth[1])
        self._schedule_guard()
        if self.strategy.act_on_book and self._strategy_on:
            self._tick_ns = self.feed.recv_perf_ns or time.perf_counter_ns()  # from the frame off the socket
            self._strategy_call(self.strategy.on_book, self.env, symbol)
            self._tick_ns = 0
        self.telemetry.on_book(now, symbol)  # bookkeeping for the views: after the decision, off its path

    def _on_trade(self, t: Trade) -> None:
        self.telemetry.on_trade(t.ts_ns, t.symbol, t.px_ticks, t.qty_lots, t.aggressor)
        if self.strategy.act_on_trade and self._strategy_on:
            self.env.now_ns = time.time_ns()
            self._strategy_call(self.strategy.on_trade, self.env, t.symbol, t.px_ticks, t.qty_lots, t.aggressor,
                                t.ts_ns)

    def _on_feed_status(self, symbol, what: str, detail: str) -> None:
        self.counters[f"feed_{what}"] += 1
        if what in ("gap", "disconnected", "resync"):
            log.warning("feed %s %s: %s", symbol or "", what, detail)
        if what == "in_sync":
            self._unhalt(f"book {symbol}", f"in sync again ({detail})")
            return
        self._note("feed", what, detail, symbol)
        if what in ("gap", "resync"):
            self._halt(f"book {symbol}", f"out of sync ({what}: {detail})")
        elif what == "disconnected":
            for s in self.config.symbols:
                self._halt(f"book {s}", f"feed disconnected ({detail})")

    def _on_exec_status(self, what: str, detail: str) -> None:
        self.counters[f"exec_{what}"] += 1
        log.warning("executor %s: %s", what, detail)
        self._note("executor", what, detail)
        if what in ("disconnected", "server_shutdown", "refused"):
            self._halt("orders", f"order connection {what.replace('_', ' ')} ({detail})")
        elif what == "clock":  # -1021 on the connection itself: check the clock; the executor retries meanwhile
            self._halt("clock", f"{detail}; checking the clock")
            if self._clock_task is None or self._clock_task.done():
                self._clock_task = asyncio.get_running_loop().create_task(self._check_clock())
        elif what == "unknown_status":
            coid = detail.split(":", 1)[0]
            o = self.orders.get(coid)
            if o is not None and o.state is OrderState.PENDING_NEW:  # it may be live at the venue, or not
                self._unknown[coid] = time.monotonic()
                self._halt(f"unknown {coid}", f"execution status of order {coid} unknown ({detail}); asking")

    # -- faults and halts ---------------------------------------------------------------------------------------------
    def _note(self, source: str, kind: str, detail: str, symbol: str | None = None) -> None:
        """A fault or what was done about it: an alert in the snapshot, a row in the journal."""
        now = time.time_ns()
        if kind == "malformed":  # a venue sending garbage could flood the journal: once a second is enough
            if now < self._quiet_until_ns:
                return
            self._quiet_until_ns = now + 1_000_000_000
        self.telemetry.alert(now, f"{source}{' ' + symbol if symbol else ''} {kind}: {detail}")
        if self.journal is not None:
            self.journal.record_fault(ts_ns=now, source=source, kind=kind, symbol=symbol or "", detail=detail)

    def _halt(self, key: str, reason: str) -> None:
        """No strategy order until :meth:`_unhalt` of ``key``."""
        if key not in self._halts:
            self._halts[key] = reason
            self._note("engine", "halt", f"{key}: {reason}")

    def _unhalt(self, key: str, why: str) -> None:
        if self._halts.pop(key, None) is not None:
            self._note("engine", "resume", f"{key}: {why}")

    def _halt_texts(self) -> tuple[str, ...]:
        out = [f"{k}: {v}" for k, v in self._halts.items()]
        if self.paused:
            out.append("paused by the user")
        if self.guard.state.name != "ACTIVE":
            for rule, (_v, _t, tripped) in self.guard.breakers().items():
                if tripped:
                    out.append(f"guard {self.guard.state.name} ({rule}): {self._rule_reasons.get(rule, '')}")
        return tuple(out)

    def _watch(self) -> None:
        """On the guard's tick: lift the halts whose cause is gone, ask again about orders of unknown status."""
        ex, now = self.executor, time.monotonic()
        if ex.ready.is_set():
            self._unhalt("orders", "order connection back, orders reconciled")
        else:
            self._halt("orders", "order connection not ready")
        for s in self.config.symbols:  # the feed's callbacks say it first; this catches any missed transition
            if self.feed.in_sync(s):
                self._unhalt(f"book {s}", "in sync")
            else:
                self._halt(f"book {s}", "out of sync")
        for key, until in list(self._halt_until.items()):
            if now >= until:
                del self._halt_until[key]
                self._unhalt(key, "backoff over")
        if self._unknown:
            ask = False
            for coid, asked in list(self._unknown.items()):
                o = self.orders.get(coid)
                if o is None or o.state is not OrderState.PENDING_NEW:
                    del self._unknown[coid]
                    self._unhalt(f"unknown {coid}", f"the venue says {o.state.name if o else 'nothing'}")
                elif now - asked >= self.config.unknown_recheck_s:
                    self._unknown[coid] = now
                    ask = True
            if ask and ex.ready.is_set():
                asyncio.get_running_loop().create_task(ex.reconcile())

    def _on_venue_refusal(self, o: OwnOrder) -> None:
        """A rejection that says trading is unsafe for now: a clock outside recvWindow, or a rate limit hit."""
        code = o.reason.split(":", 1)[0]
        if code == "-1021":
            self._halt("clock", f"order {o.client_order_id} refused: {o.reason}; checking the clock")
            if self._clock_task is None or self._clock_task.done():
                self._clock_task = asyncio.get_running_loop().create_task(self._check_clock())
        elif code in ("-1003", "-1015"):
            self._halt("rate limit", f"order {o.client_order_id} refused: {o.reason}; backing off "
                                     f"{self.config.rate_limit_backoff_s:g} s")
            self._halt_until["rate limit"] = time.monotonic() + self.config.rate_limit_backoff_s

    async def _check_clock(self) -> None:
        """Measure the signing clock against the venue's time (REST ``/api/v3/time``); correct it if it is off by
        more than 250 ms; then lift the clock halt. Retried until the venue answers."""
        ex = self.executor
        while True:
            t0 = ex.clock()
            try:
                server_ms = await asyncio.to_thread(_server_time_ms, self.config.rest)
            except (OSError, ValueError, KeyError) as exc:
                self.counters["clock_checks_failed"] += 1
                log.debug("clock check failed: %s", exc)
                await asyncio.sleep(0.25)
                continue
            t1 = ex.clock()
            off = server_ms * 1_000_000 - (t0 + t1) // 2
            if abs(off) > 250_000_000:
                if self._clock_base is None:
                    self._clock_base = ex.clock
                self._clock_offset_ns += off
                base, total = self._clock_base, self._clock_offset_ns
                ex.clock = lambda: base() + total
                self._note("engine", "clock_corrected", f"signing clock moved by {off / 1e6:+.0f} ms to the venue's")
            self._unhalt("clock", f"clock within {abs(off) / 1e6:.0f} ms of the venue's")
            return

    # -- orders -----------------------------------------------------------------------------------------------------------
    def _send(self, symbol, side, typ, qty_lots, px_ticks, tif, tag, source) -> OwnOrder | None:
        if side not in (1, -1) or int(qty_lots) <= 0:
            raise ConfigError(f"an order needs side +1/-1 and a size > 0, got side {side!r}, size {qty_lots!r}")
        if source == "strategy" and (self.paused or self._closing or self._halts or not self.feed.in_sync(symbol)):
            self.counters["orders_refused"] += 1  # paused, or unsafe (see _halts): trading is halted
            return None
        now = time.time_ns()
        v = self.guard.check_order(now, symbol, side, int(qty_lots),
                                   None if typ == OrderType.MARKET else int(px_ticks), source=source)
        self._schedule_guard()
        if not v.allowed or v.qty_lots <= 0:
            self.counters["orders_refused"] += 1
            return None
        o = self.orders.submit(symbol, side, typ, v.qty_lots, int(px_ticks), tif, now, tag=tag)
        self.counters["orders_sent" if source == "strategy" else "guard_orders"] += 1
        journal = self.journal
        if journal is not None:
            journal.intend_order(o)  # written ahead of the frame in microseconds; the SQLite row follows it
        self.executor.submit(o)  # the frame is on the socket when this returns (no task hop before it)
        t = time.perf_counter_ns()
        if journal is not None:
            journal.record_order(o, "sent")
        self._sent_ns[o.client_order_id] = t
        if self._tick_ns and source == "strategy":
            self.telemetry.latency["tick_to_order"].add(t - self._tick_ns)
        self.guard.on_rate(now, self.executor.rate_usage)  # counted at once: a burst meets the 90 % monitor in time
        self._schedule_guard()
        return o

    def _cancel(self, coid: str) -> bool:
        o = self.orders.get(coid)
        if o is None or not o.state.is_open:
            return False
        self.counters["cancels_sent"] += 1
        self.executor.submit_cancel(coid)
        return True

    def _on_order(self, o: OwnOrder) -> None:
        self.guard.on_rate(time.time_ns(), self.executor.rate_usage)  # the venue's counts, as of its answer
        self._schedule_guard()
        sent = self._sent_ns.pop(o.client_order_id, None)
        if sent is not None:
            self.telemetry.latency["order_ack"].add(time.perf_counter_ns() - sent)
        if self.journal is not None:
            self.journal.record_order(o, "report")
        if o.state is OrderState.REJECTED and o.reason[:1] == "-":
            self._on_venue_refusal(o)
        if self._strategy_on:
            self.env.now_ns = time.time_ns()
            self._strategy_call(self.strategy.on_order, self.env, o)

    def _on_fill(self, o: OwnOrder, px_ticks: int, qty_lots: int, fee_units: int, is_maker: bool,
                 trade_id: int) -> None:
        now = time.time_ns()
        if self.journal is not None:  # durable before it is applied
            if not self.journal.record_fill(ts_ns=now, symbol=o.symbol, trade_id=trade_id, side=o.side,
                                            px_ticks=px_ticks, qty_lots=qty_lots, fee_units=fee_units,
                                            is_maker=is_maker, client_order_id=o.client_order_id,
                                            order_id=o.order_id):
                return  # already journaled (a report seen again after a restart)
        s = o.symbol
        self.positions[s] += o.side * qty_lots
        self._cash_units[s] -= o.side * px_ticks * qty_lots + fee_units
        self._fee_units[s] += fee_units
        if fee_units < 0:
            self._rebate_units[s] += fee_units
        self.counters["fills"] += 1
        self.telemetry.on_fill(now, s, o.side, px_ticks, qty_lots, fee_units * self._unit(s), is_maker)
        self.guard.on_fill(now, s, o.side, px_ticks, qty_lots)
        self._schedule_guard()
        if self._strategy_on:
            self.env.now_ns = now
            self._strategy_call(self.strategy.on_fill, self.env, o, px_ticks, qty_lots, fee_units, is_maker)

    def _restore(self) -> None:
        """Positions from the journal's fills (the engine restarted after a crash); open orders are reconciled
        with the venue by the executor when it connects."""
        for sym, (pos, cash, fee) in self.journal.positions().items():
            if sym in self.positions:
                self.positions[sym], self._cash_units[sym], self._fee_units[sym] = pos, cash - fee, fee
        entries = self.journal.avg_entry_ticks()
        for sym, pos in self.positions.items():
            if pos:
                self.guard.set_position(time.time_ns(), sym, pos, entries.get(sym, 0))
        if self.journal.recovered_intents:
            self._note("engine", "recovered_intents", f"{self.journal.recovered_intents} order(s) written ahead but "
                                                      "not journaled at the crash: journaled as sent, reconciled")
        self.counters["restored_orders"] = self.orders.restore(self.journal.open_orders())
        if self.counters["restored_orders"]:
            self._note("engine", "restored", f"{self.counters['restored_orders']} open order(s) from the journal, "
                                             f"positions {self.positions}")

    async def _missed_fills(self) -> None:
        """Fills of restored orders the journal does not have (reported while the engine was down, or in flight
        at the crash), from the venue's own list (``myTrades``); journaled, then applied, each once."""
        short = [o for o in self.journal.orders_short_of_fills() if self.orders.get(o.client_order_id) is None]
        self.orders.restore(short)  # closed with fills the journal lacks: the crash fell between state and fill
        restored = [o for o in self.orders.orders.values() if o.order_id and o.filled_lots]
        on, self._strategy_on = self._strategy_on, False  # the strategy has not started: it hears of them as state
        n = 0
        try:
            for o in restored:
                trades = await self.executor.my_trades(o.symbol, o.order_id)
                if trades is None:
                    self._note("executor", "my_trades_failed", f"fills of {o.client_order_id} not fetched")
                    continue
                for t in trades:
                    before = self.counters["fills"]
                    self._on_fill(o, *t)
                    n += self.counters["fills"] - before
        finally:
            self._strategy_on = on
        if n:
            self._note("engine", "missed_fills", f"{n} fill(s) missed while down, journaled from myTrades")

    # -- the guard's actions ----------------------------------------------------------------------------------------------
    def _schedule_guard(self) -> None:
        if not self.guard.has_output:  # the common case, on the tick-to-order path: nothing to drain
            return
        ev = self.guard.drain_events()
        if ev:
            self.risk_events.extend(ev)
            for e in ev:  # journaled below as risk events; the alert and the rule's reason for the snapshot
                self._rule_reasons[e.rule] = e.reason
                self.telemetry.alert(e.ts_ns, f"risk {e.state_from.name} -> {e.state_to.name} ({e.rule}): {e.reason}")
            if self.journal is not None:
                for e in ev:
                    self.journal.record_risk_event(e)
        actions = self.guard.drain_actions()
        if actions:
            asyncio.get_running_loop().create_task(self._act(actions))

    async def _drain_guard(self) -> None:
        self._schedule_guard()

    async def _act(self, actions) -> None:
        for _, s, flatten in action_steps(actions, self.config.symbols):
            await self._cancel_all(s)
            if flatten:
                self._flatten_symbol(s)
        for a in actions:
            self.counters[f"guard_{a.kind.name.lower()}"] += 1

    async def _cancel_all(self, symbol: str) -> None:
        if any(o.symbol == symbol for o in self.orders.open_orders()):
            await self.executor.cancel_all(symbol)

    def _flatten_symbol(self, symbol: str) -> None:
        need = flatten_lots(self.positions[symbol], self.orders.open_orders(symbol))
        if need:
            self._send(symbol, 1 if need > 0 else -1, OrderType.MARKET, abs(need), 0, TimeInForce.IOC, GUARD_TAG,
                       "guard")

    # -- the control plane -----------------------------------------------------------------------------------------------
    @property
    def control_url(self) -> str | None:
        return self.control.url if self.control is not None else None

    @property
    def control_token(self) -> str | None:
        """The token a control-plane client must present (print it once; it is in no repr or log)."""
        return self.control.token if self.control is not None else None

    def _control_commands(self) -> dict:
        async def kill(p):
            return await self._kill(str(p.get("reason", "kill from the control plane")), "control")

        async def pause(p):
            await self._set_paused(True)

        async def resume(p):
            await self._set_paused(False)

        async def flatten(p):
            await self._flatten()

        async def stop(p):
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._shutdown()))
            return "stopping"

        async def set_params(p):
            return [{"name": c.name, "old": c.old, "new": c.new} for c in await self._set_params(p)]

        async def snapshot(p):
            return self._snapshot.to_dict() if self._snapshot else None

        return {"kill": kill, "pause": pause, "resume": resume, "flatten": flatten, "stop": stop,
                "set_params": set_params, "snapshot": snapshot}

    # -- commands on the loop -------------------------------------------------------------------------------------------
    async def _set_paused(self, on: bool) -> None:
        self.paused = on
        self._publish()

    async def _set_params(self, values: dict) -> list:
        changes = self.strategy.set_params(time.time_ns(), "user", **values)
        if changes:
            if self.journal is not None:
                for c in changes:
                    self.journal.record_param_change(c)
            self._strategy_call(self.strategy.on_params, self.env, changes)
        return changes

    async def _flatten(self) -> None:
        for s in self.config.symbols:
            await self._cancel_all(s)
            self._flatten_symbol(s)

    async def _kill(self, reason: str, source: str) -> bool:
        """Kill and wait until the venue shows no open order and every position is flat (or the timeout)."""
        self.guard.kill(time.time_ns(), reason=reason, source=source)
        self._schedule_guard()
        now = time.monotonic()
        deadline = now + self.config.flatten_timeout_s
        retry_s = max(self.config.rate_limit_backoff_s, 0.2)
        retry_at = now + retry_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            if any(self.positions.values()) or self.orders.open_orders():
                if time.monotonic() >= retry_at and "rate limit" not in self._halt_until:
                    # a flatten the venue refused (a rate limit, at the worst moment) goes again, paced: one still
                    # in flight is netted, so nothing is sent twice
                    retry_at = time.monotonic() + retry_s
                    for sym, pos in self.positions.items():
                        if pos:
                            self._flatten_symbol(sym)
                continue
            if await self._venue_confirms_flat():
                self.counters["kill_confirmed"] += 1
                self.telemetry.alert(time.time_ns(), "kill: the venue confirms no open orders, positions flat")
                self._publish()
                return True
        return False

    async def _venue_confirms_flat(self) -> bool:
        for s in self.config.symbols:
            if await self.executor.venue_open_orders(s) != []:
                return False
        return True

    # -- helpers --------------------------------------------------------------------------------------------------------
    def _strategy_call(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # the strategy's bug must not take the engine (or the account) with it
            self._strategy_on = False
            self.last_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            log.error("strategy stopped: %s", traceback.format_exc())
            self._note("strategy", "error", f"{self.last_error}; strategy stopped, the guard kills")
            self.guard.kill(time.time_ns(), reason=f"strategy raised {self.last_error}", source="engine")
            self._schedule_guard()

    def _unit(self, symbol: str) -> float:
        """Quote currency per (tick x lot) of ``symbol``."""
        u = self._units.get(symbol)
        if u is None:
            ins = self.instruments.get(symbol)
            if ins is None:
                return 0.0
            u = self._units[symbol] = float(Decimal(ins.tick_size) * Decimal(ins.lot_size))
        return u

    def _mark_guard(self, now_ns: int) -> None:
        """The account's equity to the guard (its drawdown and hourly-loss rules), as the backtester marks it."""
        self.guard.on_mark(now_ns, int(round(self._account_equity() * 1e6)))

    def _account_equity(self) -> float:
        """The account's equity (quote currency): ``initial_equity`` (or, without one, the account's value measured
        from the venue at start) plus :meth:`_equity`."""
        base = self.config.initial_equity
        return (float(Decimal(base)) if base is not None else self._equity_basis) + self._equity()

    async def _measure_equity_basis(self) -> None:
        """The account's value at start from ``account.status``: quote balances plus base balances at mid, less what
        :meth:`_equity` already counts (after a restart, the journal's earlier fills), so that drawdown and loss
        are fractions of the real account, not of the P&L since start (a first gain of cents would make any dip a
        drawdown of 100 %)."""
        balances = await self.executor.account_balances()
        if not balances:
            self._note("engine", "equity", "the venue did not answer account.status: the guard's drawdown and "
                                           "hourly-loss rules use the P&L since start; set EngineConfig.initial_equity")
            return
        value, quotes = Decimal(0), set()
        for sym, (base_asset, quote_asset) in self._assets.items():
            mid = self._views[sym].mid_ticks() if sym in self._views else None
            if mid is not None and base_asset in balances:
                value += balances[base_asset] * Decimal(repr(mid)) * Decimal(self.instruments[sym].tick_size)
            quotes.add(quote_asset)
        value += sum((balances.get(q, Decimal(0)) for q in quotes), Decimal(0))
        self._equity_basis = float(value) - self._equity()

    def _equity(self) -> float:
        """Cash moved by fills plus positions at mid, since the start (quote currency)."""
        eq = 0.0
        for s in self.config.symbols:
            pos = self.positions[s]
            mid = self._views[s].mid_ticks() if s in self._views else None
            eq += (self._cash_units[s] + (pos * mid if mid is not None else 0)) * self._unit(s)
        return eq

    @property
    def guard_state(self) -> GuardState:
        return self.guard.state


def _server_time_ms(rest: str) -> int:
    """The venue's time, ``GET /api/v3/time`` (epoch ms)."""
    import urllib.request

    with urllib.request.urlopen(f"{rest.rstrip('/')}/api/v3/time", timeout=5) as r:
        return int(orjson.loads(r.read())["serverTime"])


def _exchange_info(rest: str, symbols: tuple[str, ...]) -> tuple[dict[str, Instrument], dict[str, tuple[str, str]]]:
    """Instruments of ``symbols`` from ``GET /api/v3/exchangeInfo`` (tick from PRICE_FILTER, lot from LOT_SIZE),
    and their (base, quote) assets."""
    import urllib.request

    with urllib.request.urlopen(f"{rest.rstrip('/')}/api/v3/exchangeInfo", timeout=10) as r:
        info = orjson.loads(r.read())
    out, assets = {}, {}
    for s in info.get("symbols", []):
        if s.get("symbol") in symbols:
            assets[s["symbol"]] = (s.get("baseAsset", ""), s.get("quoteAsset", ""))
            f = {x["filterType"]: x for x in s.get("filters", [])}
            tick = Decimal(f["PRICE_FILTER"]["tickSize"]).normalize()
            lot = Decimal(f["LOT_SIZE"]["stepSize"]).normalize()
            out[s["symbol"]] = Instrument(s["symbol"], format(tick, "f"), format(lot, "f"))
    missing = [s for s in symbols if s not in out]
    if missing:
        raise ConfigError(f"the venue does not list {', '.join(missing)}")
    return out, assets
