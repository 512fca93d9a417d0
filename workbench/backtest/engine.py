"""The backtester: a recording replayed through the venue in-process, the strategy and the risk guard exactly as live.

Two clocks, as in hftbacktest. The *exchange* (one :class:`~workbench.venue.replay.ReplayVenue` per symbol) runs on
the recording's exchange time with its queue model and fee schedule; the *strategy* runs on local time and sees
the market one feed latency late (:class:`~workbench.backtest.feed.LocalFeed`). An order reaches the exchange one
order-entry latency after the strategy sent it; what the exchange says (acknowledgement, rejection, fills,
cancels) reaches the strategy one response latency after it happened. Messages on one link keep their order
(:class:`~workbench.venue.latency.DelayLine`). The loop always takes the earliest next thing: a feed message, a
timer, an order reaching the exchange, an answer reaching the strategy; before a local event at ``t`` the exchange
is advanced to ``t - min response latency``, so every fill that could be known locally by ``t`` is.

Every order of the strategy goes through :class:`~workbench.risk.RiskGuard` first (refused: the call returns None
and the guard's event says why); the guard's actions (cancel all, flatten) are carried out by the runner as orders
of its own. A strategy that raises is stopped there: the guard is killed with the reason, everything is cancelled
and flattened, the run goes on to the end of the data and reports the error.

The fast path (:mod:`workbench.backtest.fast`): when one symbol is traded by a strategy that decides on a timer
only, with constant order-entry and response latencies, the same loop runs in numba between the strategy's
decisions (:func:`workbench.backtest.nb.run_nb`: the exchange, the queue positions, the fills, the local book) and
this class replays what it logged: the guard's book updates, the answers, the marks and the timers, through the same
methods as here. Results are identical; ``BacktestConfig.fast`` chooses (None: whenever it applies), ``path`` says
which ran and ``fast_path_reason`` why not.

The compiled path (:mod:`workbench.backtest.compiled`): when, on top of that, the strategy offers its decision rule
as a kernel (:meth:`Strategy.compiled <workbench.strategy.base.Strategy.compiled>`; the market maker does, and its
Python object calls the same kernel), that replay runs in numba too, with the risk guard's rules as kernels
(:mod:`workbench.risk.nb`, held equal to :class:`~workbench.risk.RiskGuard` by a property test) and the order state
machine on arrays; the frames are built from arrays at the end. Results are identical again;
``BacktestConfig.compiled`` chooses, ``compiled_reason`` says why not.

Accounting is in integers (lots, and notional units of tick x lot per symbol): cash moves by ``-side * px * qty -
commission`` for each fill, as the venue settles it. The account is a margin account: the venue lends the base
asset, so positions may go short, and equity is ``initial cash + cash moved + position x mid``. Deterministic for a
seed: the same data, strategy, parameters and config give the same fills.
"""

from __future__ import annotations

import heapq
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np

from workbench.book.view import BOOK_LEVELS, BookLevelsView
from workbench.exceptions import ConfigError
from workbench.instrument import Instrument
from workbench.risk import RiskConfig, RiskGuard
from workbench.risk.actions import GUARD_TAG, action_steps, flatten_lots
from workbench.strategy.base import Strategy
from workbench.strategy.orders import OrderBook, OrderState, OwnOrder
from workbench.strategy.params import ParamChange
from workbench.backtest import nb as fast_nb
from workbench.backtest.compiled import Bail, CompiledRun, compiled_reason
from workbench.backtest.fast import FastMarket, fast_path_reason
from workbench.backtest.feed import LocalFeed
from workbench.book.book import L2Book, TopOfBook
from workbench.venue.api import FeeSchedule, OrderRequest, OrderType, SymbolSpec, TimeInForce
from workbench.venue.latency import LatencyModel, SampledLatency
from workbench.venue.queue import ProbabilisticQueue, QueueModel
from workbench.venue.replay import ReplayVenue

__all__ = ["BacktestConfig", "MarketData", "Backtest", "BOOK_LEVELS"]

USER = 1
# Dense book window, ticks: +-524k ticks around the touch (+-$5,240 on BTCUSDT spot) is dense, farther levels (real
# snapshots reach $15k-$200k) live in the book's overflow map. A full-width 4 M-tick window costs 0.3 s of page
# faults per run to lay out, a third of the budget of a re-run.
_BOOK_MAX_LEVELS = 1 << 17
_BOOK_INITIAL_LEVELS = 1 << 17
_BIG_BALANCE = 1 << 62  # the venue lends: balances never bind (a margin account)


@dataclass(frozen=True, kw_only=True)
class BacktestConfig:
    """How a backtest runs. Latencies in ns of exchange time; fees in ppm of notional (100 ppm = 1 bp).

    latency : feed, order-entry and response legs (default: 1 ms constant each).
    feed_from_recording : the strategy receives each message at the recording's own receive time (shifted so the
        fastest message took 0 ns) instead of the exchange time plus a feed draw.
    queue : queue-position model of resting orders (default: hftbacktest's power-3 probabilistic model).
    fees : maker and taker rates (default Binance Spot's 0.1 % each; a negative maker rate is a rebate).
    initial_cash : account equity at the start, quote currency (a decimal string).
    risk : the guard's thresholds.
    mark_every_ns : how often the equity curve is sampled (and the guard's equity rules are fed).
    start_ns, end_ns : a window of the recording (exchange time), None for all of it.
    progress : a tqdm progress bar over the recording.
    fast : the numba fast path (:mod:`workbench.backtest.fast`): None uses it whenever it applies, True insists
        (ConfigError, with the reason, when it does not apply), False never uses it. Results are the same.
    compiled : the compiled path (:mod:`workbench.backtest.compiled`: the fast path with the strategy, the guard and
        the orders in the kernel too, for a strategy that offers a kernel): None whenever it applies, True insists,
        False never. Results are the same.
    """

    latency: LatencyModel = field(default_factory=lambda: LatencyModel.constant(1_000_000, 1_000_000))
    feed_from_recording: bool = False
    queue: QueueModel | None = None
    fees: FeeSchedule = FeeSchedule(maker_ppm=1000, taker_ppm=1000)
    initial_cash: str = "100000"
    risk: RiskConfig = field(default_factory=RiskConfig)
    seed: int = 0
    mark_every_ns: int = 100_000_000
    start_ns: int | None = None
    end_ns: int | None = None
    progress: bool = False
    fast: bool | None = None
    compiled: bool | None = None

    def __post_init__(self) -> None:
        if self.mark_every_ns <= 0:
            raise ConfigError("mark_every_ns must be > 0")
        try:
            cash = Decimal(self.initial_cash)
        except Exception:
            raise ConfigError(f"initial_cash must be a decimal string, got {self.initial_cash!r}") from None
        if not cash.is_finite() or cash <= 0:
            raise ConfigError(f"initial_cash must be > 0, got {self.initial_cash!r}")


@dataclass(frozen=True)
class MarketData:
    """One symbol's recording: normalized event rows (:data:`~workbench.types.event_dt`) and its instrument.

    The fast paths keep what they derive from the rows alone (the venue's merge order, the feed's messages) with
    this object, for the next run over it (a re-run after a slider moved): do not change ``events`` in place once
    it has been run; build another ``MarketData``.
    """

    instrument: Instrument
    events: np.ndarray
    base_asset: str = "BASE"
    quote_asset: str = "QUOTE"
    _prepared: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def symbol(self) -> str:
        return self.instrument.symbol


def _fresh_latency(model: LatencyModel, seed: int) -> LatencyModel:
    """The model with its sampled legs restarted from ``seed`` (a config reused for another run must draw the
    same delays again: a sampler carries its generator's state)."""

    def leg(x, k):
        return SampledLatency(x.samples_ns, seed=(x.seed or 0) + 1000 * seed + k) if isinstance(x, SampledLatency) \
            else x

    return LatencyModel(leg(model.feed, 1), leg(model.order_entry, 2), leg(model.response, 3))


class _Sym:
    """Everything of one symbol in a run."""

    def __init__(self, data: MarketData, cfg: BacktestConfig, queue: QueueModel, seed: int,
                 latency: LatencyModel) -> None:
        self.data = data
        self.symbol = data.symbol
        self.ins = data.instrument
        self.spec = SymbolSpec(data.instrument, data.base_asset, data.quote_asset)
        self._cfg, self._queue, self._seed, self._latency = cfg, queue, seed, latency
        self.book = L2Book(initial_levels=_BOOK_INITIAL_LEVELS, max_levels=_BOOK_MAX_LEVELS)  # the local book
        self.venue: ReplayVenue | None = None   # the Python path's exchange and feed (build_python)
        self.feed: LocalFeed | None = None
        self.view = BookLevelsView(self.book)
        self.unit = float(Decimal(data.instrument.tick_size) * Decimal(data.instrument.lot_size))  # currency/unit
        self.pos_lots = 0
        self.cash_units = 0    # cash moved by fills, notional units
        self.fee_units = 0
        self.last_mid = None   # ticks

    def build_python(self) -> None:
        cfg, data = self._cfg, self.data
        self.venue = ReplayVenue([data.events], self.spec, fees=cfg.fees, queue=self._queue, seed=self._seed,
                                 publish_market=False, book_max_levels=_BOOK_MAX_LEVELS,
                                 accounts={USER: {data.base_asset: _BIG_BALANCE, data.quote_asset: _BIG_BALANCE}})
        self.feed = LocalFeed(data.events, self._latency.feed, from_recording=cfg.feed_from_recording,
                              book_max_levels=_BOOK_MAX_LEVELS, book=self.book)


class _Env:
    """What the strategy is handed (:class:`~workbench.strategy.base.Env`)."""

    def __init__(self, bt: "Backtest") -> None:
        self._bt = bt
        self.now_ns = 0
        self.symbols = tuple(bt._syms)

    def _sym(self, symbol: str | None) -> _Sym:
        if symbol is None:
            return self._bt._first
        s = self._bt._syms.get(symbol)
        if s is None:
            raise ConfigError(f"unknown symbol {symbol!r} (this run trades {', '.join(self.symbols)})")
        return s

    def instrument(self, symbol: str | None = None) -> Instrument:
        return self._sym(symbol).ins

    def book(self, symbol: str | None = None) -> BookLevelsView:
        return self._sym(symbol).view

    def position_lots(self, symbol: str | None = None) -> int:
        return self._sym(symbol).pos_lots

    def equity_units(self) -> int:
        return self._bt._equity_micro()

    def equity(self) -> float:
        """Equity in quote currency (float, for display and sizing)."""
        return self._bt._equity()

    def open_orders(self, symbol: str | None = None) -> list[OwnOrder]:
        return self._bt.orders.open_orders(None if symbol is None else self._sym(symbol).symbol)

    def limit(self, side: int, qty_lots: int, px_ticks: int, *, symbol: str | None = None, post_only: bool = False,
              tif: str = "GTC", tag: str = "") -> OwnOrder | None:
        typ = OrderType.LIMIT_MAKER if post_only else OrderType.LIMIT
        return self._bt._send(self._sym(symbol), side, typ, qty_lots, px_ticks, TimeInForce[tif], tag, "strategy")

    def market(self, side: int, qty_lots: int, *, symbol: str | None = None, tag: str = "") -> OwnOrder | None:
        return self._bt._send(self._sym(symbol), side, OrderType.MARKET, qty_lots, 0, TimeInForce.IOC, tag, "strategy")

    def cancel(self, order: OwnOrder | str) -> bool:
        coid = order if isinstance(order, str) else order.client_order_id
        return self._bt._cancel(coid)

    def cancel_all(self, symbol: str | None = None) -> int:
        sym = None if symbol is None else self._sym(symbol).symbol
        return sum(self._bt._cancel(o.client_order_id) for o in self._bt.orders.open_orders(sym))

    def log(self, message: str) -> None:
        self._bt.log.append((self.now_ns, message))


# kinds of the scheduled items
_EX_PLACE, _EX_CANCEL = 0, 1            # reach the exchange
_LO_REPORT, _LO_REJECT, _LO_CANCEL_REJECT = 2, 3, 4  # reach the strategy


class Backtest:
    """Run ``strategy`` over ``data`` (one :class:`MarketData` per symbol the strategy trades).

    >>> result = Backtest(strategy, [MarketData(instrument, events)], BacktestConfig()).run()
    """

    def __init__(self, strategy: Strategy, data: MarketData | Sequence[MarketData],
                 config: BacktestConfig = BacktestConfig()) -> None:
        datas = [data] if isinstance(data, MarketData) else list(data)
        if not datas:
            raise ConfigError("a backtest needs data for at least one symbol")
        if strategy.n_symbols and len(datas) != strategy.n_symbols:
            raise ConfigError(f"{type(strategy).__name__} trades {strategy.n_symbols} symbol(s), "
                              f"got data for {len(datas)}")
        self.strategy = strategy
        self.config = config
        queue = config.queue if config.queue is not None else ProbabilisticQueue(3)
        self.latency = _fresh_latency(config.latency, config.seed)
        self._queue = queue
        self._syms: dict[str, _Sym] = {}
        for i, d in enumerate(datas):
            if d.symbol in self._syms:
                raise ConfigError(f"symbol {d.symbol} given twice")
            ev = d.events
            if config.start_ns is not None or config.end_ns is not None:
                lo = config.start_ns if config.start_ns is not None else np.iinfo(np.int64).min
                hi = config.end_ns if config.end_ns is not None else np.iinfo(np.int64).max
                ev = ev[(ev["ts_exch_ns"] >= lo) & (ev["ts_exch_ns"] <= hi)]
                d = MarketData(d.instrument, ev, d.base_asset, d.quote_asset)
            self._syms[d.symbol] = _Sym(d, config, queue, config.seed + i,
                                        _fresh_latency(config.latency, config.seed + 17 * (i + 1)))
        self._first = next(iter(self._syms.values()))
        self.initial_cash = float(Decimal(config.initial_cash))
        self.guard = RiskGuard(config.risk, tuple(self._syms))
        self.orders = OrderBook("bt")
        self.env = _Env(self)
        self.log: list[tuple[int, str]] = []
        self.error: str | None = None
        self.fills: list[tuple] = []
        self.marks: list[tuple] = []
        self.risk_events: list = []
        self.param_changes: list[ParamChange] = []
        self.counters = {"feed_messages": 0, "decisions": 0, "orders_sent": 0, "orders_refused": 0,
                         "cancels_sent": 0, "guard_orders": 0, "reports": 0}
        self._heap: list[tuple] = []
        self._seq = 0
        self._entry_last = -(2**63)   # order-entry link: keeps its order (one connection)
        self._resp_last = -(2**63)    # response link
        lat = self.latency
        self._min_resp = int(lat.response.samples_ns.min()) if hasattr(lat.response, "samples_ns") else \
            lat.response.draw_ns()
        self._strategy_on = True
        self._pending_params: list[dict] = []
        self._deferred_actions: list = []  # guard actions asked for while an order was checked: done at the next drain
        self._wall_s = 0.0
        self._fm: FastMarket | None = None
        self._fm_slot: dict[str, int] = {}          # client order id -> the fast path's order slot
        self._cr: CompiledRun | None = None         # the compiled path's run
        self.path: str | None = None               # "compiled", "fast" or "python", once run
        self.fast_path_reason: str | None = None   # why the fast path did not apply
        self.compiled_reason: str | None = None    # why the compiled path did not apply

    # -- public --------------------------------------------------------------------------------------------------------
    def set_params(self, **values) -> list[ParamChange]:
        """Change the strategy's parameters now (between runs, or from a callback of the run)."""
        changes = self.strategy.set_params(self.env.now_ns, "user", **values)
        if changes:
            self.param_changes.extend(changes)
            self._call(self.strategy.on_params, self.env, changes)
        return changes

    def run(self):
        """Run to the end of the data; returns a :class:`~workbench.backtest.results.BacktestResult`."""
        from workbench.backtest.results import BacktestResult

        t0 = time.perf_counter()
        self._choose_path()
        if self._cr is not None:
            try:
                self._loop_compiled()
            except Bail as exc:  # rare: run it again on the fast path, from the start
                self._restart(f"the compiled path gave up: {exc}")
                self._loop_fast()
        elif self._fm is not None:
            self._loop_fast()
        else:
            self._loop()
        self._wall_s = time.perf_counter() - t0
        return BacktestResult.from_backtest(self)

    # -- the loop --------------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        syms = list(self._syms.values())
        strat = self.strategy
        env = self.env
        timer_ns = strat.timer_ns
        per_message = strat.act_on_book or strat.act_on_trade
        firsts = [s.feed.next_arrival_ns() for s in syms]
        if all(f is None for f in firsts):
            return
        start = min(f for f in firsts if f is not None)
        env.now_ns = start
        next_timer = start + timer_ns if timer_ns else None
        next_mark = start
        self._call(strat.on_start, env)
        bar = self._progress(syms)
        heap = self._heap
        ended = False
        while True:
            # the next local event
            t_feed, feed_sym = None, None
            for s in syms:
                a = s.feed.next_arrival_ns()
                if a is not None and (t_feed is None or a < t_feed):
                    t_feed, feed_sym = a, s
            if t_feed is None and not ended:
                ended = True
                # the data has ended: no more timers; the exchange plays the recording to its end (its clock stops
                # at the last recorded time, not at the end of time: an order in flight then lands at its own
                # time, and the last mark is taken a latency later, not in the next century), and what is in
                # flight still lands
                next_timer = next_mark = None
                self._advance_exchanges(syms, max(int(s.data.events["ts_exch_ns"].max()) for s in syms
                                                  if len(s.data.events)))
            t_local = t_feed
            if next_timer is not None and self._strategy_on and next_timer < t_local:
                t_local = next_timer
            if next_mark is not None and next_mark < t_local:
                t_local = next_mark
            t_heap = heap[0][0] if heap else None
            if t_local is None and t_heap is None:
                break
            if t_heap is not None and heap[0][2] in (_EX_PLACE, _EX_CANCEL) and (
                    t_local is None or t_heap + self._min_resp <= t_local):
                self._exchange_step(heapq.heappop(heap))
                continue
            # what the exchange did until t_local - min response may reach the strategy by t_local
            if t_local is not None:
                self._advance_exchanges(syms, t_local - self._min_resp)
            t_heap = heap[0][0] if heap else None
            if t_heap is not None and (t_local is None or t_heap <= t_local):
                item = heapq.heappop(heap)
                if item[2] in (_EX_PLACE, _EX_CANCEL):
                    self._exchange_step(item)
                else:
                    env.now_ns = max(env.now_ns, item[0])
                    self._local_answer(item)
                    self._after_event()
                continue
            if t_local is None:  # only exchange items left: drained above
                continue
            env.now_ns = max(env.now_ns, t_local)
            if t_local == next_mark:
                self._mark(syms)
                next_mark += self.config.mark_every_ns
                continue
            if t_local == next_timer:
                next_timer += timer_ns
                self._timer(t_local)
                continue
            # a feed message
            s = feed_sym
            if per_message:
                rows = s.feed.apply_next()
                self.counters["feed_messages"] += 1
                s.view.invalidate()
                self._book_to_guard(s, t_local)
                if s.feed.msg_is_trade[s.feed.next_msg - 1]:
                    if strat.act_on_trade and self._strategy_on:
                        for r in rows:
                            self._call(strat.on_trade, env, s.symbol, int(r["px_ticks"]), int(r["qty_lots"]),
                                       int(r["side"]), int(r["ts_exch_ns"]))
                elif strat.act_on_book and self._strategy_on:
                    self.counters["decisions"] += int(timer_ns is None)
                    self._call(strat.on_book, env, s.symbol)
            else:
                # nothing reads single messages: take every message until the next other event in one call
                bound = min(x for x in (next_timer, next_mark, heap[0][0] if heap else None) if x is not None) \
                    if (next_timer is not None or next_mark is not None or heap) else np.iinfo(np.int64).max
                until = max(t_local, min(bound - 1, self._next_feed_other(s, syms)))  # this message at least
                self.counters["feed_messages"] += s.feed.apply_until(until)
                s.view.invalidate()
                self._book_to_guard(s, t_local)
            if bar is not None:
                bar.update(1)
        if self._strategy_on:
            self._call(strat.on_stop, env)
        self._mark(syms)
        if bar is not None:
            bar.close()

    def _choose_path(self) -> None:
        """The fast path when it applies (and the config allows it), else the Python path's venue and feeds."""
        cfg = self.config
        self._fm = None
        reason = "BacktestConfig(fast=False)"
        if cfg.fast is not False:
            reason = fast_path_reason(self.strategy, len(self._syms), cfg, self._queue)
            if reason is None:
                s = self._first
                # the symbol's own latency draws (restarted from the seed), as the Python path's feed takes them
                self._fm, reason = FastMarket.build(s.data.events, s.spec, replace(cfg, latency=s._latency),
                                                    self._queue, cfg.fees, s.book, _BOOK_MAX_LEVELS, _BIG_BALANCE,
                                                    _BOOK_INITIAL_LEVELS, s.data._prepared)
            if self._fm is not None:
                # the kernel stops where Python may send an order: after each book update when the guard's trade
                # stop can act on it, after each answer when the strategy (or the trade stop) reacts to answers
                stop = cfg.risk.trade_stop_ticks is not None
                cls = type(self.strategy)
                reacts = cls.on_order is not Strategy.on_order or cls.on_fill is not Strategy.on_fill
                per_message = self.strategy.act_on_book  # messages one at a time, the strategy after each
                self._fm.S[fast_nb.S_PER_MSG] = per_message
                self._fm.S[fast_nb.S_STOP_AT_BOOK] = stop or per_message
                self._fm.S[fast_nb.S_STOP_AT_ANSWER] = stop or reacts
            if self._fm is None and cfg.fast:
                raise ConfigError(f"the fast path does not apply: {reason}")
        self._cr = None
        self.compiled_reason = reason if reason is not None else compiled_reason(self)
        if self._fm is not None and self.compiled_reason is None:
            self._cr = CompiledRun(self, self._fm)
        elif cfg.compiled:
            raise ConfigError(f"the compiled path does not apply: {self.compiled_reason}")
        self.fast_path_reason = reason
        self.path = "compiled" if self._cr is not None else "fast" if self._fm is not None else "python"
        if self._fm is None:
            for s in self._syms.values():
                s.build_python()

    def _restart(self, why: str) -> None:
        """Back to the state before the run, on the fast path (the compiled path gave up)."""
        changes, log = self.param_changes, self.log
        self.__init__(self.strategy, [s.data for s in self._syms.values()], replace(self.config, compiled=False))
        self.param_changes, self.log = changes, log
        self._choose_path()
        self.compiled_reason = why
        if self._fm is None:  # pragma: no cover - the fast path applied a moment ago
            raise RuntimeError(why)

    def _loop_compiled(self) -> None:
        """:meth:`_loop_fast` in one kernel (:mod:`workbench.backtest.compiled`); then the run's totals."""
        fm, cr, s = self._fm, self._cr, self._first
        timer_ns = self.strategy.timer_ns
        if fm.n_messages == 0:
            return
        start = int(fm.FD[2, 0])
        fm.start(start + timer_ns if timer_ns else None, start, timer_ns, self.config.mark_every_ns)
        cr.run(start, timer_ns)
        s.view.invalidate()  # the local book took its final state
        self.env.now_ns = int(cr.C[fast_nb.C_NOW])
        s.pos_lots, s.cash_units, s.fee_units, s.last_mid = cr.position()
        self.counters.update(cr.counters())
        self.risk_events = cr.risk_events()

    def _loop_fast(self) -> None:
        """:meth:`_loop` with the market in :func:`workbench.backtest.nb.run_nb`: this replays what it logged."""
        fm = self._fm
        s = self._first
        syms = [s]
        strat, env, guard = self.strategy, self.env, self.guard
        timer_ns = strat.timer_ns
        per_message = strat.act_on_book
        if fm.n_messages == 0:
            return
        start = int(fm.FD[2, 0])
        env.now_ns = start
        fm.start(start + timer_ns if timer_ns else None, start, timer_ns, self.config.mark_every_ns)
        self._call(strat.on_start, env)
        bar = self._progress(syms)
        S, symbol, coids, view, drain = fm.S, s.symbol, fm.coids, s.view, self._drain_guard
        run, on_book, mark, timer = fm.run, guard.on_book, self._mark, self._timer
        LG_BOOK, LG_ANSWER, LG_MARK = fast_nb.LG_BOOK, fast_nb.LG_ANSWER, fast_nb.LG_MARK
        ANS_REPORT, ANS_REJECT = fast_nb.ANS_REPORT, fast_nb.ANS_REJECT
        S_LOG_N, S_STRAT_ON, S_STOP_ONCE = fast_nb.S_LOG_N, fast_nb.S_STRAT_ON, fast_nb.S_STOP_ONCE
        fed = 0
        strategy_on, stop_once = True, False  # as written in S
        while True:
            if self._strategy_on is not strategy_on:
                strategy_on = self._strategy_on
                S[S_STRAT_ON] = strategy_on
            if bool(self._deferred_actions) is not stop_once:
                stop_once = not stop_once
                S[S_STOP_ONCE] = stop_once
            code = run()
            view.invalidate()  # the local book moved
            n = int(S[S_LOG_N])
            if n:
                rows = fm.LOG[:n].tolist()
                S[S_LOG_N] = 0
                last_book = None
                for i, row in enumerate(rows):
                    typ, t = row[0], row[1]
                    if t > env.now_ns:
                        env.now_ns = t
                    if typ == LG_BOOK:
                        pushed, on = fm.n_pushed, self._strategy_on
                        last_book = row
                        bid = row[2] if row[3] else None
                        ask = row[4] if row[5] else None
                        if bid is not None and ask is not None:
                            s.last_mid = (bid + ask) / 2
                        on_book(t, symbol, bid, ask, row[6], row[7])
                        drain()
                        if per_message and not row[8] and self._strategy_on:  # a book message: as _loop does
                            self.counters["decisions"] += int(timer_ns is None)
                            view.invalidate()
                            self._call(strat.on_book, env, symbol)
                        if i < n - 1 and (fm.n_pushed != pushed or self._strategy_on != on):
                            raise RuntimeError("fast path: a book update the kernel ran past sent an order")
                    elif typ == LG_ANSWER:
                        pushed, on = fm.n_pushed, self._strategy_on
                        kind, coid = row[2], coids[row[3]]
                        if kind == ANS_REPORT:
                            fill = (row[14], row[9], row[10], row[11], row[12], bool(row[13])) if row[8] else None
                            mid = (row[16] + row[18]) / 2 if fill is not None and row[17] and row[19] else None
                            self._apply_report(t, coid, symbol, row[4], row[5], row[6], row[7], fill, mid)
                        elif kind == ANS_REJECT:
                            self._apply_reject(t, coid, fm.reject_message(row[15]))
                        else:
                            self._apply_cancel_reject(t, coid)
                        self._after_event()
                        if i < n - 1 and (fm.n_pushed != pushed or self._strategy_on != on):
                            raise RuntimeError("fast path: an answer the kernel ran past sent an order")
                    elif typ == LG_MARK:
                        pushed = fm.n_pushed
                        mark(syms)
                        # the timer of the same time comes next, unless the mark sent an order due by then
                        if row[2] and (fm.entry_ns > 0 or fm.n_pushed == pushed):
                            S[fast_nb.S_NEXT_TIMER] += timer_ns
                            timer(t)
                    else:
                        timer(t)
                if last_book is not None:  # the local book's top as the kernel left it (what L2Book.top() says)
                    view.set_top(TopOfBook(last_book[2] if last_book[3] else None, last_book[3],
                                          last_book[4] if last_book[5] else None, last_book[5]))
            if bar is not None:
                k = int(S[fast_nb.S_FEED_K])
                bar.update(k - fed)
                fed = k
            if code == fast_nb.RUN_DONE:
                break
            if code != fast_nb.RUN_PYTHON:
                fm.resolve(code)
        self.counters["feed_messages"] += int(S[fast_nb.S_FEED_K])
        if self._strategy_on:
            self._call(strat.on_stop, env)
        self._mark(syms)
        if bar is not None:
            bar.close()

    def _timer(self, t_ns: int) -> None:
        self.counters["decisions"] += 1
        self.guard.tick(t_ns)
        self._drain_guard()
        if self._strategy_on:
            self._call(self.strategy.on_timer, self.env)

    @staticmethod
    def _next_feed_other(s: _Sym, syms: list[_Sym]) -> int:
        """Arrival of the next message of another symbol (its book must be current when that one is read)."""
        others = [o.feed.next_arrival_ns() for o in syms if o is not s]
        others = [a for a in others if a is not None]
        return min(others) - 1 if others else np.iinfo(np.int64).max

    def _progress(self, syms):
        if not self.config.progress:
            return None
        from tqdm.auto import tqdm

        total = self._fm.n_messages if self._fm is not None else sum(s.feed.n_messages for s in syms)
        return tqdm(total=total, unit="msg", desc="backtest")

    # -- exchange side ---------------------------------------------------------------------------------------------------
    def _advance_exchanges(self, syms: list[_Sym], t_ns: int) -> None:
        for s in syms:
            if t_ns > s.venue.now_ns:
                s.venue.advance(t_ns)
                self._collect(s)

    def _collect(self, s: _Sym) -> None:
        """Schedule what the exchange reported for the strategy, one response latency later, in order."""
        for r in s.venue.poll():
            self._push_resp(r.ts_ns, (_LO_REPORT, r))

    def _push_resp(self, ts_ns: int, payload: tuple) -> None:
        due = ts_ns + self.latency.response.draw_ns()
        if due < self._resp_last:
            due = self._resp_last
        self._resp_last = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, payload[0], payload[1:]))

    def _push_entry(self, ts_ns: int, kind: int, payload: tuple) -> None:
        due = ts_ns + self.latency.order_entry.draw_ns()
        if due < self._entry_last:
            due = self._entry_last
        self._entry_last = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, kind, payload))

    def _exchange_step(self, item: tuple) -> None:
        t, _, kind, payload = item
        if kind == _EX_PLACE:
            s, req = payload
            res = s.venue.place(req, t)
            if res.rejection is not None:
                self._collect(s)
                self._push_resp(t, (_LO_REJECT, req.client_order_id, res.rejection.message))
                return
        else:
            s, coid = payload
            res = s.venue.cancel(USER, s.symbol, t, client_order_id=coid)
            if res.rejection is not None:
                self._collect(s)
                self._push_resp(t, (_LO_CANCEL_REJECT, coid))
                return
        self._collect(s)

    # -- strategy side -------------------------------------------------------------------------------------------------
    def _send(self, s: _Sym, side: int, typ: OrderType, qty_lots: int, px_ticks: int, tif: TimeInForce, tag: str,
              source: str) -> OwnOrder | None:
        if side not in (1, -1):
            raise ConfigError(f"side must be +1 (buy) or -1 (sell), got {side!r}")
        qty_lots, px_ticks = int(qty_lots), int(px_ticks)
        if qty_lots <= 0:
            raise ConfigError(f"order size must be > 0 lots, got {qty_lots}")
        now = self.env.now_ns
        v = self.guard.check_order(now, s.symbol, side, qty_lots, px_ticks if typ != OrderType.MARKET else None,
                                   source=source)
        self._drain_guard(act=False)
        if not v.allowed or v.qty_lots <= 0:
            self.counters["orders_refused"] += 1
            return None
        o = self.orders.submit(s.symbol, side, typ, v.qty_lots, px_ticks, tif, now, tag=tag)
        self.counters["orders_sent" if source == "strategy" else "guard_orders"] += 1
        if self._fm is not None:
            self._fm_slot[o.client_order_id] = len(self._fm.coids)
            self._fm.push_place(now, o.client_order_id, side, typ, v.qty_lots, px_ticks, tif)
            return o
        req = OrderRequest(USER, s.symbol, side, typ, v.qty_lots, px_ticks, tif, o.client_order_id)
        self._push_entry(now, _EX_PLACE, (s, req))
        return o

    def _cancel(self, coid: str) -> bool:
        o = self.orders.cancel_sent(coid, self.env.now_ns)
        if o is None:
            return False
        self.counters["cancels_sent"] += 1
        if self._fm is not None:
            self._fm.push_cancel(self.env.now_ns, self._fm_slot[coid])
            return True
        self._push_entry(self.env.now_ns, _EX_CANCEL, (self._syms[o.symbol], coid))
        return True

    def _local_answer(self, item: tuple) -> None:
        t, _, kind, payload = item
        if kind == _LO_REPORT:
            v, f = payload[0].order, payload[0].fill
            if f is None:
                self._apply_report(t, v.client_order_id, v.symbol, int(v.status), v.filled_lots, v.quote_filled,
                                   v.order_id, None, None)
            else:
                self._apply_report(t, v.client_order_id, v.symbol, int(v.status), v.filled_lots, v.quote_filled,
                                   v.order_id, (f.ts_ns, f.side, f.px_ticks, f.qty_lots, f.commission, f.is_maker),
                                   self._syms[v.symbol].view.mid_ticks())
        elif kind == _LO_REJECT:
            self._apply_reject(t, *payload)
        else:
            self._apply_cancel_reject(t, payload[0])

    def _apply_report(self, t: int, coid: str, symbol: str, status: int, filled_lots: int, quote_filled: int,
                      order_id: int, fill: tuple | None, mid: float | None) -> None:
        """An execution report reaches the strategy at ``t``; ``fill`` is (exchange ts, side, px, qty, commission,
        is_maker) when it carries one, ``mid`` the local book's mid then."""
        env, strat = self.env, self.strategy
        self.counters["reports"] += 1
        o = self.orders.apply(coid, OrderState(status), t, filled_lots=filled_lots, quote_filled=quote_filled,
                              fee_units=fill[4] if fill is not None else 0, order_id=order_id)
        if fill is not None:
            f_ts, side, px, qty, commission, is_maker = fill
            s = self._syms[symbol]
            s.pos_lots += side * qty
            s.cash_units -= side * px * qty + commission
            s.fee_units += commission
            self.fills.append((t, f_ts, s.symbol, side, px, qty, commission, is_maker, coid, order_id, mid,
                               o.tag if o is not None else ""))
            self.guard.on_fill(t, s.symbol, side, px, qty)
            self._drain_guard()
            if self._strategy_on and o is not None:
                self._call(strat.on_fill, env, o, px, qty, commission, is_maker)
        if o is not None and self._strategy_on:
            self._call(strat.on_order, env, o)

    def _apply_reject(self, t: int, coid: str, reason: str) -> None:
        o = self.orders.apply(coid, OrderState.REJECTED, t, reason=reason)
        if o is not None and self._strategy_on:
            self._call(self.strategy.on_order, self.env, o)

    def _apply_cancel_reject(self, t: int, coid: str) -> None:
        o = self.orders.cancel_rejected(coid, t)
        if o is not None and self._strategy_on:
            self._call(self.strategy.on_order, self.env, o)

    def _after_event(self) -> None:
        if self._pending_params:
            for values in self._pending_params:
                self.set_params(**values)
            self._pending_params.clear()

    def _book_to_guard(self, s: _Sym, t_ns: int) -> None:
        v = s.view
        top = v.top()
        if top.bid_px_ticks is not None and top.ask_px_ticks is not None:
            s.last_mid = (top.bid_px_ticks + top.ask_px_ticks) / 2
        self.guard.on_book(t_ns, s.symbol, top.bid_px_ticks, top.ask_px_ticks, v.depth_lots(1), v.depth_lots(-1))
        self._drain_guard()

    def _equity(self) -> float:
        eq = self.initial_cash
        for s in self._syms.values():
            mid = s.last_mid if s.last_mid is not None else 0.0
            eq += (s.cash_units + s.pos_lots * mid) * s.unit
        return eq

    def _equity_micro(self) -> int:
        return int(round(self._equity() * 1e6))

    def _mark(self, syms: list[_Sym]) -> None:
        t = self.env.now_ns
        if len(syms) == 1 and len(self._syms) == 1:  # _equity and the row below, for one symbol
            s = syms[0]
            eq = self.initial_cash + (s.cash_units + s.pos_lots * (s.last_mid if s.last_mid is not None else 0.0)) \
                * s.unit
            self.guard.on_mark(t, int(round(eq * 1e6)))
            self.guard.tick(t)
            self._drain_guard()
            self.marks.append((t, eq, self.initial_cash + (0 + s.cash_units * s.unit), s.pos_lots, s.last_mid))
            return
        eq = self._equity()
        self.guard.on_mark(t, int(round(eq * 1e6)))
        self.guard.tick(t)
        self._drain_guard()
        row = [t, eq, self.initial_cash + sum(s.cash_units * s.unit for s in syms)]
        for s in syms:
            row += [s.pos_lots, s.last_mid]
        self.marks.append(tuple(row))

    def _drain_guard(self, act: bool = True) -> None:
        if not (self.guard.has_output or (act and self._deferred_actions)):
            return
        ev = self.guard.drain_events()
        if ev:
            self.risk_events.extend(ev)
        actions = self.guard.drain_actions()
        if not act:
            # they wait for the next drain that acts, as they would in the guard (the fast path must know)
            self._deferred_actions.extend(actions)
            return
        if self._deferred_actions:
            actions = self._deferred_actions + actions
            self._deferred_actions = []
        for _, sym, flatten in action_steps(actions, self._syms):
            for o in self.orders.open_orders(sym):
                if o.tag != GUARD_TAG:
                    self._cancel(o.client_order_id)
            if flatten:
                s = self._syms[sym]
                need = flatten_lots(s.pos_lots, self.orders.open_orders(sym))
                if need:
                    self._send(s, 1 if need > 0 else -1, OrderType.MARKET, abs(need), 0, TimeInForce.IOC, GUARD_TAG,
                               "guard")

    def _call(self, fn: Callable, *args) -> None:
        """A strategy callback; an exception stops the strategy and has the guard flatten everything."""
        if not self._strategy_on:
            return
        try:
            fn(*args)
        except Exception as exc:  # the strategy's bug must not take the run (or the account) with it
            self._strategy_on = False
            self.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.log.append((self.env.now_ns, "strategy stopped: " + traceback.format_exc()))
            self.guard.kill(self.env.now_ns, reason=f"strategy raised {self.error}", source="engine")
            self._drain_guard()
