"""LOBSTER readers: NASDAQ order-level (L3) message files and the matching order book files.

A message file (``TICKER_YYYY-MM-DD_<start-ms>_<end-ms>_message_<levels>.csv``, no header) has one message a
line: ``time, type, order_id, size, price, direction`` (see ``../shared/data/README.md`` and LOBSTER's own readme).
:func:`iter_lobster_messages` turns it into :data:`workbench.types.event_dt` chunks:

====  ==================  ===========================================================================================
type  ``kind``            row
====  ==================  ===========================================================================================
1     ORDER_ADD           ``side`` = direction, ``id`` = order id, ``qty_lots`` = size, ``px_ticks`` = price
2     ORDER_CANCEL        partial cancel, ``qty_lots`` = size removed
3     ORDER_DELETE        full delete, ``qty_lots`` = size removed
4     ORDER_EXEC          execution of a visible resting order; ``side`` = side of the *resting* order
5     ORDER_EXEC_HIDDEN   execution of hidden liquidity (order id 0 in LOBSTER's files); ``side`` = resting side
6     CROSS_TRADE         auction / cross trade
7     STATUS              ``id`` = :class:`~workbench.enums.TradingStatus` from LOBSTER's price column
                          (-1 halt -> HALTED, 0 quoting -> QUOTING, 1 trading -> TRADING); side, px, qty 0
====  ==================  ===========================================================================================

Aggressor of an execution: LOBSTER's direction is the side of the resting order, so an execution of a resting buy
order (``side`` +1) is a *sell*-initiated trade, and the aggressor is ``-side`` (:func:`aggressor_side`). No TRADE
rows are added: a book replay derives trades from the executions.

Conventions shared by the readers of this package (:mod:`workbench.data.equity` uses the same machinery):

- Chunks of at most ``chunk_rows`` rows; the file is read in blocks of lines, never whole.
- Times are int64 ns since the Unix epoch: the wall-clock time of day in the file is placed on the session date
  (from the file name, or ``date=``) in America/New_York, with the UTC offset in force at that wall time (DST is
  taken into account). ``ts_local_ns == ts_exch_ns``: the source has one clock. Seconds are parsed from their
  decimal text without a float (float64 loses nanoseconds at 5e4 s).
- Prices and sizes are exact integers of the :class:`~workbench.instrument.Instrument`. The default instrument
  (:func:`lobster_instrument`) has tick ``0.0001`` and lot ``1``, so ``px_ticks`` is the file's integer as is; a
  coarser instrument converts exactly, and a row that is not a whole tick/lot is malformed.
- Every row is one message: every event has ``BATCH_END``. ``first_id = id``, ``prev_id = -1``.
- Bad rows (wrong field count, bad number, unknown type, non-positive size, ...) are counted as ``malformed`` in
  the :class:`~workbench.stats.ReadStats` with ``file:line`` and skipped; blank lines count as ``blank_lines``;
  a time earlier than the previous row's counts as ``out_of_order`` (the row is kept). Counters: ``lines``,
  ``events``, ``malformed``, ``type_1`` ... ``type_7`` (rows kept, by LOBSTER type).
- A file that cannot be opened raises :class:`~workbench.exceptions.DataError`; one whose first rows do not have
  the format's field count raises :class:`~workbench.exceptions.UnrecognisedFormatError` (both eagerly, when the
  reader is created). An empty file yields nothing.

Parsing is two-tier: a block whose bytes are all plain (digits, ``,.-``, newlines) goes through pyarrow's CSV
parser at C speed; any other block is checked line by line against the same grammar, so bad rows are found and
named, and the good ones take the same conversion.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import date as _date
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import islice
from os import PathLike
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from workbench.enums import (
    F_BATCH_END,
    K_CROSS_TRADE,
    K_ORDER_ADD,
    K_ORDER_CANCEL,
    K_ORDER_DELETE,
    K_ORDER_EXEC,
    K_ORDER_EXEC_HIDDEN,
    K_STATUS,
    TradingStatus,
)
from workbench.exceptions import ConfigError, DataError, UnrecognisedFormatError
from workbench.instrument import Instrument
from workbench.stats import ReadStats
from workbench.types import event_dt

__all__ = [
    "LOBSTER_EMPTY_ASK_PX",
    "LOBSTER_EMPTY_BID_PX",
    "LOBSTER_EMPTY_SIZE",
    "SESSION_TZ",
    "aggressor_side",
    "iter_lobster_messages",
    "iter_lobster_orderbook",
    "lobster_instrument",
    "parse_seconds_ns",
]

#: Order book file: price of an empty ask level (dollars x 10000), as LOBSTER pads missing levels.
LOBSTER_EMPTY_ASK_PX = 9_999_999_999
#: Order book file: price of an empty bid level.
LOBSTER_EMPTY_BID_PX = -9_999_999_999
#: Order book file: size of an empty level.
LOBSTER_EMPTY_SIZE = 0

#: Time zone of the US equity sessions (LOBSTER and the equity tick files give wall-clock times of day there).
SESSION_TZ = "America/New_York"

DEFAULT_CHUNK_ROWS = 65536
_MIN_BLOCK_ROWS = 4096  # lines read per parse, at least: pyarrow's per-call cost dwarfs tiny blocks
_SNIFF_ROWS = 10
_NS = 1_000_000_000
_I64 = np.iinfo(np.int64)

# =====================================================================================================================
# Exact decimal seconds -> ns
# =====================================================================================================================

_SECS_GRAMMAR = r"[0-9]{1,9}(?:\.[0-9]{0,9}0*)?"  # up to 9 decimals that matter; more are allowed only as zeros
_SECS_RE = re.compile(_SECS_GRAMMAR)


def parse_seconds_ns(text: str) -> int:
    """Exact nanoseconds of a non-negative decimal seconds string, e.g. ``"34200.017459617"`` -> 34200017459617000.

    Grammar: 1-9 integer digits, optionally a dot and decimals; decimals beyond the 9th must be zeros (a finer time
    is not representable in ns). Raises ValueError otherwise. No float is involved.
    """
    if not _SECS_RE.fullmatch(text):
        raise ValueError(f"not a time in seconds with at most 9 significant decimals: {text!r}")
    whole, _, frac = text.partition(".")
    return int(whole) * _NS + int(frac[:9].ljust(9, "0"))


def _secs_to_ns_arrow(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Vectorized :func:`parse_seconds_ns` for strings already matching the grammar."""
    parts = pc.extract_regex(col, r"^(?P<w>[0-9]+)(?:\.(?P<f>[0-9]*))?$")
    whole = pc.cast(pc.struct_field(parts, "w"), pa.int64())
    frac = pc.utf8_slice_codeunits(pc.utf8_rpad(pc.struct_field(parts, "f"), 9, "0"), 0, 9)
    ns = pc.add(pc.multiply(whole, _NS), pc.cast(frac, pa.int64()))
    return np.asarray(ns.to_numpy(), dtype=np.int64)


# =====================================================================================================================
# Session dates and the wall clock
# =====================================================================================================================


def _as_date(value: object, where: str) -> _date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, _date):
        return value
    if isinstance(value, str):
        try:
            return _date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}: not a session date: {value!r} (give a datetime.date or 'YYYY-MM-DD')")


def _session_date(date: object, from_name: str | None, where: str) -> _date:
    """The session date: ``date=`` or the one in the file name; both given must agree."""
    named = _as_date(from_name, f"{where} (date in the file name)") if from_name is not None else None
    given = _as_date(date, where) if date is not None else None
    if given is None and named is None:
        raise ConfigError(f"{where}: no session date in the file name; pass date='YYYY-MM-DD'")
    if given is not None and named is not None and given != named:
        raise ConfigError(f"{where}: date={given} contradicts the date {named} in the file name")
    return given if given is not None else named  # type: ignore[return-value]


class _SessionClock:
    """Wall-clock ns after local midnight of one session date -> ns since the Unix epoch.

    The UTC offset is looked up per 15 minutes of wall time (time zones change offsets on quarter hours), so a
    session on a DST transition day is placed correctly too; times past 24 h keep the last offset of the day.
    """

    _STEP_NS = 15 * 60 * _NS

    def __init__(self, day: _date, tz: str = SESSION_TZ) -> None:
        zone = ZoneInfo(tz)
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        naive_midnight_ns = (day - _date(1970, 1, 1)).days * 86_400 * _NS
        offsets = [
            (midnight + timedelta(minutes=15 * k)).utcoffset() // timedelta(microseconds=1) * 1000  # type: ignore
            for k in range(96)  # aware + timedelta is wall-clock arithmetic: utcoffset() is re-evaluated
        ]
        self.day = day
        self._base_ns = naive_midnight_ns - np.asarray(offsets, dtype=np.int64)

    def __call__(self, tod_ns: np.ndarray) -> np.ndarray:
        step = np.minimum(tod_ns // self._STEP_NS, 95)
        return self._base_ns[step] + tod_ns


# =====================================================================================================================
# Exact rescaling from file units to instrument increments
# =====================================================================================================================


class _Rescale:
    """``file value x file_unit / increment`` as exact integers; rows that are not whole increments are flagged."""

    def __init__(self, file_unit: str, increment: str, what: str) -> None:
        ratio = Fraction(Decimal(file_unit)) / Fraction(Decimal(increment))
        self.num, self.den = ratio.numerator, ratio.denominator
        if self.num > 2**40:
            raise ConfigError(f"{what} increment {increment} is too fine for file units of {file_unit}")
        self.increment, self.identity = increment, ratio == 1

    def __call__(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(converted, ok mask or None when every row converts)."""
        if self.identity:
            return values, None
        limit = _I64.max // self.num
        ok = (values <= limit) & (values >= -limit)
        q, r = np.divmod(np.where(ok, values, 0) * self.num, self.den)
        ok &= r == 0
        return q, ok


# =====================================================================================================================
# Line-block CSV parsing (shared with workbench.data.equity)
# =====================================================================================================================

_FIELD_GRAMMAR = {
    "int": (rb"-?[0-9]+", "an integer"),
    "secs": (_SECS_GRAMMAR.encode(), "a time in seconds (at most 9 significant decimals)"),
    "str": (rb"[\x21-\x2b\x2d-\x7e]*", "a printable ASCII word"),
}
_PLAIN_NUMERIC = b"0123456789,.-\r\n"
_PLAIN_WORDS = _PLAIN_NUMERIC + b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class _Layout:
    """Columns of a headerless CSV format: names, kinds (``int``, ``secs``, ``str``) and the bytes of a plain block.

    ``str`` columns are checked against the grammar but not returned.
    """

    def __init__(self, what: str, columns: Iterable[tuple[str, str]], plain: bytes = _PLAIN_NUMERIC) -> None:
        self.what = what
        self.names, self.kinds = zip(*columns)
        self.ncols = len(self.names)
        self.plain = plain
        self._field_res = [re.compile(_FIELD_GRAMMAR[k][0]) for k in self.kinds]
        self.used = [n for n, k in zip(self.names, self.kinds) if k != "str"]
        self._read = pcsv.ReadOptions(column_names=list(self.names), use_threads=False, block_size=1 << 22)
        self._parse = pcsv.ParseOptions(quote_char=False, double_quote=False, escape_char=False)
        self._convert = pcsv.ConvertOptions(
            column_types={n: pa.int64() if k == "int" else pa.string() for n, k in zip(self.names, self.kinds)},
            include_columns=self.used,
            null_values=[],
            strings_can_be_null=False,
        )

    def explain(self, body: bytes) -> str | None:
        """Why one line (without its newline) is not a row of this layout; None if it is."""
        fields = body.split(b",")
        if len(fields) != self.ncols:
            return f"{len(fields)} fields, expected {self.ncols}"
        for name, kind, rx, f in zip(self.names, self.kinds, self._field_res, fields):
            if not rx.fullmatch(f):
                return f"{name} {f.decode('ascii', 'replace')!r} is not {_FIELD_GRAMMAR[kind][1]}"
            if kind == "int" and not _I64.min <= int(f) <= _I64.max:
                return f"{name} {f.decode()} does not fit in int64"
        return None

    def convert_arrow(self, data: bytes, nrows: int) -> dict[str, np.ndarray] | None:
        """Columns of ``data`` via pyarrow, or None if pyarrow does not see exactly ``nrows`` valid rows."""
        try:
            table = pcsv.read_csv(io.BytesIO(data), self._read, self._parse, self._convert)
        except pa.ArrowInvalid:
            return None
        if table.num_rows != nrows:
            return None
        out = {}
        for name, kind in zip(self.names, self.kinds):
            if kind == "int":
                out[name] = np.asarray(table.column(name).to_numpy(), dtype=np.int64)
            elif kind == "secs":
                col = table.column(name)
                if not pc.all(pc.match_substring_regex(col, f"^{_SECS_GRAMMAR}$")).as_py():
                    return None
                out[name] = _secs_to_ns_arrow(col)
        return out

    def convert_python(self, bodies: list[bytes]) -> dict[str, np.ndarray]:
        """Plain-Python reference conversion of lines that passed :meth:`explain`."""
        rows = [b.split(b",") for b in bodies]
        out = {}
        for j, (name, kind) in enumerate(zip(self.names, self.kinds)):
            if kind == "int":
                out[name] = np.array([int(r[j]) for r in rows], dtype=np.int64)
            elif kind == "secs":
                out[name] = np.array([parse_seconds_ns(r[j].decode()) for r in rows], dtype=np.int64)
        return out

    def empty(self) -> dict[str, np.ndarray]:
        return {n: np.empty(0, dtype=np.int64) for n in self.used}


def _parse_block(
    lines: list[bytes], first_lineno: int, layout: _Layout, where: str, stats: ReadStats, *, fast: bool = True
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Line numbers and columns of the good rows of one block; bad rows are counted in ``stats``."""
    n = len(lines)
    if fast:
        data = b"".join(lines)
        # Plain bytes only: pyarrow's int parser also accepts hex ('0x10') and surrounding blanks, our grammar not.
        if not data.translate(None, layout.plain) and b"0x" not in data and b"0X" not in data:
            cols = layout.convert_arrow(data, n)
            if cols is not None:
                return np.arange(first_lineno, first_lineno + n, dtype=np.int64), cols
    good: list[bytes] = []
    good_lineno: list[int] = []
    for i, line in enumerate(lines):
        body = line[:-1] if line.endswith(b"\n") else line
        if body.endswith(b"\r"):
            body = body[:-1]
        if not body.strip():
            stats.add("blank_lines")
            continue
        why = layout.explain(body)
        if why is None:
            good.append(body)
            good_lineno.append(first_lineno + i)
        else:
            stats.problem("malformed", f"{where}:{first_lineno + i}", why)
    if not good:
        return np.empty(0, dtype=np.int64), layout.empty()
    cols = layout.convert_arrow(b"\n".join(good) + b"\n", len(good)) if fast else None
    if cols is None:
        cols = layout.convert_python(good)
    return np.asarray(good_lineno, dtype=np.int64), cols


Opener = Callable[[], AbstractContextManager[BinaryIO]]
_READ_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile)


def _open_file(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise DataError(f"cannot open {path}: {exc.strerror or exc}") from exc


def _first_lines(opener: Opener, where: str, n: int = _SNIFF_ROWS) -> list[bytes]:
    """Up to ``n`` non-blank lines from the first ``4 n``, each cut at 64 KiB (a binary file has no short lines)."""
    out: list[bytes] = []
    with opener() as f:
        try:
            for _ in range(4 * n):
                line = f.readline(1 << 16)
                if not line or len(out) == n:
                    break
                if line.strip():
                    out.append(line)
        except _READ_ERRORS as exc:
            raise DataError(f"{where}: cannot read: {exc}") from exc
    return out


def _check_field_count(lines: list[bytes], ncols: int, where: str, what: str) -> None:
    """Raise UnrecognisedFormatError unless most of the first non-blank lines have ``ncols`` fields."""
    counts = [line.count(b",") + 1 for line in lines]
    if counts and 2 * sum(c == ncols for c in counts) <= len(counts):
        raise UnrecognisedFormatError(
            f"{where}: not {what}: its first rows have {counts[0]} fields, expected {ncols}"
        )


def _iter_raw(
    opener: Opener, layout: _Layout, where: str, block_rows: int, stats: ReadStats
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Blocks of (line numbers, columns) of the good rows, read ``block_rows`` lines at a time."""
    lineno = 1
    with opener() as f:
        while True:
            try:
                lines = list(islice(f, block_rows))
            except _READ_ERRORS as exc:
                raise DataError(f"{where}: read failed after line {lineno - 1}: {exc}") from exc
            if not lines:
                return
            stats.add("lines", len(lines))
            yield _parse_block(lines, lineno, layout, where, stats)
            lineno += len(lines)


def _drop_bad(
    checks: Iterable[tuple[np.ndarray | None, Callable[[int], str]]], lineno: np.ndarray, where: str, stats: ReadStats
) -> np.ndarray:
    """Keep-mask after the checks, in order; each bad row is counted once with the first reason it fails."""
    keep = np.ones(len(lineno), dtype=bool)
    for bad, why in checks:
        if bad is None:
            continue
        hit = bad & keep
        if hit.any():
            for i in np.flatnonzero(hit):
                stats.problem("malformed", f"{where}:{lineno[i]}", why(int(i)))
            keep &= ~hit
    return keep


class _OrderCheck:
    """Counts rows whose time goes backwards (kept: the source's order is the truth for a replay)."""

    def __init__(self, where: str, stats: ReadStats) -> None:
        self.last = _I64.min
        self.where, self.stats = where, stats

    def __call__(self, ts: np.ndarray, lineno: np.ndarray) -> None:
        if not len(ts):
            return
        prev = np.concatenate(([self.last], ts[:-1]))
        for i in np.flatnonzero(ts < prev):
            self.stats.problem("out_of_order", f"{self.where}:{lineno[i]}", "time earlier than the previous row's")
        self.last = int(ts[-1])


class _Rechunker:
    """Re-cuts a stream of arrays into chunks of exactly ``rows`` rows (the last one shorter)."""

    def __init__(self, rows: int, stats: ReadStats | None = None) -> None:
        self.rows, self.stats = rows, stats
        self._parts: list[np.ndarray] = []
        self._n = 0

    def push(self, arr: np.ndarray) -> Iterator[np.ndarray]:
        if len(arr):
            self._parts.append(arr)
            self._n += len(arr)
        while self._n >= self.rows:
            yield self._take(self.rows)

    def flush(self) -> Iterator[np.ndarray]:
        if self._n:
            yield self._take(self._n)

    def _take(self, k: int) -> np.ndarray:
        whole = self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
        out, rest = whole[:k], whole[k:]
        self._parts, self._n = ([rest] if len(rest) else []), len(rest)
        if self.stats is not None:
            self.stats.add("events", len(out))
        return out


def _check_chunk_rows(chunk_rows: int) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    return int(chunk_rows)


# =====================================================================================================================
# LOBSTER
# =====================================================================================================================

_NAME_RE = re.compile(
    r"^(?P<symbol>[^_]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_(?P<what>message|orderbook)_"
    r"(?P<levels>\d+)\.csv$"
)
_MESSAGE = _Layout(
    "a LOBSTER message file",
    [("time", "secs"), ("type", "int"), ("order_id", "int"), ("size", "int"), ("price", "int"), ("direction", "int")],
)

_KIND_OF_TYPE = np.array(
    [0, K_ORDER_ADD, K_ORDER_CANCEL, K_ORDER_DELETE, K_ORDER_EXEC, K_ORDER_EXEC_HIDDEN, K_CROSS_TRADE, K_STATUS],
    dtype=np.uint8,
)
#: LOBSTER's type-7 price (-1, 0, 1) + 1 -> TradingStatus.
_STATUS_OF_PRICE = np.array([TradingStatus.HALTED, TradingStatus.QUOTING, TradingStatus.TRADING], dtype=np.int64)


def lobster_instrument(path: str | PathLike[str]) -> Instrument:
    """The default instrument of a LOBSTER file: symbol from the file name, tick ``0.0001`` ($ x 10000), lot 1."""
    name = Path(path).name
    m = _NAME_RE.match(name)
    symbol = m["symbol"] if m else name.split("_")[0].split(".")[0]
    return Instrument(symbol or "UNKNOWN", tick_size="0.0001", lot_size="1")


def aggressor_side(events: np.ndarray) -> np.ndarray:
    """Aggressor side (int8: +1 buy-initiated, -1 sell-initiated, 0 none) of LOBSTER execution rows.

    An execution's ``side`` is the resting order's side, so the aggressor is the opposite: executing a resting buy
    order (side +1) is a sell-initiated trade. Rows other than ORDER_EXEC / ORDER_EXEC_HIDDEN get 0.
    """
    is_exec = (events["kind"] == K_ORDER_EXEC) | (events["kind"] == K_ORDER_EXEC_HIDDEN)
    return np.where(is_exec, -events["side"], 0).astype(np.int8)


def iter_lobster_messages(
    path: str | PathLike[str],
    *,
    instrument: Instrument | None = None,
    date: _date | str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stats: ReadStats | None = None,
) -> Iterator[np.ndarray]:
    """Events (:data:`~workbench.types.event_dt` chunks of at most ``chunk_rows``) of a LOBSTER message file.

    Parameters
    ----------
    path : the ``*_message_<levels>.csv`` file.
    instrument : ticks and lots of the output; default :func:`lobster_instrument` (px_ticks = file price).
    date : session date (``datetime.date`` or ``'YYYY-MM-DD'``); default the date in the file name. Both given
        must agree.
    chunk_rows : maximum rows per yielded chunk.
    stats : filled with ``lines``, ``events``, ``malformed``, ``blank_lines``, ``out_of_order``, ``type_1..7``.

    Raises (when called, not when iterated): ConfigError (no session date, bad argument), DataError (cannot open),
    UnrecognisedFormatError (the first rows do not have 6 fields).
    """
    path = Path(path)
    chunk_rows = _check_chunk_rows(chunk_rows)
    where = path.name
    m = _NAME_RE.match(path.name)
    clock = _SessionClock(_session_date(date, m["date"] if m else None, where))
    instrument = instrument if instrument is not None else lobster_instrument(path)
    px = _Rescale("0.0001", instrument.tick_size, "price")
    qty = _Rescale("1", instrument.lot_size, "size")
    opener = lambda: _open_file(path)  # noqa: E731
    _check_field_count(_first_lines(opener, where), _MESSAGE.ncols, where, _MESSAGE.what)
    return _lobster_messages(opener, where, clock, px, qty, chunk_rows, stats if stats is not None else ReadStats())


def _lobster_messages(
    opener: Opener, where: str, clock: _SessionClock, px: _Rescale, qty: _Rescale, chunk_rows: int, stats: ReadStats
) -> Iterator[np.ndarray]:
    out = _Rechunker(chunk_rows, stats)
    in_order = _OrderCheck(where, stats)
    for lineno, c in _iter_raw(opener, _MESSAGE, where, max(chunk_rows, _MIN_BLOCK_ROWS), stats):
        events, kept = _messages_to_events(lineno, c, clock, px, qty, where, stats)
        in_order(events["ts_exch_ns"], kept)
        yield from out.push(events)
    yield from out.flush()


def _messages_to_events(
    lineno: np.ndarray,
    c: dict[str, np.ndarray],
    clock: _SessionClock,
    px: _Rescale,
    qty: _Rescale,
    where: str,
    stats: ReadStats,
) -> tuple[np.ndarray, np.ndarray]:
    t, typ, oid, size, price, direction = (c[k] for k in _MESSAGE.used)
    status = typ == 7
    order = ~status
    px_ticks, px_ok = px(price)
    qty_lots, qty_ok = qty(size)
    keep = _drop_bad(
        [
            ((typ < 1) | (typ > 7), lambda i: f"unknown message type {typ[i]}"),
            (order & (direction != 1) & (direction != -1), lambda i: f"direction {direction[i]} is not 1 or -1"),
            (order & (size <= 0), lambda i: f"size {size[i]} is not positive"),
            (order & (price <= 0), lambda i: f"price {price[i]} is not positive"),
            ((typ <= 5) & (oid < 0), lambda i: f"negative order id {oid[i]}"),  # a cross trade (6) may have -1
            (status & ((price < -1) | (price > 1)), lambda i: f"halt indicator {price[i]} is not -1, 0 or 1"),
            (None if px_ok is None else order & ~px_ok,
             lambda i: f"price {price[i]} is not a whole tick of {px.increment}"),
            (None if qty_ok is None else order & ~qty_ok,
             lambda i: f"size {size[i]} is not a whole lot of {qty.increment}"),
        ],
        lineno,
        where,
        stats,
    )
    if not keep.all():
        t, typ, oid, direction, price = t[keep], typ[keep], oid[keep], direction[keep], price[keep]
        px_ticks, qty_lots, status, lineno = px_ticks[keep], qty_lots[keep], status[keep], lineno[keep]
    for k, n in zip(*np.unique(typ, return_counts=True)):
        stats.add(f"type_{k}", int(n))
    ev = np.zeros(len(t), dtype=event_dt)
    ev["ts_exch_ns"] = ev["ts_local_ns"] = clock(t)
    ev["kind"] = _KIND_OF_TYPE[typ]
    ev["side"] = np.where(status, 0, direction)
    ev["flags"] = F_BATCH_END
    ev["px_ticks"] = np.where(status, 0, px_ticks)
    ev["qty_lots"] = np.where(status, 0, qty_lots)
    ev["id"] = ev["first_id"] = np.where(status, _STATUS_OF_PRICE[np.clip(price + 1, 0, 2)], oid)
    ev["prev_id"] = -1
    return ev, lineno


def iter_lobster_orderbook(
    path: str | PathLike[str],
    *,
    levels: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stats: ReadStats | None = None,
) -> Iterator[np.ndarray]:
    """Rows of a LOBSTER order book file as 2-D int64 chunks (rows x 4*levels), in file units.

    Columns per level ``k`` (1-based): ``ask_px_k, ask_sz_k, bid_px_k, bid_sz_k`` at ``4*(k-1)`` ...; prices are
    dollars x 10000; an empty level is :data:`LOBSTER_EMPTY_ASK_PX` / :data:`LOBSTER_EMPTY_BID_PX` with size 0.
    Row i is the book after message i of the message file. ``levels`` defaults to the column count / 4 of the
    first row; a different count raises UnrecognisedFormatError. Bad rows (wrong field count, bad number, negative
    size) are counted as ``malformed`` and skipped, which breaks the row alignment with the message file: check
    ``stats["malformed"] == 0`` before pairing rows with messages.
    """
    path = Path(path)
    chunk_rows = _check_chunk_rows(chunk_rows)
    where = path.name
    opener = lambda: _open_file(path)  # noqa: E731
    first = _first_lines(opener, where)
    if levels is None:
        ncols = first[0].count(b",") + 1 if first else 4
        if ncols % 4:
            raise UnrecognisedFormatError(f"{where}: not a LOBSTER order book file: {ncols} fields a row")
    else:
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ConfigError(f"levels must be a positive integer, got {levels!r}")
        ncols = 4 * levels
    _check_field_count(first, ncols, where, f"a LOBSTER order book file of {ncols // 4} level(s)")
    names = [f"{s}_{k}" for k in range(1, ncols // 4 + 1) for s in ("ask_px", "ask_sz", "bid_px", "bid_sz")]
    layout = _Layout("a LOBSTER order book file", [(n, "int") for n in names])
    return _lobster_orderbook(opener, layout, where, chunk_rows, stats if stats is not None else ReadStats())


def _lobster_orderbook(
    opener: Opener, layout: _Layout, where: str, chunk_rows: int, stats: ReadStats
) -> Iterator[np.ndarray]:
    out = _Rechunker(chunk_rows)
    for lineno, c in _iter_raw(opener, layout, where, max(chunk_rows, _MIN_BLOCK_ROWS), stats):
        book = np.column_stack([c[n] for n in layout.names]) if len(lineno) else np.empty((0, layout.ncols), np.int64)
        sizes = book[:, 1::2]
        neg = (sizes < 0).any(axis=1)
        keep = _drop_bad([(neg, lambda i: "negative size")], lineno, where, stats)
        book = book[keep]
        stats.add("rows", len(book))
        yield from out.push(book)
    yield from out.flush()
