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
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import orjson
import websockets
from websockets.exceptions import ConnectionClosed

from workbench.book.book import L2Book
from workbench.book.sync import BookSync, Diff, SyncState
from workbench.enums import ASK, BID, F_BATCH_END, F_CLEAR, K_DEPTH, K_SNAPSHOT
from workbench.exceptions import ConfigError
from workbench.instrument import Instrument
from workbench.types import empty_events

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

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ConfigError("the feed needs at least one symbol")
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
                 "qty_memo", "pending", "pending_uid")

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
        self.pending: list[tuple] = []  # accepted diffs not yet in the book (see FeedClient._defer)
        self.pending_uid = 0


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
        self._stop = False
        self._batching = False
        self._last_msg = 0.0
        self._ws = None

    # -- state for traders ---------------------------------------------------------------------------------------------
    def in_sync(self, symbol: str) -> bool:
        return self.symbols[symbol].sync.in_sync

    def book(self, symbol: str) -> L2Book:
        return self.symbols[symbol].book

    def stale_symbols(self, now_ns: int | None = None) -> list[str]:
        """Symbols whose book has not changed for ``stale_after_ms`` (or never has)."""
        now = self.clock() if now_ns is None else now_ns
        limit = self.config.stale_after_ms * 1_000_000
        return [s for s, st in self.symbols.items() if not st.last_update_ns or now - st.last_update_ns > limit]

    # -- running ---------------------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, keep the books, reconnect after faults; returns after :meth:`stop` (or ``max_reconnects``)."""
        cfg = self.config
        url = f"{cfg.stream_url.rstrip('/')}/stream?streams={'/'.join(cfg.streams())}"
        backoff = cfg.reconnect_min_s
        attempts = 0
        while not self._stop:
            try:
                async with websockets.connect(url, compression=None, max_queue=4096, open_timeout=10,
                                              ping_interval=20, ping_timeout=60) as ws:
                    self._ws = ws
                    if attempts:
                        self.stats["reconnects"] += 1
                        self.on_status(None, "reconnected", url)
                    self.connected.set()
                    backoff = cfg.reconnect_min_s
                    for st in self.symbols.values():
                        self._resync(st, "connected")
                    await self._read(ws)
            except (OSError, ConnectionClosed, asyncio.TimeoutError, websockets.InvalidHandshake) as exc:
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
            delay = backoff * (1 + random.uniform(-cfg.jitter, cfg.jitter))
            backoff = min(backoff * 2, cfg.reconnect_max_s)
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Close the connection; :meth:`run` returns."""
        self._stop = True
        ws = self._ws
        if ws is not None:
            await ws.close()

    async def _read(self, ws) -> None:
        queued = _queued_frames(ws)
        watchdog = asyncio.create_task(self._watchdog(ws))
        self._batching = True
        try:
            async for msg in ws:
                self._last_msg = time.monotonic()
                self.handle_message(msg)
                if not queued():  # nothing more waiting: the books take what was read, in one call each
                    self._flush_all()
                if self._stop:
                    break
        finally:
            self._batching = False
            watchdog.cancel()
            self._flush_all()
        if not self._stop:
            raise ConnectionClosed(None, None)  # the venue closed the stream: reconnect

    async def _watchdog(self, ws) -> None:
        """Close a connection that has said nothing for ``recv_timeout_s`` (a timer per message would cost more
        than the message)."""
        timeout = self.config.recv_timeout_s
        self._last_msg = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            if time.monotonic() - self._last_msg > timeout:
                self.stats["recv_timeouts"] += 1
                await ws.close(1011, "no message within the receive timeout")
                return

    # -- messages (sans-I/O: a test can feed them directly) ---------------------------------------------------------------
    def handle_message(self, text: str | bytes) -> None:
        """Take one frame of the combined stream."""
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
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.stats["malformed"] += 1
            self.on_status(None, "malformed", f"{type(exc).__name__}: {str(text)[:120]}")

    def _on_diff(self, d: dict) -> None:
        st = self.symbols.get(d["s"])
        if st is None:
            self.stats["ignored"] += 1
            return
        first, last = int(d["U"]), int(d["u"])
        pu = d.get("pu")
        st.spot = pu is None
        prev = first - 1 if pu is None else int(pu)
        rows = self._levels(st, d["b"], d["a"], last, int(d["E"]) * 1_000_000)
        was_live = st.sync.in_sync
        for ready in st.sync.on_diff(Diff(first, last, prev, rows)):
            self._defer(st, ready.payload, ready.last_id)
        if st.sync.in_sync and not was_live:
            self.on_status(d["s"], "in_sync", f"u={st.last_update_id}")
        elif st.sync.state == SyncState.AWAIT_SNAPSHOT:
            if was_live:
                self.stats["gaps"] += 1
                self.on_status(d["s"], "gap", f"diff U={first} does not follow u={st.last_update_id}")
            self._fetch_snapshot(d["s"], st)

    def _on_trade(self, d: dict) -> None:
        st = self.symbols.get(d["s"])
        if st is None:
            self.stats["ignored"] += 1
            return
        t = Trade(d["s"], int(d["t"]), st.ins.px_to_ticks(d["p"]), st.ins.qty_to_lots(d["q"]),
                  -1 if d["m"] else 1, int(d["T"]) * 1_000_000)
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
                    q = qty_memo[qty] = ins.qty_to_lots(qty)
                qtys.append(q)
        return ts_ns, uid, len(bids), pxs, qtys

    @staticmethod
    def _rows(kind: int, parts: list[tuple]) -> np.ndarray:
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

    def _defer(self, st: _Symbol, rows: tuple, uid: int) -> None:
        """Queue an accepted diff for the book. While the connection has more frames waiting, diffs pile up and go
        into the book in one call when none is left (a call of the book's kernel costs as much as hundreds of
        levels), then ``on_book`` runs once: under a burst the strategy sees the latest book, not every step."""
        st.pending.append(rows)
        st.pending_uid = uid
        if not self._batching or len(st.pending) >= 512:
            self._flush(st)

    def _flush_all(self) -> None:
        for st in self.symbols.values():
            if st.pending:
                self._flush(st)

    def _flush(self, st: _Symbol) -> None:
        if not st.pending:
            return
        rows = self._rows(K_DEPTH, st.pending)
        st.pending = []
        self.stats["batches"] += 1
        self._apply(st, rows, st.pending_uid)

    def _apply(self, st: _Symbol, rows: np.ndarray, uid: int) -> None:
        st.book.apply(rows)
        st.last_update_id = uid
        if st.sync.in_sync and st.book.crossed:
            self.stats["crossed"] += 1
            st.sync.resync("crossed")
            self.on_status(st.ins.symbol, "resync", f"crossed book after u={uid}")
            self._fetch_snapshot(st.ins.symbol, st)
            return
        st.last_update_ns = self.clock()
        if rows["kind"][0] == K_DEPTH:
            self.stats["diffs_applied"] += int(np.count_nonzero(rows["flags"] & F_BATCH_END))
        else:
            self.stats["snapshots_applied"] += 1
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

    async def _snapshot(self, symbol: str, st: _Symbol) -> None:
        cfg = self.config
        url = f"{cfg.rest_url.rstrip('/')}/api/v3/depth?symbol={symbol}&limit={cfg.snapshot_limit}"
        delay = cfg.reconnect_min_s
        try:
            while not self._stop and st.sync.state == SyncState.AWAIT_SNAPSHOT:
                await asyncio.sleep(0.02)  # let a few diffs buffer first, so the snapshot is not older than all
                try:
                    body = await asyncio.to_thread(_get, url)
                    snap = orjson.loads(body)
                    uid = int(snap["lastUpdateId"])
                    rows = self._rows(K_SNAPSHOT, [self._levels(st, snap["bids"], snap["asks"], uid, self.clock())])
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    self.stats["snapshot_errors"] += 1
                    self.on_status(symbol, "snapshot_error", f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, cfg.reconnect_max_s)
                    continue
                self.stats["snapshots"] += 1
                use, follow = st.sync.on_snapshot(uid)
                if not use:
                    self.stats["stale_snapshots"] += 1
                    self.on_status(symbol, "stale_snapshot", f"lastUpdateId {uid} is older than the buffered diffs")
                    continue
                st.pending.clear()  # diffs accepted before the sync was lost: the snapshot supersedes them
                st.book.clear()
                self._apply(st, rows, uid)
                for d in follow:
                    self._defer(st, d.payload, d.last_id)
                if st.sync.in_sync:
                    self.on_status(symbol, "in_sync", f"u={st.last_update_id}")
        finally:
            st.snapshot_task = None


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
