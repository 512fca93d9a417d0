"""The feed client: local L2 books kept in sync with a Binance-Spot-protocol venue (the simulated one or a real one).

One combined-stream connection (``/stream?streams=<sym>@depth@100ms/<sym>@trade/...``) carries every symbol's
diffs and trades. Each symbol's book follows Binance's documented procedure through the sans-I/O
:class:`~workbench.book.BookSync`: diffs are buffered, a REST snapshot (``/api/v3/depth``) is fetched, the diffs
that straddle and follow it are applied, and a broken chain (a gap) or a crossed book puts the symbol out of sync
until a new snapshot is in. A snapshot older than the buffered diffs (a stale one) is skipped and fetched again.

Faults survived, each counted in :attr:`FeedClient.stats` and reported through the ``on_status`` callback:
disconnects and ``recv`` timeouts (reconnect with exponential backoff and jitter, every book resynchronised from a
new snapshot), gaps, stale snapshots, malformed messages (counted, never fatal), a venue that sends nothing
(``stale``: no book update for ``stale_after_ms``, see :meth:`FeedClient.stale_symbols`). Pings are answered by
the websockets library. Trading must not use a symbol whose :meth:`FeedClient.in_sync` is False.

Prices and sizes are converted to ticks and lots at this edge, exactly (a price finer than the tick is malformed).

Speed: frames are taken in runs (what one read of the socket brought, or what websockets has queued), and a run
goes through one numba call (:func:`workbench.data.binance.feed_frames_nb`): the capture reader's parser of the
lines Binance writes turns every plain diff into event rows, prices and sizes in ticks and lots, the update-id
chains are kept (what :meth:`BookSync.on_live_diff` would do), and when the run is only one symbol's plain diffs
(the common case) its rows go into the book and its top is read in the same call. With trades in the run (their
``on_trade`` comes first, before the book changes) or several symbols' diffs (each ``on_book`` sees the other
books as they were before its turn) each book takes one more call; anything else (a gap, a symbol out of sync)
stops the kernel and Python keeps the chain from there (:meth:`BookSync.on_live_diff`, plain ints). ``on_book``
runs once per symbol and run: under a burst the strategy sees the latest book, not every step. A frame the kernel
does not read (anything unusual or wrong, snapshots' answers, another stream) takes the general way (orjson and
Python), which decides and counts errors; the books, counters and callbacks are the same either way (tests check
both). Transport: ``picows`` where it is installed (a C websocket client: several times the frames/s of
``websockets``, and it tells where a read ends), else ``websockets``; ``FeedConfig.transport`` chooses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from itertools import accumulate
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import orjson
import websockets
from websockets.exceptions import ConnectionClosed

from workbench.book.book import L2Book, TopOfBook
from workbench.book.nb import (
    CTL_COUNTS,
    CTL_DEPTH,
    CTL_LAST,
    CTL_LIVE,
    CTL_RUN,
    CTL_SCALES,
    CTL_STATUS,
    CTL_SYM_END,
    CTL_TOP,
    CTL_WIDTH,
    STATUS_DONE,
    apply_runs_nb,
    live_chain_nb,
)
from workbench.book.sync import BookSync, Diff, SyncState
from workbench.data.binance import FRAME_WIDTH, feed_frames_nb
from workbench.enums import ASK, BID, F_BATCH_END, F_CLEAR, K_DEPTH, K_SNAPSHOT
from workbench.exceptions import ConfigError
from workbench.instrument import Instrument
from workbench.types import empty_events, event_dt

try:  # the fast transport (optional: websockets is the fallback)
    import picows
except ImportError:  # pragma: no cover - depends on the installation
    picows = None

__all__ = ["FeedConfig", "FeedClient", "Trade"]

log = logging.getLogger("workbench.feed")


@dataclass(frozen=True, kw_only=True)
class FeedConfig:
    """Where and how to listen. URLs are the venue's bases: ``stream`` (``ws://host:port``, the client appends
    ``/stream?streams=...``) and ``rest`` (``http://host:port``)."""

    stream_url: str
    rest_url: str
    symbols: tuple[str, ...]
    depth_ms: int = 100                # 100: <sym>@depth@100ms, 1000: <sym>@depth
    trades: bool = True
    snapshot_limit: int = 1000
    reconnect_min_s: float = 0.05
    reconnect_max_s: float = 5.0
    jitter: float = 0.25               # +- this fraction of each backoff, so clients do not reconnect in step
    recv_timeout_s: float = 30.0       # nothing at all for this long: the connection is dead, reconnect
    stale_after_ms: int = 300
    max_reconnects: int | None = None  # None: forever
    transport: str = "auto"            # "picows", "websockets", or "auto": picows where installed
    fast_parse: bool = True            # False: every frame the general way (orjson + Python), for tests

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ConfigError("the feed needs at least one symbol")
        if self.transport not in ("auto", "picows", "websockets"):
            raise ConfigError("transport must be 'auto', 'picows' or 'websockets'")
        if self.transport == "picows" and picows is None:
            raise ConfigError("transport='picows' but picows is not installed (pip install picows)")
        if self.depth_ms not in (100, 1000):
            raise ConfigError("depth_ms must be 100 or 1000")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ConfigError("need 0 < reconnect_min_s <= reconnect_max_s")

    def streams(self) -> list[str]:
        out = []
        for s in self.symbols:
            low = s.lower()
            out.append(f"{low}@depth@100ms" if self.depth_ms == 100 else f"{low}@depth")
            if self.trades:
                out.append(f"{low}@trade")
        return out


@dataclass(frozen=True, slots=True)
class Trade:
    """A public trade: ``aggressor`` +1 buy, -1 sell; exchange time in ns."""

    symbol: str
    trade_id: int
    px_ticks: int
    qty_lots: int
    aggressor: int
    ts_ns: int


class _Symbol:
    __slots__ = ("ins", "book", "sync", "last_update_ns", "last_update_id", "snapshot_task", "spot", "px_memo",
                 "qty_memo", "pending", "pending_uid", "pending_n", "run_lo", "run_hi", "top")

    def __init__(self, ins: Instrument) -> None:
        self.ins = ins
        self.book = L2Book()
        self.sync = BookSync()
        self.last_update_ns = 0
        self.last_update_id = 0
        self.snapshot_task: asyncio.Task | None = None
        self.spot = True  # a diff without "pu": spot's rule (predecessor U - 1)
        self.px_memo: dict[str, int] = {}
        self.qty_memo: dict[str, int] = {}
        # Accepted diffs not yet in the book (see FeedClient._defer): event arrays, then a run [run_lo, run_hi) of
        # rows of the kernel's buffer (diffs of one run of frames, contiguous there); pending_n diffs in all.
        self.pending: list[np.ndarray] = []
        self.pending_uid = 0
        self.pending_n = 0
        self.run_lo = self.run_hi = 0
        self.top = TopOfBook(None, 0, None, 0)  # the book's top after the last change


class FeedClient:
    """Local books of ``instruments`` kept in sync with the venue of ``config``.

    ``on_book(symbol)`` runs after every applied diff or snapshot, ``on_trade(trade)`` for every trade, and
    ``on_status(symbol | None, what, detail)`` for every fault and recovery ("gap", "resync", "in_sync",
    "disconnected", "reconnected", "stale_snapshot", "malformed"); all on the event loop, synchronously: keep them
    short. ``clock``: local time in ns.
    """

    def __init__(self, config: FeedConfig, instruments: Mapping[str, Instrument], *,
                 on_book: Callable[[str], None] | None = None, on_trade: Callable[[Trade], None] | None = None,
                 on_status: Callable[[str | None, str, str], None] | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        missing = [s for s in config.symbols if s not in instruments]
        if missing:
            raise ConfigError(f"no instrument for {', '.join(missing)}")
        self.config = config
        self.symbols = {s: _Symbol(instruments[s]) for s in config.symbols}
        self.on_book = on_book or (lambda s: None)
        self.on_trade = on_trade or (lambda t: None)
        self.on_status = on_status or (lambda s, what, detail: None)
        self.clock = clock
        self.stats: Counter = Counter()
        self.connected = asyncio.Event()
        #: ``time.perf_counter_ns()`` when the first frame of the run being handled was taken off the socket (for
        #: latency measurements: a strategy's ``on_book`` may read it).
        self.recv_perf_ns = 0
        #: (bid, ask) lots on the book's best ``DEPTH_LEVELS`` levels, while ``on_book`` runs for an update the
        #: kernel applied and measured (the usual one); None otherwise: read them from the book then.
        self.depth_lots: tuple[int, int] | None = None
        self._stop = False
        self._batching = False
        self._backoff = config.reconnect_min_s
        self._last_msg = 0.0
        self._ws = None
        # the kernel's inputs: the symbols' bytes and scales, and buffers (grown when a run needs more)
        self._names = list(config.symbols)
        self._order = [self.symbols[s] for s in self._names]
        sym_bytes = [s.encode() for s in self._names]
        self._sym_u8 = np.frombuffer(b"".join(sym_bytes), np.uint8).copy()
        self._pre = np.empty((64, FRAME_WIDTH), np.int64)
        self._io = np.empty(128, np.int64)  # the frames' ends, then the indices of the run's plain trades
        self._rows = np.empty((4096, 8), np.int64)
        self._rows_buf = self._rows  # what the pending runs' views refer to
        # the symbols' control rows (CTL_* of workbench.book.nb), and views of its columns for the chain kernel
        ctl = self._ctl = np.zeros((len(self._names), CTL_WIDTH), np.int64)
        ctl[:, CTL_SYM_END] = np.cumsum([len(b) for b in sym_bytes])
        ctl[:, CTL_SCALES : CTL_SCALES + 4] = [instruments[s].scales for s in self._names]
        self._live = ctl[:, CTL_LIVE]
        self._last_ids = ctl[:, CTL_LAST]
        self._runs = ctl[:, CTL_RUN : CTL_RUN + 2]
        self._counts = ctl[:, CTL_COUNTS : CTL_COUNTS + 2]
        self._books = _book_tuple(self._order)  # what the book kernels take of the books
        self._fast = config.fast_parse
        self._warm()

    def _warm(self) -> None:
        """Compile (or load from numba's cache) the kernels of the frame path now, not on the first frame."""
        rows = np.empty((1, 8), np.int64)
        live_chain_nb(self._pre, 0, 0, 0, self._live, self._last_ids, self._runs, self._counts)
        L2Book().apply(self._view(rows, 0, 0))
        feed_frames_nb(np.frombuffer(b"{}", np.uint8), 0, 0, self._io, self._sym_u8, self._ctl, self._pre,
                       self._rows, True, self._books)
        apply_runs_nb(self._rows, self._ctl, self._books, 0, 0)

    # -- state for traders ---------------------------------------------------------------------------------------------
    def in_sync(self, symbol: str) -> bool:
        return self.symbols[symbol].sync.in_sync

    def book(self, symbol: str) -> L2Book:
        return self.symbols[symbol].book

    def top(self, symbol: str) -> TopOfBook:
        """The book's best bid and ask, as computed after its last change (no kernel call)."""
        return self.symbols[symbol].top

    def stale_symbols(self, now_ns: int | None = None) -> list[str]:
        """Symbols whose book has not changed for ``stale_after_ms`` (or never has)."""
        now = self.clock() if now_ns is None else now_ns
        limit = self.config.stale_after_ms * 1_000_000
        return [s for s, st in self.symbols.items() if not st.last_update_ns or now - st.last_update_ns > limit]

    # -- running ---------------------------------------------------------------------------------------------------------
    @property
    def transport(self) -> str:
        """The websocket client in use: "picows" or "websockets"."""
        t = self.config.transport
        return ("picows" if picows is not None else "websockets") if t == "auto" else t

    async def run(self) -> None:
        """Connect, keep the books, reconnect after faults; returns after :meth:`stop` (or ``max_reconnects``)."""
        cfg = self.config
        url = f"{cfg.stream_url.rstrip('/')}/stream?streams={'/'.join(cfg.streams())}"
        self._backoff = cfg.reconnect_min_s  # back to the minimum once connected (see _connected)
        attempts = 0
        errors: tuple = (OSError, ConnectionClosed, asyncio.TimeoutError, websockets.InvalidHandshake)
        if picows is not None:
            errors += (picows.WSError,)
        connect = self._run_picows if self.transport == "picows" else self._run_websockets
        while not self._stop:
            try:
                await connect(url, attempts)
            except errors as exc:
                if self._stop:
                    break
                self.stats["disconnects"] += 1
                self.on_status(None, "disconnected", f"{type(exc).__name__}: {exc}")
            finally:
                self._ws = None
                self.connected.clear()
                for st in self.symbols.values():
                    if st.snapshot_task is not None:
                        st.snapshot_task.cancel()
                        st.snapshot_task = None
                    st.sync.resync("disconnected")
            attempts += 1
            if self._stop or (cfg.max_reconnects is not None and attempts > cfg.max_reconnects):
                break
            delay = self._backoff * (1 + random.uniform(-cfg.jitter, cfg.jitter))
            self._backoff = min(self._backoff * 2, cfg.reconnect_max_s)
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Close the connection; :meth:`run` returns."""
        self._stop = True
        ws = self._ws
        if ws is not None:
            await ws.close()

    def _connected(self, url: str, attempts: int) -> None:
        if attempts:
            self.stats["reconnects"] += 1
            self.on_status(None, "reconnected", url)
        self.connected.set()
        self._backoff = self.config.reconnect_min_s
        for st in self.symbols.values():
            self._resync(st, "connected")

    async def _run_websockets(self, url: str, attempts: int) -> None:
        async with websockets.connect(url, compression=None, max_queue=4096, open_timeout=10,
                                      ping_interval=20, ping_timeout=60) as ws:
            self._ws = ws
            self._connected(url, attempts)
            await self._read(ws)

    async def _read(self, ws) -> None:
        queued = _queued_frames(ws)
        watchdog = asyncio.create_task(self._watchdog(ws.close))
        run: list = []
        t_ns = 0
        try:
            while not self._stop:
                msg = await ws.recv(decode=False)
                if not run:
                    self.recv_perf_ns = time.perf_counter_ns()
                    t_ns = self.clock()
                run.append(msg)
                if not queued() or len(run) >= 512:  # nothing more waiting: the run goes in, the books once each
                    self._last_msg = time.monotonic()
                    self.handle_frames(run, t_ns)
                    run = []
        except ConnectionClosed:
            if self._stop:
                return
            raise
        finally:
            watchdog.cancel()
            if run:
                self.handle_frames(run, t_ns)

    async def _run_picows(self, url: str, attempts: int) -> None:
        loop = asyncio.get_running_loop()
        closed = loop.create_future()
        transport, listener = await picows.ws_connect(
            lambda: _PicowsListener(self, closed), url, websocket_handshake_timeout=10, enable_auto_pong=True,
            enable_auto_ping=True, auto_ping_idle_timeout=20, auto_ping_reply_timeout=20,
            max_frame_size=1 << 24)
        ws = _PicowsHandle(transport, closed)
        self._ws = ws
        watchdog = asyncio.create_task(self._watchdog(ws.close))
        try:
            self._connected(url, attempts)
            await closed
        finally:
            watchdog.cancel()
            if not transport.is_disconnected:
                transport.disconnect()
            listener.flush()
        if not self._stop:
            raise ConnectionError("the venue closed the stream")  # reconnect

    async def _watchdog(self, close) -> None:
        """Close a connection that has said nothing for ``recv_timeout_s`` (a timer per message would cost more
        than the message)."""
        timeout = self.config.recv_timeout_s
        self._last_msg = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            if time.monotonic() - self._last_msg > timeout:
                self.stats["recv_timeouts"] += 1
                await close(1011, "no message within the receive timeout")
                return

    # -- messages (sans-I/O: a test can feed them directly) ---------------------------------------------------------------
    def handle_frames(self, frames: list, recv_ns: int | None = None) -> None:
        """Take a run of frames of the combined stream (bytes, or str) received together at ``recv_ns`` (the
        clock's ns; default now): diffs through the kernel, then each symbol's accepted rows into its book at once
        and ``on_book`` once per changed symbol."""
        n = len(frames)
        if not n:
            return
        if recv_ns is None:
            recv_ns = self.clock()
        if not self._fast:
            self._batching = True
            try:
                for f in frames:
                    self.handle_message(f)
            finally:
                self._batching = False
            self._flush_all()
            return
        self.stats["messages"] += n
        frames = [f.encode() if type(f) is str else f for f in frames] if type(frames[0]) is str else frames
        io = self._io
        if len(io) < 2 * n:
            io = self._io = np.empty(4 * n, np.int64)
            self._pre = np.empty((2 * n, FRAME_WIDTH), np.int64)
        if n == 1:
            buf = frames[0]
            io[0] = len(buf)
        else:
            buf = b"".join(frames)
            io[:n] = list(accumulate(map(len, frames)))
        rows = self._rows
        clean = self._run_in()
        order = self._order
        got, j, at, n_tr, done = feed_frames_nb(np.frombuffer(buf, np.uint8), n, recv_ns, io, self._sym_u8,
                                                self._ctl, self._pre, rows, clean, self._books)
        if got < 0:  # some diff did not fit: it goes the general way now, and the buffer grows for the next runs
            self._rows = np.empty((2 * len(rows), 8), np.int64)
        self._rows_buf = rows
        pre = self._pre
        if done:  # the usual case: one symbol's diffs, in its book already (the rest of the Python way, inline)
            st = order[done - 1]
            r = self._ctl[done - 1].tolist()
            acc, dup = r[CTL_COUNTS], r[CTL_COUNTS + 1]
            sync = st.sync
            sync.last_id = st.pending_uid = uid = r[CTL_LAST]
            sync.stats.add("diffs_applied", acc)
            if dup:
                sync.stats.add("duplicates", dup)
            stats = self.stats
            stats["diffs_applied"] += acc
            stats["batches"] += 1
            book = st.book
            bpx, bq, apx, aq = r[CTL_TOP : CTL_TOP + 4]
            if r[CTL_STATUS] == STATUS_DONE and not (book._far_bid or book._far_ask):
                st.top = TopOfBook(bpx if bq else None, bq, apx if aq else None, aq)
                if not (bq and aq and bpx >= apx):  # not crossed (else _applied resyncs)
                    st.last_update_id = uid
                    st.last_update_ns = self.clock()
                    self.depth_lots = r[CTL_DEPTH], r[CTL_DEPTH + 1]
                    try:
                        self.on_book(st.ins.symbol)
                    finally:
                        self.depth_lots = None
                    return
            st.run_lo, st.run_hi = r[CTL_RUN], r[CTL_RUN + 1]  # the window grew, overflow levels, or crossed
            self._finish_run(st, r, uid)
            return
        if j >= n and clean:  # all plain: the accepted rows are one run per symbol, each applied in one call
            try:
                if n_tr:  # before any book changes, as the general way reports them
                    self._report_trades(pre, io[n : n + n_tr])
            finally:
                self._chain_out()
                for k, st in enumerate(order):
                    if st.pending_n:
                        self._flush_run(st, k)
            return
        # the general way from frame j on (what the chains took before it stays pending)
        on_trade = self.on_trade
        live, last_ids, runs, counts = self._live, self._last_ids, self._runs, self._counts
        self._batching = True
        resume = True  # the fused kernel has chained up to frame j already
        try:
            if n_tr:  # the plain trades it passed come before frame j
                self._chain_out()
                self._report_trades(pre, io[n : n + n_tr])
            while True:
                # the common case in numba: diffs continuing their symbol's chain, rows contiguous in the buffer
                if not resume:
                    j, at = live_chain_nb(pre, j, n, at, live, last_ids, runs, counts)
                resume = False
                if j >= n:
                    break
                self._chain_out()
                row = pre[j].tolist()
                kind = row[0]
                if kind == 3 and row[5] >= 0:  # a plain diff the kernel left: a gap, not in sync, another run
                    st = order[row[8]]
                    first, last, pu, k = row[2], row[3], row[4], row[7]
                    lo, at = at, at + k
                    st.spot = pu < 0
                    prev = first - 1 if pu < 0 else pu
                    ok = st.sync.on_live_diff(first, last, prev)
                    if ok > 0:
                        if st.run_hi != lo:  # not contiguous with the run so far: that run waits as an array
                            self._end_run(st)
                            st.run_lo = lo
                        st.run_hi = at
                        st.pending_uid = last
                        st.pending_n += 1
                        self.stats["diffs_applied"] += 1
                    elif ok < 0:
                        self._sync_diff(st, first, last, prev, self._view(rows, lo, at).copy())
                elif kind == 2 and row[6] >= 0:  # a plain trade with its trade time
                    self.stats["trades"] += 1
                    on_trade(Trade(self._names[row[8]], row[2], row[3], row[4], -1 if row[5] else 1,
                                   row[6] * 1_000_000))
                else:
                    if kind == 3:
                        at += row[7]
                    self.stats["messages"] -= 1  # counted again there
                    self.handle_message(frames[j])
                j += 1
                self._chain_in()
        finally:
            self._chain_out()
            self._batching = False
            self._flush_all()

    def _chain_in(self) -> bool:
        """The symbols' chain state into the arrays of :func:`live_chain_nb`; True if no symbol has rows pending."""
        live, last_ids, runs = self._live, self._last_ids, self._runs
        clean = True
        for k, st in enumerate(self._order):
            sync = st.sync
            live[k] = sync.state == SyncState.LIVE
            last_ids[k] = sync.last_id
            runs[k, 0] = st.run_lo
            runs[k, 1] = st.run_hi
            if st.pending_n:
                clean = False
        self._counts[:] = 0
        return clean

    def _run_in(self) -> bool:
        """:meth:`_chain_in` at the start of a run: in the usual case (no rows pending, so every run is empty: the
        kernel zeroes the runs and counts) only the sync states and last ids; the books' arrays as tuples (built
        again when a window was re-laid). Returns False when rows are pending (the full :meth:`_chain_in` done)."""
        ctl, books = self._ctl, self._books
        k = 0
        for st in self._order:
            if st.pending_n:
                self._chain_in()
                return False
            sync = st.sync
            ctl[k, CTL_LIVE] = sync.state is _LIVE
            ctl[k, CTL_LAST] = sync.last_id
            book = st.book
            if book.bid is not books[3 * k] or book.ask is not books[3 * k + 1] or book.st is not books[3 * k + 2]:
                self._books = _book_tuple(self._order)
            k += 1
        return True

    def _report_trades(self, pre: np.ndarray, trades: np.ndarray) -> None:
        """``on_trade`` for the plain trades the fused kernel passed (``trades``: their frame indices)."""
        on_trade, names = self.on_trade, self._names
        for j in trades.tolist():
            row = pre[j].tolist()
            self.stats["trades"] += 1
            on_trade(Trade(names[row[8]], row[2], row[3], row[4], -1 if row[5] else 1, row[6] * 1_000_000))

    def _flush_run(self, st: _Symbol, k: int) -> None:
        """:meth:`_flush` of a symbol whose pending rows are one run of the buffer (row k of the kernels' arrays),
        through :func:`apply_runs_nb`: book and top in one call."""
        lo, hi, uid = st.run_lo, st.run_hi, st.pending_uid
        st.pending_n = 0
        st.run_lo = st.run_hi = 0
        self.stats["batches"] += 1
        book = st.book
        ctl = self._ctl
        ctl[k, CTL_RUN] = lo
        ctl[k, CTL_RUN + 1] = hi
        if book.bid is not self._books[3 * k] or book.ask is not self._books[3 * k + 1]:
            self._books = _book_tuple(self._order)  # a window re-laid by an earlier symbol's on_book
        apply_runs_nb(self._rows_buf, ctl, self._books, k, k + 1)
        st.run_lo, st.run_hi = lo, hi
        self._finish_run(st, ctl[k].tolist(), uid)

    def _finish_run(self, st: _Symbol, r: list, uid: int) -> None:
        """The book of ``st`` took its run (``st.run_lo:run_hi``) in :func:`apply_runs_nb` (``r``: its control row):
        finish what a window too narrow left, read the top, then :meth:`_applied`."""
        book = st.book
        lo, hi = st.run_lo, st.run_hi
        st.run_lo = st.run_hi = 0
        status, i, bpx, bq, apx, aq = r[CTL_STATUS : CTL_STATUS + 6]
        if status != STATUS_DONE:  # a price outside the window: the book grows it and goes on
            book._run(self._view(self._rows_buf, lo, hi), i, False, book._no_ix, book._no_lv)
            top = book.top()
        elif book._far_bid or book._far_ask:
            top = book.top()
        else:
            top = TopOfBook(bpx if bq else None, bq, apx if aq else None, aq)
        self._applied(st, uid, top)

    def _chain_out(self) -> None:
        """What :func:`live_chain_nb` did, back into the symbols (their sync machines, counters, runs)."""
        counts = self._counts
        per_symbol = counts.tolist()
        if not any(acc or dup for acc, dup in per_symbol):
            return
        for k, (acc, dup) in enumerate(per_symbol):
            if acc or dup:
                st = self._order[k]
                if acc:
                    st.sync.last_id = st.pending_uid = int(self._last_ids[k])
                    st.sync.stats.add("diffs_applied", acc)
                    st.pending_n += acc
                    st.run_lo, st.run_hi = self._runs[k].tolist()
                    self.stats["diffs_applied"] += acc
                if dup:
                    st.sync.stats.add("duplicates", dup)
        counts[:] = 0

    @staticmethod
    def _view(rows: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` of an int64[n, 8] buffer as events (the same memory)."""
        return np.ndarray((hi - lo,), event_dt, rows, lo * 64)

    def handle_message(self, text: str | bytes) -> None:
        """Take one frame of the combined stream, the general way (orjson and Python)."""
        self.stats["messages"] += 1
        try:
            msg = orjson.loads(text)
            data = msg["data"] if "data" in msg else msg
            event = data.get("e")
            if event == "depthUpdate":
                self._on_diff(data)
            elif event == "trade":
                self._on_trade(data)
            elif "result" in msg or "id" in msg:
                pass  # an answer to a SUBSCRIBE
            else:
                self.stats["ignored"] += 1
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            self.stats["malformed"] += 1
            self.on_status(None, "malformed", f"{type(exc).__name__}: {str(text)[:120]}")

    def _on_diff(self, d: dict) -> None:
        st = self.symbols.get(d["s"])
        if st is None:
            self.stats["ignored"] += 1
            return
        first, last = int(d["U"]), int(d["u"])
        if last < first:
            raise ValueError(f"U={first} > u={last}")
        pu = d.get("pu")
        prev = first - 1 if pu is None else int(pu)
        # the whole message is read before anything is decided: a bad level rejects the message, not half of it
        ts_ns = int(d.get("T") or d["E"]) * 1_000_000  # transaction time (futures), else event time
        rows = self._rows_of(K_DEPTH, [self._levels(st, d["b"], d["a"], last, ts_ns)])
        st.spot = pu is None
        self._sync_diff(st, first, last, prev, rows)

    def _sync_diff(self, st: _Symbol, first: int, last: int, prev: int, rows: np.ndarray) -> None:
        """A diff (its event rows, an array of its own) to the sync machine, and what it accepts to the book."""
        was_live = st.sync.in_sync
        for ready in st.sync.on_diff(Diff(first, last, prev, rows)):
            self._defer(st, ready.payload, ready.last_id)
        symbol = st.ins.symbol
        if st.sync.in_sync and not was_live:
            self.on_status(symbol, "in_sync", f"u={st.last_update_id}")
        elif st.sync.state == SyncState.AWAIT_SNAPSHOT:
            if was_live:
                self.stats["gaps"] += 1
                self.on_status(symbol, "gap", f"diff U={first} does not follow u={st.last_update_id}")
            self._fetch_snapshot(symbol, st)

    def _on_trade(self, d: dict) -> None:
        st = self.symbols.get(d["s"])
        if st is None:
            self.stats["ignored"] += 1
            return
        t = Trade(d["s"], int(d["t"] if "t" in d else d["a"]), st.ins.px_to_ticks(d["p"]), st.ins.qty_to_lots(d["q"]),
                  -1 if d["m"] else 1, int(d.get("T") or d["E"]) * 1_000_000)
        self.stats["trades"] += 1
        self.on_trade(t)

    @staticmethod
    def _levels(st: "_Symbol", bids, asks, uid: int, ts_ns: int) -> tuple:
        """One diff or snapshot as ``(ts_ns, uid, n_bids, px_ticks list, qty_lots list)``; prices and sizes converted
        exactly and remembered by their text (the same few come again and again)."""
        px_memo, qty_memo, ins = st.px_memo, st.qty_memo, st.ins
        pxs, qtys = [], []
        for levels in (bids, asks):
            for px, qty in levels:
                t = px_memo.get(px)
                if t is None:
                    if len(px_memo) > 100_000:  # bounded: a drifting price must not grow it forever
                        px_memo.clear()
                    t = px_memo[px] = ins.px_to_ticks(px)
                pxs.append(t)
                q = qty_memo.get(qty)
                if q is None:
                    if len(qty_memo) > 100_000:
                        qty_memo.clear()
                    q = ins.qty_to_lots(qty)
                    if q < 0:
                        raise ValueError(f"negative quantity {qty!r}")
                    qty_memo[qty] = q
                qtys.append(q)
        return ts_ns, uid, len(bids), pxs, qtys

    @staticmethod
    def _rows_of(kind: int, parts: list[tuple]) -> np.ndarray:
        """Event rows of several diffs (or one snapshot) in one array: each diff's last row is flagged BATCH_END (a
        diff without levels keeps one empty row for its id); built column by column, not row by row."""
        sizes = [max(len(p[3]), 1) for p in parts]
        ev = empty_events(sum(sizes))
        ev["kind"] = kind
        side, px, qty, ts, uid, flags = ([] for _ in range(6))
        for (t, u, n_b, pxs, qtys), n in zip(parts, sizes):
            k = len(pxs)
            side += [BID] * n_b + [ASK] * (k - n_b) if k else [0]
            px += pxs if k else [0]
            qty += qtys if k else [0]
            ts += [t] * n
            uid += [u] * n
            flags += [0] * (n - 1) + [F_BATCH_END]
        ev["side"], ev["px_ticks"], ev["qty_lots"], ev["id"], ev["flags"] = side, px, qty, uid, flags
        ev["ts_exch_ns"] = ev["ts_local_ns"] = ts
        if kind == K_SNAPSHOT:
            ev["flags"][0] |= F_CLEAR
        return ev

    def _defer(self, st: _Symbol, rows: np.ndarray, uid: int) -> None:
        """Queue an accepted diff (its event rows) for the book. While a run of frames is being taken, diffs pile
        up and go into the book in one call at its end (a call of the book's kernel costs as much as hundreds of
        levels), then ``on_book`` runs once: under a burst the strategy sees the latest book, not every step."""
        self._end_run(st)
        st.pending.append(rows)
        st.pending_uid = uid
        st.pending_n += 1
        self.stats["diffs_applied"] += 1
        if not self._batching or len(st.pending) >= 512:
            self._flush(st)

    def _end_run(self, st: _Symbol) -> None:
        """The run of kernel rows so far joins the pending arrays (a view: flushed before the buffer is reused)."""
        if st.run_hi > st.run_lo:
            st.pending.append(self._view(self._rows_buf, st.run_lo, st.run_hi))
        st.run_lo = st.run_hi = 0

    def _flush_all(self) -> None:
        for st in self._order:
            if st.pending_n:
                self._flush(st)

    def _flush(self, st: _Symbol) -> None:
        if not st.pending_n:
            return
        if st.pending:
            self._end_run(st)
            rows = st.pending[0] if len(st.pending) == 1 else np.concatenate(st.pending)
        else:
            rows = self._view(self._rows_buf, st.run_lo, st.run_hi)
        st.pending = []
        st.pending_n = 0
        st.run_lo = st.run_hi = 0
        self.stats["batches"] += 1
        self._apply(st, rows, st.pending_uid)

    def _apply(self, st: _Symbol, rows: np.ndarray, uid: int) -> None:
        book = st.book
        book.apply(rows)
        self._applied(st, uid, book.top())

    def _applied(self, st: _Symbol, uid: int, top: TopOfBook) -> None:
        """The book of ``st`` took the diffs up to ``uid`` and its top is ``top``: resync if crossed, else on_book."""
        st.last_update_id = uid
        st.top = top
        if st.sync.in_sync and top.crossed:
            self.stats["crossed"] += 1
            st.sync.resync("crossed")
            self.on_status(st.ins.symbol, "resync", f"crossed book after u={uid}")
            self._fetch_snapshot(st.ins.symbol, st)
            return
        st.last_update_ns = self.clock()
        self.on_book(st.ins.symbol)

    # -- snapshots ----------------------------------------------------------------------------------------------------
    def _resync(self, st: _Symbol, reason: str) -> None:
        if st.sync.state != SyncState.AWAIT_SNAPSHOT:
            st.sync.resync(reason)
        self._fetch_snapshot(st.ins.symbol, st)

    def _fetch_snapshot(self, symbol: str, st: _Symbol) -> None:
        if st.snapshot_task is not None and not st.snapshot_task.done():
            return
        st.snapshot_task = asyncio.ensure_future(self._snapshot(symbol, st))

    def handle_snapshot(self, symbol: str, body: bytes | str) -> bool:
        """Take the answer to ``GET /api/v3/depth`` for ``symbol`` (sans-I/O). Returns True if it was applied, False
        if it was stale (older than the buffered diffs: fetch another) or not awaited; raises ValueError, KeyError or
        TypeError for a malformed answer (nothing changed)."""
        st = self.symbols[symbol]
        snap = orjson.loads(body)
        uid = int(snap["lastUpdateId"])
        rows = self._rows_of(K_SNAPSHOT, [self._levels(st, snap["bids"], snap["asks"], uid, self.clock())])
        self.stats["snapshots"] += 1
        use, follow = st.sync.on_snapshot(uid)
        if not use:
            if st.sync.state == SyncState.AWAIT_SNAPSHOT:
                self.stats["stale_snapshots"] += 1
                self.on_status(symbol, "stale_snapshot", f"lastUpdateId {uid} is older than the buffered diffs")
            return False
        # diffs accepted before the sync was lost: the snapshot supersedes them
        st.pending, st.pending_n, st.run_lo, st.run_hi = [], 0, 0, 0
        st.book.clear()
        self.stats["snapshots_applied"] += 1
        self._apply(st, rows, uid)
        for d in follow:
            self._defer(st, d.payload, d.last_id)
        if st.sync.in_sync:
            self.on_status(symbol, "in_sync", f"u={st.last_update_id}")
        return True

    async def _snapshot(self, symbol: str, st: _Symbol) -> None:
        cfg = self.config
        url = f"{cfg.rest_url.rstrip('/')}/api/v3/depth?symbol={symbol}&limit={cfg.snapshot_limit}"
        delay = cfg.reconnect_min_s
        try:
            while not self._stop and st.sync.state == SyncState.AWAIT_SNAPSHOT:
                await asyncio.sleep(0.02)  # let a few diffs buffer first, so the snapshot is not older than all
                try:
                    body = await asyncio.to_thread(_get, url)
                    self.handle_snapshot(symbol, body)  # stale, or a break in the buffered diffs: the loop goes on
                except (OSError, ValueError, KeyError, TypeError, OverflowError) as exc:
                    self.stats["snapshot_errors"] += 1
                    self.on_status(symbol, "snapshot_error", f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, cfg.reconnect_max_s)
        finally:
            st.snapshot_task = None


_LIVE = SyncState.LIVE


def _book_tuple(order: list) -> tuple:
    """The symbols' book windows and states, (bid, ask, state) of each symbol in the kernels' order, in one tuple."""
    return tuple(a for st in order for a in (st.book.bid, st.book.ask, st.book.st))


def _queued_frames(ws) -> Callable[[], int]:
    """How many frames the connection holds already read (websockets' receive buffer), or a function saying 0
    where that is not reachable (the feed then applies each diff at once: correct, only slower under bursts)."""
    frames = getattr(getattr(ws, "recv_messages", None), "frames", None)
    if frames is None or not hasattr(frames, "__len__"):
        return lambda: 0
    return frames.__len__


def _get(url: str) -> bytes:
    with contextlib.closing(urllib.request.urlopen(url, timeout=10)) as r:
        return r.read()


if picows is not None:

    class _PicowsListener(picows.WSListener):
        """Frames of a picows connection to the feed, in runs: a run ends with the last frame of a socket read
        (``last_in_buffer``), so the books take what one read brought at once, without waiting for anything."""

        def __init__(self, feed: FeedClient, closed: asyncio.Future) -> None:
            super().__init__()
            self.feed = feed
            self.closed = closed
            self.run: list[bytes] = []
            self.t_ns = 0
            self.part: list[bytes] = []  # a fragmented message being reassembled

        def on_ws_frame(self, transport, frame) -> None:
            t = frame.msg_type
            if t == _TEXT or t == _BINARY or t == _CONTINUATION:
                if not self.run:
                    self.feed.recv_perf_ns = time.perf_counter_ns()
                    self.t_ns = self.feed.clock()
                if frame.fin and not self.part:
                    self.run.append(frame.get_payload_as_bytes())
                else:
                    self.part.append(frame.get_payload_as_bytes())
                    if frame.fin:
                        self.run.append(b"".join(self.part))
                        self.part = []
                if frame.last_in_buffer or len(self.run) >= 512:
                    self.flush()
            elif t == _CLOSE:
                self.flush()
                if not transport.is_close_frame_sent:
                    transport.send_close(frame.get_close_code())
                transport.disconnect()
            elif frame.last_in_buffer:
                self.flush()

        def flush(self) -> None:
            if self.run:
                run, self.run = self.run, []
                self.feed._last_msg = time.monotonic()
                self.feed.handle_frames(run, self.t_ns)

        def on_ws_disconnected(self, transport) -> None:
            if not self.closed.done():
                self.closed.set_result(None)

    _TEXT, _BINARY, _CONTINUATION, _CLOSE = (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY,
                                             picows.WSMsgType.CONTINUATION, picows.WSMsgType.CLOSE)


class _PicowsHandle:
    """What the feed needs of a picows connection: ``close(code, reason)``, awaitable as websockets' is."""

    def __init__(self, transport, closed: asyncio.Future) -> None:
        self.transport = transport
        self.closed = closed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        tr = self.transport
        if not tr.is_disconnected:
            if not tr.is_close_frame_sent:
                tr.send_close(picows.WSCloseCode(code), reason.encode())
            tr.disconnect()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), 5)
