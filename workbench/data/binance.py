"""Reader of raw Binance captures: ``<local_receive_ts_ns> <json>`` per line, gzip or plain text.

Spot (``depth@100ms``) and USD-M futures (``depth@0ms`` with ``pu``) diffs, ``bookTicker``, ``trade`` /
``aggTrade`` and REST snapshot lines (``{"lastUpdateId", "bids", "asks"}``) become normalized events
(:data:`workbench.types.event_dt`). Several files are read as one continuous stream, line by line, and events come
out in chunks, so a large capture is never held whole.

The local book is synchronised as Binance documents it (:class:`workbench.book.sync.BookSync`); only diffs applied
to a synchronised book are emitted, each as DEPTH rows ending with BATCH_END. An applied snapshot is emitted as
SNAPSHOT rows whose first row is flagged CLEAR (and RESYNC after the first time). When the book loses sync (a gap
in the id chain, or a diff that leaves the book crossed), one row ``kind=DEPTH, side=0, flags=CLEAR|GAP`` tells
downstream books to forget their state; nothing is emitted for the book until the next snapshot line of the capture
(a stream without one simply ends with the book out of sync). Trades and book tickers are emitted regardless.

Timestamps: ``ts_local_ns`` is the capture's receive stamp; ``ts_exch_ns`` is the message's ``T`` (transaction time)
or ``E`` (event time) in ms. Spot ``bookTicker`` and spot snapshots carry no exchange time: theirs is estimated as
the receive stamp plus the last observed (exchange - receive) offset.

Bad input is counted in :class:`workbench.stats.ReadStats`, never raised: ``malformed`` (broken JSON, missing
fields, bad numbers, negative sizes), ``truncated`` (a gzip stream that ends early), ``unsupported`` streams,
``other_symbol``; plus the sync counters and ``crossed``. The book check counts ``bbo_checked`` / ``bbo_matched``:
after each applied diff, the rebuilt best bid/ask against the latest ``bookTicker`` whose update id is not after
the diff's ``u`` (the ticker "in force" at that id).
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson

from workbench.book.book import L2Book
from workbench.book.sync import BookSync, Diff, SyncState
from workbench.enums import (
    ASK,
    BID,
    F_BATCH_END,
    F_CLEAR,
    F_GAP,
    F_RESYNC,
    K_BBO,
    K_DEPTH,
    K_SNAPSHOT,
    K_TRADE,
)
from workbench.exceptions import DataError, UnrecognisedFormatError
from workbench.instrument import BINANCE_SPOT_BTCUSDT, BINANCE_USDM_BTCUSDT, Instrument
from workbench.stats import ReadStats
from workbench.types import event_dt

__all__ = ["BinanceCapture", "infer_instrument", "KNOWN_INSTRUMENTS"]

#: (market, symbol) -> Instrument, for captures whose filters are known; others are inferred from the snapshot.
KNOWN_INSTRUMENTS: dict[tuple[str, str], Instrument] = {
    ("spot", "BTCUSDT"): BINANCE_SPOT_BTCUSDT,
    ("usdm", "BTCUSDT"): BINANCE_USDM_BTCUSDT,
}

_MS = 1_000_000
_GZIP_MAGIC = b"\x1f\x8b"
_READ_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError)


def _open(path: Path):
    try:
        f = open(path, "rb")
        magic = f.read(2)
        f.seek(0)
    except OSError as exc:
        raise DataError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    return gzip.GzipFile(fileobj=f, mode="rb") if magic == _GZIP_MAGIC else f


def _memo(convert, max_size: int = 1 << 16):
    """``convert`` with a bounded memo of its results; errors are raised each time and never remembered."""
    cache: dict = {}
    get = cache.get

    def memo(text):
        v = get(text)
        if v is None:
            if not isinstance(text, str):
                raise ValueError(f"expected a decimal string, got {text!r}")
            v = convert(text)
            if len(cache) >= max_size:
                cache.clear()
            cache[text] = v
        return v

    return memo


def _split(line: bytes) -> tuple[int, dict]:
    """``<ts> <json>`` -> (ts, object); ValueError (orjson's included) on anything else."""
    sp = line.index(b" ")
    obj = orjson.loads(line[sp + 1 :])
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return int(line[:sp]), obj


def _check_format(path: Path) -> None:
    """Raise UnrecognisedFormatError unless the first non-empty line looks like ``<digits> {``."""
    try:
        with _open(path) as f:
            for raw in f:
                line = raw.strip()
                if not line:
                    continue
                head, sp, rest = line.partition(b" ")
                if head.isdigit() and sp and rest.startswith(b"{"):
                    return
                break
            else:
                raise UnrecognisedFormatError(f"{path}: empty file, not a Binance capture")
    except _READ_ERRORS as exc:
        if isinstance(exc, UnrecognisedFormatError):
            raise
        raise UnrecognisedFormatError(f"{path}: unreadable ({exc.__class__.__name__}: {exc})") from exc
    raise UnrecognisedFormatError(f"{path}: not a Binance capture (expected '<local_ts_ns> <json>' lines)")


def _decimal_units(texts: Sequence[str]) -> tuple[int, list[int]]:
    d = max((len(t) - t.index(".") - 1 if "." in t else 0) for t in texts)
    return d, [int(Decimal(t).scaleb(d)) for t in texts]


def _gcd_increment(texts: Sequence[str]) -> str:
    d, vals = _decimal_units([t for t in texts if Decimal(t) != 0] or ["1"])
    g = 0
    for v in vals:
        g = math.gcd(g, abs(v))
    return str(Decimal(g or 1).scaleb(-d).normalize().__format__("f"))


def infer_instrument(paths: Sequence[str | Path], max_lines: int = 200_000) -> tuple[str, Instrument]:
    """(market, instrument) of a capture: ``market`` is ``"usdm"`` when diffs carry ``pu``, else ``"spot"``.

    Known (market, symbol) pairs come from :data:`KNOWN_INSTRUMENTS`. Otherwise tick and lot sizes are the greatest
    common increment of the prices and sizes of the first snapshot (or of the first diffs when there is none);
    a later value finer than that is counted as malformed, and the user should then pass the instrument.
    """
    market, symbol, prices, sizes = None, None, [], []
    seen = 0
    for path in paths:
        _check_format(Path(path))
        try:
            with _open(Path(path)) as f:
                for raw in f:
                    seen += 1
                    if seen > max_lines:
                        break
                    try:
                        _, obj = _split(raw)
                    except ValueError:
                        continue
                    data = obj.get("data", obj)
                    if not isinstance(data, dict):
                        continue
                    if data.get("e") == "depthUpdate":
                        market = market or ("usdm" if "pu" in data else "spot")
                        symbol = symbol or data.get("s")
                        if len(prices) < 5000:
                            for p, q in list(data.get("b", ())) + list(data.get("a", ())):
                                prices.append(p)
                                sizes.append(q)
                    elif "s" in data:
                        symbol = symbol or data.get("s")
                    if "lastUpdateId" in obj and "bids" in obj:
                        levels = list(obj["bids"]) + list(obj["asks"])
                        prices = [p for p, _ in levels]
                        sizes = [q for _, q in levels]
                        if market is not None and symbol is not None:
                            break
                if market and symbol and prices and seen <= max_lines:
                    pass
        except _READ_ERRORS:
            pass
        if market and symbol and prices:
            break
    market = market or "spot"
    symbol = symbol or "UNKNOWN"
    known = KNOWN_INSTRUMENTS.get((market, symbol))
    if known is not None:
        return market, known
    if not prices:
        raise UnrecognisedFormatError(f"{paths[0]}: no depth data to infer tick and lot sizes from")
    return market, Instrument(symbol, tick_size=_gcd_increment(prices), lot_size=_gcd_increment(sizes))


class BinanceCapture:
    """Iterate the normalized events of one or more consecutive Binance capture files.

    Parameters
    ----------
    paths : capture files, in stream order (e.g. ``[..._20240808.gz, ..._20240809.gz]``).
    instrument : tick and lot sizes; inferred with :func:`infer_instrument` when omitted.
    chunk_rows : events per chunk (a chunk ends at a message boundary, so it can hold a few more).
    max_buffer : diffs buffered while waiting for a snapshot.

    After iteration, ``stats`` holds the counters, ``book`` the reader's own book and ``sync`` the sync state.
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        instrument: Instrument | None = None,
        chunk_rows: int = 65_536,
        max_buffer: int = 100_000,
        stats: ReadStats | None = None,
    ) -> None:
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        if not self.paths:
            raise DataError("no capture file given")
        for p in self.paths:
            _check_format(p)
        if instrument is None:
            self.market, instrument = infer_instrument(self.paths)
        else:
            self.market = infer_instrument(self.paths)[0]
        self.instrument = instrument
        self.symbol = instrument.symbol
        # The same few thousand price and size strings recur all day: remember their exact conversions.
        self._tick = _memo(instrument.px_to_ticks)
        self._lot = _memo(instrument.qty_to_lots)
        self.chunk_rows = int(chunk_rows)
        self.stats = stats if stats is not None else ReadStats()
        self.sync = BookSync(max_buffer=max_buffer, stats=self.stats)
        self.book = L2Book()
        self._rows: list[tuple] = []
        self._offset_ns = 0  # last seen exchange - receive time
        self._tickers: deque = deque(maxlen=4096)  # recent bookTickers (id, bid px, bid qty, ask px, ask qty)
        self._pending: deque = deque()  # (u, top of book) of applied diffs awaiting their ticker check
        self._where = ""  # file:line being read, for problem reports
        self._lost_reported = False  # a CLEAR|GAP row was emitted since the last applied snapshot
        self._last_applied = -1

    # -- iteration --------------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray]:
        st = self.stats
        for path in self.paths:
            name = path.name
            lineno = 0
            try:
                with _open(path) as f:
                    for raw in f:
                        lineno += 1
                        st.add("lines")
                        self._where = f"{name}:{lineno}"
                        try:
                            self._line(raw)
                        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                            st.problem("malformed", f"{name}:{lineno}", f"{exc.__class__.__name__}: {exc}")
                        if len(self._rows) >= self.chunk_rows:
                            yield self._flush()
            except _READ_ERRORS as exc:
                st.problem("truncated", f"{name}:{lineno + 1}", f"{exc.__class__.__name__}: {exc}")
        self.sync.finish()
        while self._pending:
            self._resolve_check()
        if self._rows:
            yield self._flush()

    def events(self) -> np.ndarray:
        """All events at once (for small captures and tests)."""
        chunks = list(self)
        return np.concatenate(chunks) if chunks else np.zeros(0, event_dt)

    def _flush(self) -> np.ndarray:
        out = np.array(self._rows, dtype=event_dt)
        self._rows = []
        self.stats.add("events", len(out))
        return out

    # -- one line ---------------------------------------------------------------------------------------------------
    def _line(self, raw: bytes) -> None:
        if not raw.strip():
            return
        ts_local, obj = _split(raw)
        stream = obj.get("stream")
        if stream is None:
            if "lastUpdateId" in obj:
                self._snapshot(ts_local, obj)
                return
            raise ValueError("neither a stream message nor a snapshot")
        data = obj["data"]
        kind = stream.rpartition("@")[2] if "@depth" not in stream else "depth"
        if "@depth" in stream and data.get("e") == "depthUpdate":
            self._diff(ts_local, data)
        elif kind == "bookTicker":
            self._ticker(ts_local, data)
        elif kind in ("trade", "aggTrade"):
            self._trade(ts_local, data)
        else:
            self.stats.add("unsupported")

    def _exch_ns(self, ts_local: int, data: dict) -> int:
        ms = data.get("T") or data.get("E")
        if ms is None:
            return ts_local + self._offset_ns
        ts = int(ms) * _MS
        self._offset_ns = ts - ts_local
        return ts

    def _same_symbol(self, data: dict) -> bool:
        s = data.get("s")
        if s is not None and s != self.symbol:
            self.stats.add("other_symbol")
            return False
        return True

    def _levels(self, side: int, levels, kind: int, ts_exch: int, ts_local: int, ids: tuple, rows: list) -> None:
        tick, lot = self._tick, self._lot
        first_id, last_id, prev_id = ids
        for p, q in levels:
            qty = lot(q)
            if qty < 0:
                raise ValueError(f"negative quantity {q!r}")
            rows.append((ts_exch, ts_local, kind, side, 0, tick(p), qty, last_id, first_id, prev_id))

    def _diff(self, ts_local: int, data: dict) -> None:
        if not self._same_symbol(data):
            return
        first, last = int(data["U"]), int(data["u"])
        prev = int(data["pu"]) if "pu" in data else first - 1
        if last < first:
            raise ValueError(f"U={first} > u={last}")
        ts_exch = self._exch_ns(ts_local, data)
        ids = (first, last, int(data["pu"]) if "pu" in data else -1)
        rows: list[tuple] = []
        # Parse the whole message before deciding anything: a bad level rejects the message, not half of it.
        self._levels(BID, data["b"], K_DEPTH, ts_exch, ts_local, ids, rows)
        self._levels(ASK, data["a"], K_DEPTH, ts_exch, ts_local, ids, rows)
        if not rows:
            rows.append((ts_exch, ts_local, K_DEPTH, 0, 0, 0, 0, last, first, ids[2]))  # keeps the id chain
        self.stats.add("diffs")
        was_synced = self.sync.state != SyncState.AWAIT_SNAPSHOT
        self._apply_all(self.sync.on_diff(Diff(first, last, prev, rows)))
        if was_synced and self.sync.state == SyncState.AWAIT_SNAPSHOT and not self._lost_reported:
            self._lose_sync(ts_exch, ts_local, first, last, f"gap: U={first} pu={prev} after u={self._last_applied}")

    def _snapshot(self, ts_local: int, obj: dict) -> None:
        last = int(obj["lastUpdateId"])
        ts_exch = self._exch_ns(ts_local, obj)
        ids = (last, last, -1)
        rows: list[tuple] = []
        self._levels(BID, obj["bids"], K_SNAPSHOT, ts_exch, ts_local, ids, rows)
        self._levels(ASK, obj["asks"], K_SNAPSHOT, ts_exch, ts_local, ids, rows)
        self.stats.add("snapshots")
        resync = self.sync.synced_once
        apply, diffs = self.sync.on_snapshot(last)
        if not apply:
            return
        self._lost_reported = False
        self._last_applied = last
        if not rows:
            rows.append((ts_exch, ts_local, K_SNAPSHOT, 0, 0, 0, 0, last, last, -1))
        r0 = rows[0]
        rows[0] = r0[:4] + (F_CLEAR | (F_RESYNC if resync else 0),) + r0[5:]
        self._emit_batch(rows)
        self._apply_all(diffs)
        if self.sync.state == SyncState.AWAIT_SNAPSHOT and not self._lost_reported:
            # the chain broke inside the diffs buffered before this snapshot
            self._lose_sync(ts_exch, ts_local, last, last, "gap in the diffs buffered before the snapshot")

    def _apply_all(self, diffs: list[Diff]) -> None:
        for k, d in enumerate(diffs):
            self._emit_batch(d.payload)
            self._last_applied = d.last_id
            if self.book.crossed:
                # A consistent id chain cannot produce a crossed book: the input is wrong, so is the book.
                self.stats.add("crossed")
                self.sync.resync("crossed", requeue=diffs[k + 1 :])
                last = d.payload[-1]
                self._lose_sync(last[0], last[1], d.first_id, d.last_id, f"crossed book after u={d.last_id}")
                return
            t = self.book.top()
            self._pending.append((d.last_id, (t.bid_px_ticks, t.bid_qty_lots, t.ask_px_ticks, t.ask_qty_lots)))
            if len(self._pending) > 100_000:  # no tickers in this capture: do not hold on to every diff
                self._pending.popleft()
                self.stats.add("bbo_unchecked")

    def _lose_sync(self, ts_exch: int, ts_local: int, first_id: int, last_id: int, why: str) -> None:
        """The book is unknown from here: tell downstream books (CLEAR|GAP row), forget ours, say where."""
        self._rows.append((ts_exch, ts_local, K_DEPTH, 0, F_CLEAR | F_GAP, 0, 0, last_id, first_id, -1))
        self.book.clear()
        self._lost_reported = True
        self.stats.note(self._where, f"out of sync: {why}")

    def _emit_batch(self, rows: list[tuple]) -> None:
        last = rows[-1]
        rows[-1] = last[:4] + (last[4] | F_BATCH_END,) + last[5:]
        self._rows.extend(rows)
        self.book.apply(np.array(rows, dtype=event_dt))

    def _ticker(self, ts_local: int, data: dict) -> None:
        if not self._same_symbol(data):
            return
        tick, lot = self._tick, self._lot
        uid = int(data["u"])
        bpx, bq, apx, aq = tick(data["b"]), lot(data["B"]), tick(data["a"]), lot(data["A"])
        if bq < 0 or aq < 0:
            raise ValueError("negative quantity in bookTicker")
        ts_exch = self._exch_ns(ts_local, data)
        self._rows.append((ts_exch, ts_local, K_BBO, BID, 0, bpx, bq, uid, uid, -1))
        self._rows.append((ts_exch, ts_local, K_BBO, ASK, F_BATCH_END, apx, aq, uid, uid, -1))
        self._tickers.append((uid, bpx, bq, apx, aq))
        self.stats.add("tickers")
        # Tickers and diffs travel on different streams: the ticker in force at a diff's id is known only once a
        # ticker with a later id has arrived.
        while self._pending and self._pending[0][0] < uid:
            self._resolve_check()

    def _resolve_check(self) -> None:
        """Compare the oldest pending diff's top of book with the latest ticker whose id is not after its u."""
        last_id, top = self._pending.popleft()
        for uid, bpx, bq, apx, aq in reversed(self._tickers):
            if uid <= last_id:
                self.stats.add("bbo_checked")
                if top == (bpx, bq, apx, aq):
                    self.stats.add("bbo_matched")
                return

    def _trade(self, ts_local: int, data: dict) -> None:
        if not self._same_symbol(data):
            return
        px = self._tick(data["p"])
        qty = self._lot(data["q"])
        if qty <= 0:
            raise ValueError(f"non-positive trade quantity {data['q']!r}")
        maker = data["m"]
        if not isinstance(maker, bool):
            raise ValueError("field 'm' is not a boolean")
        # m: the buyer was the maker, so the seller took liquidity
        side = ASK if maker else BID
        tid = int(data["t"] if "t" in data else data["a"])
        self._rows.append((self._exch_ns(ts_local, data), ts_local, K_TRADE, side, F_BATCH_END, px, qty, tid, tid, -1))
        self.stats.add("trades")
