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
    __slots__ = ("ins", "book", "sync", "last_update_ns", "last_update_id", "snapshot_task", "spot")

    def __init__(self, ins: Instrument) -> None:
        self.ins = ins
        self.book = L2Book()
        self.sync = BookSync()
        self.last_update_ns = 0
        self.last_update_id = 0
        self.snapshot_task: asyncio.Task | None = None
        self.spot = True  # a diff without "pu": spot's rule (predecessor U - 1)


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
                async with websockets.connect(url, compression=None, max_queue=None, open_timeout=10,
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
        timeout = self.config.recv_timeout_s
        while not self._stop:
            msg = await asyncio.wait_for(ws.recv(), timeout)
            self.handle_message(msg)

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
        rows = self._rows(st.ins, K_DEPTH, d["b"], d["a"], last, int(d["E"]) * 1_000_000)
        was_live = st.sync.in_sync
        for ready in st.sync.on_diff(Diff(first, last, prev, rows)):
            self._apply(st, ready.payload, ready.last_id)
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
    def _rows(ins: Instrument, kind: int, bids, asks, uid: int, ts_ns: int) -> np.ndarray:
        n = len(bids) + len(asks)
        ev = empty_events(max(n, 1))
        ev["kind"] = kind
        ev["ts_exch_ns"] = ev["ts_local_ns"] = ts_ns
        ev["id"] = uid
        k = 0
        for side, levels in ((BID, bids), (ASK, asks)):
            for px, qty in levels:
                ev[k]["side"] = side
                ev[k]["px_ticks"] = ins.px_to_ticks(px)
                ev[k]["qty_lots"] = ins.qty_to_lots(qty)
                k += 1
        if kind == K_SNAPSHOT:
            ev[0]["flags"] |= F_CLEAR
        ev[-1]["flags"] |= F_BATCH_END
        return ev

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
        self.stats["diffs_applied" if rows["kind"][0] == K_DEPTH else "snapshots_applied"] += 1
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
                    rows = self._rows(st.ins, K_SNAPSHOT, snap["bids"], snap["asks"], uid, self.clock())
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
                st.book.clear()
                self._apply(st, rows, uid)
                for d in follow:
                    self._apply(st, d.payload, d.last_id)
                if st.sync.in_sync:
                    self.on_status(symbol, "in_sync", f"u={st.last_update_id}")
        finally:
            st.snapshot_task = None


def _get(url: str) -> bytes:
    with contextlib.closing(urllib.request.urlopen(url, timeout=10)) as r:
        return r.read()
