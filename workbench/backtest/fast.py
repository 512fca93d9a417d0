"""The backtester's fast path: the market between decisions in numba, the strategy, the guard and the orders in Python.

For a strategy that decides on a timer or after book messages (not ``act_on_trade``; e.g.
:class:`~workbench.strategy.MarketMaker`) on one symbol, everything that happens between two of its decisions is
market replay: the exchange's book, the queue positions of the resting orders, the fills, the
local book one feed latency late. :class:`FastMarket` holds that state in arrays and
:func:`workbench.backtest.nb.run_nb` runs :meth:`Backtest._loop <workbench.backtest.engine.Backtest>`'s own loop over
it, step for step, until Python must act; the engine (``Backtest._loop_fast``) replays what the kernel logged (book
updates to the guard, answers to the order state machine, the fills frame and the strategy) and runs the marks and
the timers exactly as the Python path does. Results are the same as the Python path's, fill for fill (the tests in
``tests/backtest/test_fast_path.py`` compare both on hand-built and real recordings).

When the strategy offers a kernel, :mod:`workbench.backtest.compiled` runs that Python side in numba as well.

The fast path applies when (:func:`fast_path_reason` says why not otherwise): one symbol; the strategy does not act
on trades (one that acts on book messages gets them one at a time: the kernel stops after each);
the order-entry and response latencies are constant (the feed latency may be anything: its draws are taken up front
as the local feed takes them); the queue model is :class:`~workbench.venue.queue.ConservativeQueue`,
:class:`~workbench.venue.queue.ProbabilisticQueue` (expectation, not sampled) or
:class:`~workbench.venue.queue.NoQueue`; the recording holds absolute book rows (SNAPSHOT, DEPTH) and trades, with
no venue message mixing the two.

Limits of the arithmetic (int64, where the Python venue has unbounded integers): the account starts with 2**62
units of each asset (the engine's margin account), and its balances must stay below 2**63 units: the fast path gives
the Python path's results as long as the account earns less than about 4.6e18 notional units (4.6e8 USDT on spot
BTCUSDT, whose unit is 1e-10 USDT; 4.6e14 USDT on the USD-M contract) and no single fill's notional exceeds 9e18
units. An order whose lock would exceed 9e18 units is refused for insufficient balance, as the Python venue refuses it
(the account never holds that much).
"""

from __future__ import annotations

import numpy as np

from workbench.book.book import L2Book
from workbench.backtest.feed import arrivals_ns
from workbench.backtest import nb
from workbench.enums import K_DEPTH, K_SNAPSHOT
from workbench.venue.api import FeeSchedule, OrderType, SymbolSpec, TimeInForce
from workbench.venue.latency import ConstantLatency
from workbench.venue.queue import ConservativeQueue, NoQueue, ProbabilisticQueue
from workbench.venue.replay import _REJ_BALANCE, _REJ_LOT, _REJ_NOTIONAL, _REJ_POST_ONLY, _REJ_PRICE

__all__ = ["FastMarket", "fast_path_reason"]

#: the columns of :data:`~workbench.types.event_dt` that the books and the venue's kernels read
BOOK_ROW_DT = np.dtype([("px_ticks", np.int64), ("qty_lots", np.int64), ("kind", np.uint8), ("side", np.int8),
                        ("flags", np.uint16)], align=True)

_REJECTIONS = {nb.REJ_LOT: _REJ_LOT.message, nb.REJ_PRICE: _REJ_PRICE.message, nb.REJ_NOTIONAL: _REJ_NOTIONAL.message,
               nb.REJ_BALANCE: _REJ_BALANCE.message, nb.REJ_POST_ONLY: _REJ_POST_ONLY.message}


def fast_path_reason(strategy, n_symbols: int, config, queue) -> str | None:
    """Why the fast path does not apply to this run, or None when it does (the recording is checked on building)."""
    if n_symbols != 1:
        return f"{n_symbols} symbols (the fast path replays one)"
    if strategy.act_on_trade:
        return "the strategy acts on trades"
    lat = config.latency
    for name in ("order_entry", "response"):
        if type(getattr(lat, name)) is not ConstantLatency:
            return f"the {name} latency is not constant"
    if type(queue) not in (ConservativeQueue, ProbabilisticQueue, NoQueue):
        return f"queue model {queue!r} has no kernel"
    if getattr(queue, "sampled", False):
        return "a sampled probabilistic queue draws from the venue's generator"
    return None


def local_tops(rows: np.ndarray, FD: np.ndarray, first_px: int | None, max_levels: int,
               initial_levels: int) -> tuple[np.ndarray, L2Book]:
    """The local book's top and depth after each feed message (:func:`~workbench.backtest.nb.local_tops_nb`), and
    the book once all are applied. ``rows``: the recording's :data:`BOOK_ROW_DT` rows; ``FD``: the feed's messages
    (rows 0 and 1: their first row and one past their last)."""
    book = L2Book(initial_levels=min(initial_levels, max_levels), max_levels=max_levels)
    if first_px is not None:  # where FastMarket.build lays the local book's window
        book._set_window(first_px - book._initial // 2, book._initial)
    S = np.zeros(nb.S_SIZE, np.int64)
    S[nb.S_MAX_LEVELS] = max_levels
    FAR = np.zeros((2, 4, 1024), np.int64)
    FLOG = np.zeros((4096, 4), np.int64)
    LT = np.zeros((FD.shape[1], 6), np.int64)
    k, applied = 0, False
    while True:
        k, r = nb.local_tops_nb(rows, FD, k, applied, book.bid, book.ask, book.st, FAR, FLOG, S, LT)
        if r < 0:
            break
        # the facade applies the rest of message k (FastMarket.resolve, for this book alone)
        _far_to_facade(book, FAR, S, 2)
        book.apply(rows[:int(FD[1, k])], r)
        FAR = _facade_to_far(book, FAR, S, 2)
        applied = True
    _far_to_facade(book, FAR, S, 2)
    return LT, book


def _far_to_facade(book: L2Book, FAR: np.ndarray, S: np.ndarray, row: int) -> None:
    """The book's facade takes the kernel's overflow levels (FAR rows ``row``, ``row + 1``) as they are."""
    book.clear_overflow()
    for side, r in ((1, row), (-1, row + 1)):
        n = int(S[nb.S_FAR_N + r])
        for px, qty in zip(FAR[0, r, :n].tolist(), FAR[1, r, :n].tolist()):
            book.set_overflow(side, px, qty)


def _facade_to_far(book: L2Book, FAR: np.ndarray, S: np.ndarray, row: int) -> np.ndarray:
    """The kernel's overflow levels (FAR rows ``row``, ``row + 1``) take the facade's; returns FAR, grown if short."""
    for side, r in ((1, row), (-1, row + 1)):
        px, qty = book.overflow_levels(side)
        n = len(px)
        if n + 64 > FAR.shape[2]:  # room for the kernel to keep levels there too
            far = np.zeros((2, 4, max(2 * FAR.shape[2], 2 * n)), np.int64)
            far[:, :, :FAR.shape[2]] = FAR
            FAR = far
        FAR[0, r, :n] = px
        FAR[1, r, :n] = qty
        S[nb.S_FAR_N + r] = n
    return FAR


class FastMarket:
    """One symbol's exchange and local feed as :func:`~workbench.backtest.nb.run_nb` runs them, and its arrays.

    Build with :meth:`build`, which returns None (and why) when the recording does not suit the fast path. The
    local book is the caller's :class:`~workbench.book.L2Book` (the strategy's view reads it between calls).
    """

    def __init__(self) -> None:  # use build()
        raise TypeError("use FastMarket.build(...)")

    @classmethod
    def build(cls, events: np.ndarray, spec: SymbolSpec, config, queue, fees: FeeSchedule, local_book: L2Book,
              book_max_levels: int, big_balance: int, book_initial_levels: int = 4096,
              cache: dict | None = None) -> tuple["FastMarket | None", str | None]:
        """``cache``: a dict kept with the recording (``MarketData``), where what depends only on the recording
        (and a constant feed latency) is kept between runs: the venue's merged order and the feed's messages."""
        kind = events["kind"]
        prep = cache.get("prepare") if cache is not None else None
        if prep is None:
            adds = np.flatnonzero(((kind == K_SNAPSHOT) | (kind == K_DEPTH)) & (events["qty_lots"] > 0))
            # the five columns the books and the venue read, in rows of 24 bytes instead of 64: the kernels stream
            # the recording three times (local book, exchange book, venue), memory traffic is their cost
            rows = np.empty(len(events), BOOK_ROW_DT)
            for c in BOOK_ROW_DT.names:
                rows[c] = events[c]
            prep = (*nb.prepare_nb(kind, events["ts_exch_ns"], events["flags"]),
                    int(events["px_ticks"][adds[0]]) if len(adds) else None,
                    int(events["ts_exch_ns"].max()) if len(events) else 0, rows)
            if cache is not None:
                cache["prepare"] = prep
        V, msgs, ok, order_level, first_px, end_ns, rows = prep
        if order_level:
            return None, "the recording holds order-level rows (the fast path replays absolute book rows)"
        if not ok:
            return None, "a message of the recording mixes trades and book rows"
        self = object.__new__(cls)
        self.ev = rows  # what the kernels and the books' facades read of the recording
        self.V = V
        last = msgs[2]
        # arrival of each feed message, as LocalFeed computes it (the same draws, in the same order)
        feed = config.latency.feed
        # the same arrivals every run unless the feed latency is drawn
        key = ("feed", True) if config.feed_from_recording else \
            ("feed", False, feed.ns) if type(feed) is ConstantLatency else ("feed", False, None) if feed is None else None
        FD = cache.get(key) if cache is not None and key is not None else None
        if FD is None:
            arrive = arrivals_ns(events, last, feed, config.feed_from_recording)
            FD = np.empty((3, len(last)), np.int64)
            FD[0] = msgs[0]
            FD[1] = msgs[1]
            FD[2] = arrive
            if cache is not None and key is not None:
                cache[key] = FD
        self.FD = FD
        self.n_messages = len(last)
        self.xbook = L2Book(initial_levels=min(book_initial_levels, book_max_levels), max_levels=book_max_levels)
        self.lbook = local_book
        self.LT = np.zeros((0, 6), np.int64)  # the local book's reads, when the compiled path takes them from there
        self._cache, self._first_px = cache, first_px
        self._levels = (book_max_levels, book_initial_levels)
        # Both books lay their window where the facade would at their first row that adds size (the same row for
        # both), now: the kernel then keeps the deep levels of the first snapshot itself, where the facade would
        # take them one by one in Python (thousands of levels: tens of ms a run)
        if first_px is not None:
            for book in (self.xbook, self.lbook):
                if book.bid.shape[0] == 0:
                    n = book._initial  # L2Book._grow_to on an empty window
                    book._set_window(first_px - n // 2, n)
        S = self.S = np.zeros(nb.S_SIZE, np.int64)
        S[nb.S_MAX_LEVELS] = book_max_levels
        S[nb.S_END_NS] = end_ns
        S[nb.S_NEXT_OID] = 1
        S[nb.S_NEXT_FILL_ID] = 1
        S[nb.S_RESP_LAST] = -(2**63)
        S[nb.S_BEST_BID] = S[nb.S_BEST_ASK] = nb.NONE
        S[nb.S_NEXT_TIMER] = S[nb.S_NEXT_MARK] = nb.NONE
        S[nb.S_STRAT_ON] = 1
        S[nb.S_QMODEL] = {ConservativeQueue: nb.Q_CONSERVATIVE, ProbabilisticQueue: nb.Q_PROBABILISTIC,
                          NoQueue: nb.Q_NONE}[type(queue)]
        S[nb.S_MAKER_PPM] = fees.maker_ppm
        S[nb.S_TAKER_PPM] = fees.taker_ppm
        S[nb.S_FEE_MAX] = max(fees.maker_ppm, fees.taker_ppm, 0)
        S[nb.S_MIN_QTY] = spec.min_qty_lots
        S[nb.S_MAX_QTY] = spec.max_qty_lots
        S[nb.S_MIN_NOTIONAL] = spec.min_notional_ticks_lots
        S[nb.S_BASE_FREE] = S[nb.S_QUOTE_FREE] = big_balance
        self.resp_ns = config.latency.response.ns
        self.entry_ns = config.latency.order_entry.ns
        S[nb.S_RESP_LAT] = self.resp_ns
        S[nb.S_MIN_RESP] = self.resp_ns
        self.P = np.zeros(nb.P_SIZE, np.float64)
        self.P[nb.P_POWER] = getattr(queue, "power", 0.0)
        cap = 256
        self.ORD = np.zeros((cap, nb.O_W), np.int64)
        self.ORDF = np.zeros((cap, 2), np.float64)
        self.LV = np.zeros((cap, 3), np.int64)
        self.RS = np.zeros(cap, np.int64)
        self.WK = np.zeros((6, cap), np.int64)
        self.TK = np.zeros((64, 3), np.int64)
        self.EQ = np.zeros((256, 4), np.int64)
        self.RQ = np.zeros((4096, nb.R_W), np.int64)
        self.LOG = np.zeros((512, nb.L_W), np.int64)
        self.FAR = np.zeros((2, 4, 1024), np.int64)
        self.FLOG = np.zeros((4096, 4), np.int64)
        self.coids: list[str] = []
        self._args: tuple | None = None  # run_nb's arguments, kept while no array is replaced
        self.n_pushed = 0
        self._entry_last = -(2**63)
        return self, None

    # -- the strategy's side ---------------------------------------------------------------------------------------
    def start(self, next_timer_ns: int | None, next_mark_ns: int, timer_ns: int | None, mark_every_ns: int) -> None:
        S = self.S
        S[nb.S_NEXT_TIMER] = nb.NONE if next_timer_ns is None else next_timer_ns
        S[nb.S_NEXT_MARK] = next_mark_ns
        S[nb.S_TIMER_NS] = timer_ns or 0
        S[nb.S_MARK_NS] = mark_every_ns

    def push_place(self, now_ns: int, coid: str, side: int, typ: OrderType, qty_lots: int, px_ticks: int,
                   tif: TimeInForce) -> None:
        slot = len(self.coids)
        if slot >= self.ORD.shape[0]:
            self._grow_orders()
        self.coids.append(coid)
        self.ORD[slot, :5] = (side, int(typ), int(tif), qty_lots, px_ticks)
        self._push_entry(now_ns, nb.EX_PLACE, slot)

    def push_cancel(self, now_ns: int, slot: int) -> None:
        self._push_entry(now_ns, nb.EX_CANCEL, slot)

    def _push_entry(self, now_ns: int, kind: int, slot: int) -> None:
        due = now_ns + self.entry_ns
        if due < self._entry_last:
            due = self._entry_last
        self._entry_last = due
        S = self.S
        seq = int(S[nb.S_SEQ]) + 1
        S[nb.S_SEQ] = seq
        tail = int(S[nb.S_EQ_TAIL])
        if tail >= self.EQ.shape[0]:
            head = int(S[nb.S_EQ_HEAD])
            live = self.EQ[head:tail].copy()
            if len(live) * 2 > self.EQ.shape[0]:
                self.EQ = np.zeros((2 * self.EQ.shape[0], 4), np.int64)
                self._args = None
            self.EQ[:len(live)] = live
            S[nb.S_EQ_HEAD] = 0
            tail = len(live)
        self.EQ[tail] = (due, seq, kind, slot)
        S[nb.S_EQ_TAIL] = tail + 1
        self.n_pushed += 1

    def reject_message(self, code: int) -> str:
        return _REJECTIONS[code]

    # -- running -----------------------------------------------------------------------------------------------------
    def run(self) -> int:
        """One call of the kernel; the books' facades then hold what it did to the overflow levels."""
        args = self._args
        if args is None:  # an array was replaced (grown, or a book's window moved)
            x, lb = self.xbook, self.lbook
            args = self._args = (self.ev, self.V, self.FD, self.LT, x.bid, x.ask, x.st, lb.bid, lb.ask, lb.st, self.FAR,
                                 self.FLOG, self.S, self.P, self.ORD, self.ORDF, self.LV, self.RS, self.TK, self.EQ,
                                 self.RQ, self.LOG, self.WK)
        code = nb.run_nb(*args)
        if self.S[nb.S_FLOG_N]:
            self._sync_overflow()
        return code

    def read_local_from_tops(self) -> None:
        """The compiled path: the kernels read the local book from :func:`local_tops` (computed once per recording,
        kept with it) and leave its arrays alone; :meth:`finish_local` gives the facade its final state."""
        key = ("local_tops", *self._levels)
        got = self._cache.get(key) if self._cache is not None else None
        if got is None:
            got = local_tops(self.ev, self.FD, self._first_px, *self._levels)
            if self._cache is not None:
                self._cache[key] = got
        self.LT, self._local_end = got
        self.S[nb.S_LOCAL_PRE] = 1
        self._args = None

    def finish_local(self) -> None:
        """After a compiled run: the local book (the strategy's view) as the feed left it, every message applied."""
        self.lbook.assign(self._local_end)

    def _sync_overflow(self) -> None:
        """Replay the kernel's changes of overflow levels into the books' facades, in order."""
        S = self.S
        books = (self.xbook, self.xbook, self.lbook, self.lbook)
        for row, px, qty, clear in self.FLOG[:int(S[nb.S_FLOG_N])].tolist():
            if clear:
                books[row].clear_overflow()
            else:
                books[row].set_overflow(1 if row % 2 == 0 else -1, px, qty)
        S[nb.S_FLOG_N] = 0

    def load_far_into_facades(self) -> None:
        """The books' facades take the kernel's overflow levels as they are (the compiled path keeps no log of
        their changes: it calls this before a facade applies rows, and at the end)."""
        for b, book in enumerate((self.xbook, self.lbook)):
            if b == 0 or not self.S[nb.S_LOCAL_PRE]:
                _far_to_facade(book, self.FAR, self.S, 2 * b)
        self.S[nb.S_FLOG_N] = 0

    def resolve(self, code: int) -> None:
        """Do what a RUN_NEED_* status asks, so that the next call goes on."""
        self._args = None
        S = self.S
        if code == nb.RUN_NEED_BOOK:
            b = int(S[nb.S_NB_BOOK])
            book = self.xbook if b == 0 else self.lbook
            book.apply(self.ev[:int(S[nb.S_NB_END])], int(S[nb.S_NB_START]))
            self._load_overflow(b, book)
        elif code == nb.RUN_NEED_SPACE:
            self._make_space()
        if S[nb.S_RQ_HEAD] == S[nb.S_RQ_TAIL]:
            S[nb.S_RQ_HEAD] = S[nb.S_RQ_TAIL] = 0

    def _load_overflow(self, b: int, book: L2Book) -> None:
        """The facade moved the book's window or kept levels outside it: the kernel's arrays take its levels."""
        self.FAR = _facade_to_far(book, self.FAR, self.S, 2 * b)

    def _make_space(self) -> None:
        S = self.S
        head, tail = int(S[nb.S_RQ_HEAD]), int(S[nb.S_RQ_TAIL])
        live = self.RQ[head:tail].copy()
        need = int(S[nb.S_NEED_RQ]) + len(live) + 16
        if need > self.RQ.shape[0]:
            self.RQ = np.zeros((max(2 * self.RQ.shape[0], need), nb.R_W), np.int64)
        self.RQ[:len(live)] = live
        S[nb.S_RQ_HEAD] = 0
        S[nb.S_RQ_TAIL] = len(live)
        if S[nb.S_NEED_TK] > self.TK.shape[0]:
            tk = np.zeros((max(2 * self.TK.shape[0], int(S[nb.S_NEED_TK])), 3), np.int64)
            tk[:self.TK.shape[0]] = self.TK
            self.TK = tk
        if S[nb.S_NEED_WK] > self.WK.shape[1]:
            wk = np.zeros((6, max(2 * self.WK.shape[1], int(S[nb.S_NEED_WK]))), np.int64)
            wk[:, :self.WK.shape[1]] = self.WK
            self.WK = wk
        S[nb.S_NEED_RQ] = S[nb.S_NEED_TK] = S[nb.S_NEED_WK] = 0

    def _grow_orders(self) -> None:
        self._args = None
        cap = 2 * self.ORD.shape[0]
        for name, shape, dtype in (("ORD", (cap, nb.O_W), np.int64), ("ORDF", (cap, 2), np.float64),
                                   ("LV", (cap, 3), np.int64), ("RS", (cap,), np.int64)):
            old = getattr(self, name)
            new = np.zeros(shape, dtype)
            new[:old.shape[0]] = old
            setattr(self, name, new)
        if self.WK.shape[1] < cap:
            wk = np.zeros((6, cap), np.int64)
            wk[:, :self.WK.shape[1]] = self.WK
            self.WK = wk
