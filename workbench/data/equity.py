"""US equity tick files in the QuantConnect LEAN layout: NBBO quotes and trade prints, one zipped CSV a day.

Files are named ``YYYYMMDD_quote.zip`` / ``YYYYMMDD_trade.zip`` and hold one headerless CSV each (times in ms after
local midnight, America/New_York; prices in dollars x 10000):

- quote row ``time_ms, bid_px, bid_size, ask_px, ask_size, exchange, condition, suspicious``. One NBBO update is a
  pair of rows with one timestamp: a bid row (ask fields 0), then an ask row (bid fields 0). Each row becomes one
  BBO event (``side`` BID or ASK); ``BATCH_END`` is set on the ask row of a pair and on any row that is not part of
  a pair (e.g. a lone first row); such rows are counted as ``unpaired_rows``. A row with both sides set gives a BID
  then an ASK event (``two_sided_rows``); a row with neither is malformed.
- trade row ``time_ms, price, size, exchange, sale_condition, suspicious`` -> one TRADE event with ``BATCH_END``. The
  aggressor is unknown (``side`` 0) unless :func:`iter_equity_ticks` is asked to ``classify="quote"``.

A row with ``suspicious`` 1 keeps its events with the ``SUSPICIOUS`` flag (``stats["suspicious"]`` counts rows).
Exchange and condition codes are checked as words but not kept. ``id = first_id`` = the row's line number in its
file (the source has no ids; it points back to the input), ``prev_id = -1``.

Times, instruments, chunking, stats and errors follow the conventions of :mod:`workbench.data.lobster` (whose line
parser this module shares): session date from the file name or ``date=``, exact ticks/lots of an instrument
(default :func:`equity_instrument`: tick ``0.0001``, lot 1, so ``px_ticks`` is the file's integer), bad rows counted
as ``malformed`` with ``file:line`` and skipped. A path that is not a zip (or is truncated), or a zip without
exactly one ``.csv`` member, raises UnrecognisedFormatError when the reader is created.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date as _date
from os import PathLike
from pathlib import Path

import numpy as np

from workbench.data.lobster import (
    _MIN_BLOCK_ROWS,
    _PLAIN_WORDS,
    DEFAULT_CHUNK_ROWS,
    _check_chunk_rows,
    _check_field_count,
    _drop_bad,
    _first_lines,
    _iter_raw,
    _Layout,
    _OrderCheck,
    _Rechunker,
    _Rescale,
    _session_date,
    _SessionClock,
)
from workbench.enums import ASK, BID, F_BATCH_END, F_SUSPICIOUS, K_BBO, K_TRADE
from workbench.exceptions import ConfigError, DataError, UnrecognisedFormatError
from workbench.instrument import Instrument
from workbench.stats import ReadStats
from workbench.types import event_dt

__all__ = ["equity_instrument", "iter_equity_quotes", "iter_equity_ticks", "iter_equity_trades"]

_NAME_RE = re.compile(r"^(?P<date>\d{8})_(?P<what>quote|trade)\.zip$", re.IGNORECASE)
_MEMBER_RE = re.compile(r"^\d{8}_(?P<symbol>[^_]+)_(?:quote|trade)_tick\.csv$", re.IGNORECASE)
_MS = 1_000_000
_DAY_MS = 86_400_000

_QUOTE = _Layout(
    "an equity quote file (time, bid_px, bid_size, ask_px, ask_size, exchange, condition, suspicious)",
    [
        ("time_ms", "int"),
        ("bid_px", "int"),
        ("bid_size", "int"),
        ("ask_px", "int"),
        ("ask_size", "int"),
        ("exchange", "str"),
        ("condition", "str"),
        ("suspicious", "int"),
    ],
    plain=_PLAIN_WORDS,
)
_TRADE = _Layout(
    "an equity trade file (time, price, size, exchange, sale_condition, suspicious)",
    [
        ("time_ms", "int"),
        ("price", "int"),
        ("size", "int"),
        ("exchange", "str"),
        ("sale_condition", "str"),
        ("suspicious", "int"),
    ],
    plain=_PLAIN_WORDS,
)


# =====================================================================================================================
# Opening a zip of one CSV
# =====================================================================================================================


def _zip_member(path: Path) -> str:
    """Name of the one CSV member; DataError / UnrecognisedFormatError naming the file otherwise."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as exc:
        raise UnrecognisedFormatError(f"{path.name}: not a zip file, or a truncated one ({exc})") from exc
    except OSError as exc:
        raise DataError(f"cannot open {path}: {exc.strerror or exc}") from exc
    csvs = [n for n in names if n.lower().endswith(".csv")]
    if len(csvs) != 1:
        raise UnrecognisedFormatError(f"{path.name}: expected one .csv member in the zip, found {names}")
    return csvs[0]


def _zip_opener(path: Path, member: str):
    @contextmanager
    def opener():
        try:
            zf = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise DataError(f"cannot open {path}: {exc}") from exc
        with zf, zf.open(member) as raw:
            # ZipExtFile.readline is Python code; a BufferedReader on top reads lines ~4x faster.
            yield io.BufferedReader(raw, 1 << 16)

    return opener


def equity_instrument(path: str | PathLike[str]) -> Instrument:
    """Default instrument of an equity tick zip: tick ``0.0001`` ($ x 10000), lot 1.

    The symbol comes from the CSV member's name (``20131007_ibm_Quote_Tick.csv`` -> ``IBM``), else from the folder.
    """
    path = Path(path)
    symbol = path.parent.name.upper() or "UNKNOWN"
    try:
        m = _MEMBER_RE.match(Path(_zip_member(path)).name)
        if m:
            symbol = m["symbol"].upper()
    except DataError:
        pass
    return Instrument(symbol, tick_size="0.0001", lot_size="1")


class _Source:
    """A checked equity tick zip: where, opener, clock, rescaling."""

    def __init__(self, path, layout: _Layout, what: str, instrument: Instrument | None, date) -> None:
        self.path = Path(path)
        self.where = self.path.name
        m = _NAME_RE.match(self.where)
        self.clock = _SessionClock(_session_date(date, _yyyymmdd(m["date"]) if m else None, self.where))
        if m and m["what"].lower() != what:
            raise UnrecognisedFormatError(f"{self.where}: named as a {m['what'].lower()} file, read as {what}s")
        self.opener = _zip_opener(self.path, _zip_member(self.path))
        self.layout = layout
        _check_field_count(_first_lines(self.opener, self.where), layout.ncols, self.where, layout.what)
        self.instrument = instrument if instrument is not None else equity_instrument(self.path)
        self.px = _Rescale("0.0001", self.instrument.tick_size, "price")
        self.qty = _Rescale("1", self.instrument.lot_size, "size")


def _yyyymmdd(s: str) -> str:
    return f"{s[:4]}-{s[4:6]}-{s[6:]}"


# =====================================================================================================================
# Quotes
# =====================================================================================================================


def iter_equity_quotes(
    path: str | PathLike[str],
    *,
    instrument: Instrument | None = None,
    date: _date | str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stats: ReadStats | None = None,
) -> Iterator[np.ndarray]:
    """BBO events of a ``YYYYMMDD_quote.zip`` file, in chunks of at most ``chunk_rows``.

    ``stats`` gets ``lines``, ``events``, ``malformed``, ``suspicious``, ``unpaired_rows``, ``two_sided_rows``,
    ``out_of_order``. Raises (when called) ConfigError (no date), DataError, UnrecognisedFormatError.
    """
    chunk_rows = _check_chunk_rows(chunk_rows)
    src = _Source(path, _QUOTE, "quote", instrument, date)
    stats = stats if stats is not None else ReadStats()
    return _rechunked(_quote_events(src, max(chunk_rows, _MIN_BLOCK_ROWS), stats), chunk_rows, stats)


def _rechunked(blocks: Iterator[np.ndarray], chunk_rows: int, stats: ReadStats) -> Iterator[np.ndarray]:
    out = _Rechunker(chunk_rows, stats)
    for b in blocks:
        yield from out.push(b)
    yield from out.flush()


def _quote_events(src: _Source, block_rows: int, stats: ReadStats) -> Iterator[np.ndarray]:
    """Quote events per block of lines (not rechunked). A trailing bid row waits for the next block's ask row."""
    in_order = _OrderCheck(src.where, stats)
    carry: dict[str, np.ndarray] | None = None
    for lineno, c in _iter_raw(src.opener, src.layout, src.where, block_rows, stats):
        rows = _valid_quotes(lineno, c, src, stats)
        in_order(rows["time_ms"], rows["lineno"])
        if carry is not None:
            rows = {k: np.concatenate((carry[k], v)) for k, v in rows.items()}
            carry = None
        n = len(rows["lineno"])
        if n and rows["has_bid"][-1] and not rows["has_ask"][-1]:
            carry = {k: v[-1:] for k, v in rows.items()}
            rows = {k: v[:-1] for k, v in rows.items()}
        yield _quotes_to_events(rows, src.clock, stats)
    if carry is not None:  # the file ends with a bid row: a lone one
        yield _quotes_to_events(carry, src.clock, stats)


def _valid_quotes(lineno: np.ndarray, c: dict[str, np.ndarray], src: _Source, stats: ReadStats) -> dict:
    t, bpx, bsz, apx, asz, susp = (c[k] for k in ("time_ms", "bid_px", "bid_size", "ask_px", "ask_size", "suspicious"))
    has_bid = (bpx != 0) | (bsz != 0)
    has_ask = (apx != 0) | (asz != 0)
    bid_ticks, bid_ok = src.px(bpx)
    ask_ticks, ask_ok = src.px(apx)
    bid_lots, bsz_ok = src.qty(bsz)
    ask_lots, asz_ok = src.qty(asz)
    px_ok = None if bid_ok is None else (bid_ok & ask_ok)
    qty_ok = None if bsz_ok is None else (bsz_ok & asz_ok)
    keep = _drop_bad(
        [
            ((t < 0) | (t >= _DAY_MS), lambda i: f"time {t[i]} ms is not a time of day"),
            ((bpx < 0) | (apx < 0), lambda i: f"negative price (bid {bpx[i]}, ask {apx[i]})"),
            ((bsz < 0) | (asz < 0), lambda i: f"negative size (bid {bsz[i]}, ask {asz[i]})"),
            (~has_bid & ~has_ask, lambda i: "quote row with neither a bid nor an ask"),
            ((susp != 0) & (susp != 1), lambda i: f"suspicious flag {susp[i]} is not 0 or 1"),
            (None if px_ok is None else ~px_ok, lambda i: f"price is not a whole tick of {src.px.increment}"),
            (None if qty_ok is None else ~qty_ok, lambda i: f"size is not a whole lot of {src.qty.increment}"),
        ],
        lineno,
        src.where,
        stats,
    )
    rows = {
        "lineno": lineno,
        "time_ms": t,
        "has_bid": has_bid,
        "has_ask": has_ask,
        "bid_px": bid_ticks,
        "bid_qty": bid_lots,
        "ask_px": ask_ticks,
        "ask_qty": ask_lots,
        "suspicious": susp == 1,
    }
    if not keep.all():
        rows = {k: v[keep] for k, v in rows.items()}
    return rows


def _quotes_to_events(rows: dict, clock: _SessionClock, stats: ReadStats) -> np.ndarray:
    """Events of quote rows whose last row is not waiting for its pair (see :func:`_quote_events`)."""
    has_bid, has_ask, t = rows["has_bid"], rows["has_ask"], rows["time_ms"]
    n = len(t)
    bid_only, ask_only = has_bid & ~has_ask, has_ask & ~has_bid
    # Row i opens a pair when it is bid-only and row i+1 is ask-only with the same time.
    nxt_ask_only = np.concatenate((ask_only[1:], [False]))
    nxt_same_t = np.concatenate((t[1:] == t[:-1], [False]))
    opens_pair = bid_only & nxt_ask_only & nxt_same_t
    closes_pair = np.concatenate(([False], opens_pair[:-1])) if n else opens_pair
    two_sided = has_bid & has_ask
    stats.add("suspicious", int(rows["suspicious"].sum()))
    stats.add("two_sided_rows", int(two_sided.sum()))
    stats.add("unpaired_rows", int((~opens_pair & ~closes_pair & ~two_sided).sum()))

    counts = has_bid.astype(np.int64) + has_ask
    end = np.cumsum(counts)
    start = end - counts
    ev = np.zeros(int(end[-1]) if n else 0, dtype=event_dt)
    ts = clock(t * _MS)
    ev["ts_exch_ns"] = ev["ts_local_ns"] = np.repeat(ts, counts)
    ev["kind"] = K_BBO
    ev["id"] = ev["first_id"] = np.repeat(rows["lineno"], counts)
    ev["prev_id"] = -1
    bid_at = start[has_bid]
    ask_at = (start + has_bid)[has_ask]
    ev["side"][bid_at] = BID
    ev["px_ticks"][bid_at] = rows["bid_px"][has_bid]
    ev["qty_lots"][bid_at] = rows["bid_qty"][has_bid]
    ev["side"][ask_at] = ASK
    ev["px_ticks"][ask_at] = rows["ask_px"][has_ask]
    ev["qty_lots"][ask_at] = rows["ask_qty"][has_ask]
    flags = np.zeros(len(ev), dtype=np.uint16)
    flags[(end - 1)[~opens_pair]] = F_BATCH_END
    flags |= np.repeat(np.where(rows["suspicious"], F_SUSPICIOUS, 0).astype(np.uint16), counts)
    ev["flags"] = flags
    return ev


# =====================================================================================================================
# Trades
# =====================================================================================================================


def iter_equity_trades(
    path: str | PathLike[str],
    *,
    instrument: Instrument | None = None,
    date: _date | str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stats: ReadStats | None = None,
) -> Iterator[np.ndarray]:
    """TRADE events (aggressor ``side`` 0, unknown) of a ``YYYYMMDD_trade.zip`` file, in chunks of ``chunk_rows``.

    ``stats`` gets ``lines``, ``events``, ``malformed``, ``suspicious``, ``out_of_order``.
    """
    chunk_rows = _check_chunk_rows(chunk_rows)
    src = _Source(path, _TRADE, "trade", instrument, date)
    stats = stats if stats is not None else ReadStats()
    return _rechunked(_trade_events(src, max(chunk_rows, _MIN_BLOCK_ROWS), stats), chunk_rows, stats)


def _trade_events(src: _Source, block_rows: int, stats: ReadStats) -> Iterator[np.ndarray]:
    in_order = _OrderCheck(src.where, stats)
    for lineno, c in _iter_raw(src.opener, src.layout, src.where, block_rows, stats):
        t, price, size, susp = (c[k] for k in ("time_ms", "price", "size", "suspicious"))
        px_ticks, px_ok = src.px(price)
        qty_lots, qty_ok = src.qty(size)
        keep = _drop_bad(
            [
                ((t < 0) | (t >= _DAY_MS), lambda i: f"time {t[i]} ms is not a time of day"),
                (price <= 0, lambda i: f"price {price[i]} is not positive"),
                (size <= 0, lambda i: f"size {size[i]} is not positive"),
                ((susp != 0) & (susp != 1), lambda i: f"suspicious flag {susp[i]} is not 0 or 1"),
                (None if px_ok is None else ~px_ok,
                 lambda i: f"price {price[i]} is not a whole tick of {src.px.increment}"),
                (None if qty_ok is None else ~qty_ok,
                 lambda i: f"size {size[i]} is not a whole lot of {src.qty.increment}"),
            ],
            lineno,
            src.where,
            stats,
        )
        if not keep.all():
            t, px_ticks, qty_lots, susp, lineno = t[keep], px_ticks[keep], qty_lots[keep], susp[keep], lineno[keep]
        in_order(t, lineno)
        ev = np.zeros(len(t), dtype=event_dt)
        ev["ts_exch_ns"] = ev["ts_local_ns"] = src.clock(t * _MS)
        ev["kind"] = K_TRADE
        ev["flags"] = np.where(susp == 1, F_BATCH_END | F_SUSPICIOUS, F_BATCH_END)
        ev["px_ticks"] = px_ticks
        ev["qty_lots"] = qty_lots
        ev["id"] = ev["first_id"] = lineno
        ev["prev_id"] = -1
        stats.add("suspicious", int((susp == 1).sum()))
        yield ev


# =====================================================================================================================
# Quotes and trades merged
# =====================================================================================================================


def iter_equity_ticks(
    quote_path: str | PathLike[str],
    trade_path: str | PathLike[str],
    *,
    instrument: Instrument | None = None,
    date: _date | str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stats: ReadStats | None = None,
    classify: str | None = None,
) -> Iterator[np.ndarray]:
    """Quotes and trades of one day merged in time order (quotes first at equal times), streamed chunk-wise.

    Each file is read incrementally; at any time at most about one block of each is held. The merge keeps each
    file's own row order (it assumes each file is in time order, as the readers check with ``out_of_order``).

    ``classify="quote"`` sets each trade's aggressor from the prevailing quote (the last non-suspicious BBO of each
    side before it in the merged stream, which includes quotes with the same millisecond): BUY when
    ``px >= ask``, SELL when ``px <= bid``, else 0 (also 0 when both hold, i.e. a locked or crossed quote, or a side
    is unknown). Counters ``buy_initiated``, ``sell_initiated``, ``unclassified``. ``classify=None`` leaves 0.

    ``stats`` receives the counters of both files (``lines`` is their sum) and ``events`` of the merged stream.
    The session date comes from ``date=`` or the file names, which must agree.
    """
    chunk_rows = _check_chunk_rows(chunk_rows)
    if classify not in (None, "quote"):
        raise ConfigError(f"classify must be None or 'quote', got {classify!r}")
    qsrc = _Source(quote_path, _QUOTE, "quote", instrument, date)
    tsrc = _Source(trade_path, _TRADE, "trade", qsrc.instrument, date)
    if qsrc.clock.day != tsrc.clock.day:
        raise ConfigError(f"{qsrc.where} and {tsrc.where} are of different days ({qsrc.clock.day}, {tsrc.clock.day})")
    stats = stats if stats is not None else ReadStats()
    block_rows = max(chunk_rows, _MIN_BLOCK_ROWS)
    merged = _merge(_quote_events(qsrc, block_rows, stats), _trade_events(tsrc, block_rows, stats))
    if classify == "quote":
        merged = _classify_by_quote(merged, stats)
    return _rechunked(merged, chunk_rows, stats)


_EMPTY = np.zeros(0, dtype=event_dt)


def _merge(quotes: Iterator[np.ndarray], trades: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Merge two time-ordered chunk streams; rows of ``quotes`` go first at equal times."""
    q, t = _EMPTY, _EMPTY
    q_done = t_done = False
    while True:
        while not len(q) and not q_done:
            q = next(quotes, None)
            q_done, q = (True, _EMPTY) if q is None else (False, q)
        while not len(t) and not t_done:
            t = next(trades, None)
            t_done, t = (True, _EMPTY) if t is None else (False, t)
        if q_done or t_done:  # one side is over: the other needs no more merging
            if len(q) or len(t):
                yield q if len(q) else t
                q, t = _EMPTY, _EMPTY
                continue
            if q_done and t_done:
                return
            continue
        qt, tt = q["ts_exch_ns"], t["ts_exch_ns"]
        # Safe now: quotes up to the last buffered trade time (later trades are not earlier, and go after quotes of
        # equal time), trades before the last buffered quote time (a later quote may still have that time).
        nq = int(np.searchsorted(qt, tt[-1], side="right"))
        nt = int(np.searchsorted(tt, qt[-1], side="left"))
        if nq == 0 and nt == 0:  # only possible with out-of-order input: take the earlier head to progress
            nq, nt = (1, 0) if qt[0] <= tt[0] else (0, 1)
        both = np.concatenate((q[:nq], t[:nt]))
        yield both[np.argsort(both["ts_exch_ns"], kind="stable")]
        q, t = q[nq:], t[nt:]


def _classify_by_quote(chunks: Iterator[np.ndarray], stats: ReadStats) -> Iterator[np.ndarray]:
    """Set TRADE rows' side from the prevailing (non-suspicious) bid and ask of the merged stream."""
    bid_px = ask_px = 0  # 0: not known yet
    for ev in chunks:
        n = len(ev)
        if not n:
            continue
        usable = (ev["kind"] == K_BBO) & ((ev["flags"] & F_SUSPICIOUS) == 0)
        prevailing = []
        for side, carry in ((BID, bid_px), (ASK, ask_px)):
            idx = np.where(usable & (ev["side"] == side), np.arange(n), -1)
            last = np.maximum.accumulate(idx)
            prevailing.append(np.where(last >= 0, ev["px_ticks"][np.maximum(last, 0)], carry))
        bid_at, ask_at = prevailing
        bid_px, ask_px = int(bid_at[-1]), int(ask_at[-1])
        trade = ev["kind"] == K_TRADE
        px = ev["px_ticks"]
        buy = trade & (ask_at > 0) & (px >= ask_at)
        sell = trade & (bid_at > 0) & (px <= bid_at)
        side = np.where(buy & ~sell, 1, np.where(sell & ~buy, -1, 0)).astype(np.int8)
        ev = ev.copy()
        ev["side"] = np.where(trade, side, ev["side"])
        n_buy, n_sell = int((trade & (side == 1)).sum()), int((trade & (side == -1)).sum())
        stats.add("buy_initiated", n_buy)
        stats.add("sell_initiated", n_sell)
        stats.add("unclassified", int(trade.sum()) - n_buy - n_sell)
        yield ev
