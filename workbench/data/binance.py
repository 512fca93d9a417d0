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

Speed: lines are read in batches, and a numba kernel (:func:`_preparse_nb`) reads the lines written the way Binance
writes them (compact JSON, plain decimal strings, no escapes) straight from their bytes, diffs' levels included; the
Python loop then only does the stateful part (sync, book, checks, rows). Any other line (snapshots, and anything
unusual or wrong) goes through orjson and the Python code, which decides and reports errors: the events and counters
are the same either way. Rows are kept as int64 slots (:func:`_slot`) and become event arrays once per chunk.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from decimal import Decimal
from itertools import islice
from pathlib import Path

import numpy as np
import orjson
from numba import njit

from workbench.book.book import L2Book
from workbench.book.nb import (
    CTL_COUNTS,
    CTL_LAST,
    CTL_LIVE,
    CTL_RUN,
    CTL_SCALES,
    CTL_SYM_END,
    apply_runs_nb,
    live_chain_nb,
)
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


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _i64(x) -> int:
    """``int(x)`` that must fit an int64 event field: a value beyond it is bad input (ValueError), not a crash later."""
    v = int(x)
    if not _I64_MIN <= v <= _I64_MAX:
        raise ValueError(f"{x!r} is out of the int64 range")
    return v


def _memo(convert, max_size: int = 1 << 16):
    """``convert`` with a bounded memo of its results; errors are raised each time and never remembered."""
    cache: dict = {}
    get = cache.get

    def memo(text):
        v = get(text)
        if v is None:
            if not isinstance(text, str):
                raise ValueError(f"expected a decimal string, got {text!r}")
            v = _i64(convert(text))
            if len(cache) >= max_size:
                cache.clear()
            cache[text] = v
        return v

    return memo


def _slot(kind: int = 0, side: int = 0, flags: int = 0) -> int:
    """The int64 that holds ``kind``, ``side`` and ``flags`` (and the padding after them) in an event row.

    An :data:`event_dt` row is 8 int64 slots: ts_exch, ts_local, (kind, side, flags), px, qty, id, first_id, prev_id.
    Rows are built as 8 Python ints and viewed as events, which numpy converts much faster than 10-field tuples.
    """
    row = np.zeros(1, event_dt)
    row["kind"], row["side"], row["flags"] = kind, side, flags
    return int(row.view(np.int64)[2])


assert event_dt.itemsize == 64 and [event_dt.fields[f][1] for f in ("px_ticks", "prev_id")] == [24, 56]
_C_BATCH_END = _slot(flags=F_BATCH_END)
_C_DEPTH_BID = _slot(K_DEPTH, BID)
_C_DEPTH_ASK = _slot(K_DEPTH, ASK)
_C_DEPTH_NONE_END = _slot(K_DEPTH, 0, F_BATCH_END)
_C_LOST = _slot(K_DEPTH, 0, F_CLEAR | F_GAP)
_C_BBO_BID = _slot(K_BBO, BID)
_C_BBO_ASK_END = _slot(K_BBO, ASK, F_BATCH_END)
_C_TRADE_BID_END = _slot(K_TRADE, BID, F_BATCH_END)
_C_TRADE_ASK_END = _slot(K_TRADE, ASK, F_BATCH_END)

def _as_events(rows: np.ndarray) -> np.ndarray:
    """C-contiguous int64 rows of 8 slots each (see :func:`_slot`), any shape, as a 1-d event array on the same memory
    (``ndarray.view`` would do the same, several times slower)."""
    return np.ndarray((rows.size >> 3,), event_dt, rows)


@njit(cache=True)
def _decimal_nb(buf, i, digits, units):
    """The decimal at ``buf[i:]`` up to a closing quote, as :func:`~workbench.instrument.decimal_to_int` does for a
    plain ``digits[.digits]``: (value, index of the quote), or (-1, -1) for anything else (a sign, an exponent, an
    escape, a value finer than the increment, 19 digits or more): the caller then takes the exact Python path."""
    n = buf.shape[0]
    whole = 0
    start = i
    while i < n and 48 <= buf[i] <= 57:
        if i - start + digits >= 18:  # 19 digits or more: maybe not an int64
            return -1, -1
        whole = whole * 10 + (buf[i] - 48)
        i += 1
    if i == start:
        return -1, -1
    frac = 0
    n_frac = 0
    if i < n and buf[i] == 46:  # "."
        i += 1
        while i < n and 48 <= buf[i] <= 57:
            d = buf[i] - 48
            if n_frac < digits:
                frac = frac * 10 + d
                n_frac += 1
            elif d != 0:
                return -1, -1
            i += 1
    if i >= n or buf[i] != 34:  # '"'
        return -1, -1
    v = whole
    for _ in range(digits):
        v *= 10
    for _ in range(digits - n_frac):
        frac *= 10
    v += frac
    if units != 1:
        if v % units != 0:
            return -1, -1
        v //= units
    return v, i


@njit(cache=True)
def _levels_nb(buf, i, out, row, code, px_digits, px_units, qty_digits, qty_units):
    """Parse the JSON levels array ``[["px","qty"],...]`` at ``buf[i]`` (no blanks, no escapes) into ``out[row:]``
    (``code``, px, qty in columns 2 to 4). Returns (next row, index after the array), or (-1, -1) when the text is
    anything else, or (-2, -2) when ``out`` is too small."""
    n = buf.shape[0]
    if i >= n or buf[i] != 91:  # "["
        return -1, -1
    i += 1
    if i < n and buf[i] == 93:  # "]": no levels
        return row, i + 1
    while True:
        if i + 1 >= n or buf[i] != 91 or buf[i + 1] != 34:  # '["'
            return -1, -1
        px, i = _decimal_nb(buf, i + 2, px_digits, px_units)
        if i < 0 or i + 2 >= n or buf[i + 1] != 44 or buf[i + 2] != 34:  # '","'
            return -1, -1
        qty, i = _decimal_nb(buf, i + 3, qty_digits, qty_units)
        if i < 0 or i + 2 >= n or buf[i + 1] != 93:  # '"]'
            return -1, -1
        if row >= out.shape[0]:
            return -2, -2
        out[row, 2] = code
        out[row, 3] = px
        out[row, 4] = qty
        row += 1
        i += 2
        if buf[i] == 93:  # "]"
            return row, i + 1
        if buf[i] != 44:  # ","
            return -1, -1
        i += 1


# -- pre-parsing -----------------------------------------------------------------------------------------------------
# A batch of lines goes through _preparse_nb first: a line that is *plain* (below) is read there, and the Python loop
# only applies its values; any other line (snapshots, and anything unusual or wrong) takes the Python way, which
# decides and reports errors as always.
#
# Plain line: ``<digits> {"stream":"<S>","data":{<members>}}`` then only JSON blanks, no other blank. The kind comes
# from S as in BinanceCapture._line: a depth diff if S holds "@depth" (and "e" is "depthUpdate"), else what follows
# its last "@": "bookTicker", or "trade" / "aggTrade". Every member is ``"<key>":<value>``; a value is a string of
# printable ASCII without quote or backslash, an integer (0 or no leading zero, at most 18 digits, no sign), true or
# false, or, for the "b" then "a" of a diff, a levels array (_levels_nb); no one-letter key and no "pu" twice. That
# is valid JSON that orjson reads as plain dicts, strs, ints, bools and lists, so the fields below are what the Python
# way would read. What the Python way would reject or treat specially (a text that is not a plain decimal, a zero
# trade size, U > u, a diff without levels, another symbol, ids that are not JSON integers, exchange times too large
# for int64 nanoseconds) makes the line not plain.
#
# A pre-parsed row (_P_WIDTH int64): kind (0 not plain, 1 bookTicker, 2 trade, 3 diff), receive time, then
# bookTicker: u, bid px, bid qty, ask px, ask qty, ms; trade: id, px, qty, maker, ms; diff: U, u, pu (-1: none), ms,
# bid rows, rows. ms is the exchange time in ms (-1: none). The rows of the diffs are in the batch's rows array, one
# diff after the other (ts_exch -1 when ms is -1: the reader knows it).
_P_WIDTH = 8
_MAX_MS = ((1 << 63) - 1) // _MS
_NOT_PLAIN = [0] * _P_WIDTH
_BATCH = 2048  # lines pre-parsed at once
_HEAD = tuple(b'{"stream":')
_MID = tuple(b',"data":{')
_TRUE, _FALSE = tuple(b"true"), tuple(b"false")
_BOOK_TICKER, _TRADE, _AGG_TRADE = tuple(b"bookTicker"), tuple(b"trade"), tuple(b"aggTrade")
_DEPTH_UPDATE = tuple(b"depthUpdate")
_KEY_PU = 1  # slot of the key "pu" (one-letter keys use their character's code)


@njit(cache=True)
def _plain_string_nb(buf, i, end):
    """Index of the closing quote of the string opening at ``buf[i]`` if it is plain, else -1."""
    if i >= end or buf[i] != 34:
        return -1
    i += 1
    while i < end:
        c = buf[i]
        if c == 34:
            return i
        if c < 32 or c > 126 or c == 92:
            return -1
        i += 1
    return -1


@njit(cache=True)
def _same_bytes_nb(buf, i, word):
    for k in range(len(word)):
        if buf[i + k] != word[k]:
            return False
    return True


@njit(cache=True)
def _preparse_line_nb(buf, start, end, symbol, scales, row, typ, val, rows, base):
    """Pre-parse one line (see above) into ``row``, a diff's rows into ``rows[base:]``. ``typ`` and ``val`` are
    scratch (128 each). Returns the rows written, -1 when ``rows`` is too small (the line is then not read)."""
    # <digits> and one space
    i = start
    ts = 0
    while i < end and 48 <= buf[i] <= 57:
        d = buf[i] - 48
        if ts > (9223372036854775807 - d) // 10:
            return 0
        ts = ts * 10 + d
        i += 1
    if i == start or i >= end or buf[i] != 32:
        return 0
    return _preparse_message_nb(buf, i + 1, end, ts, symbol, scales, row, typ, val, rows, base)


@njit(cache=True)
def _preparse_message_nb(buf, i, end, ts, symbol, scales, row, typ, val, rows, base):
    """Pre-parse the combined-stream message ``buf[i:end]`` received at ``ts`` (what follows the receive stamp of a
    line, or a live frame): as :func:`_preparse_line_nb`."""
    if i + len(_HEAD) >= end or not _same_bytes_nb(buf, i, _HEAD):
        return 0
    i += len(_HEAD)
    # the stream name: a diff if it holds "@depth", else its kind from what follows its last "@"
    q = _plain_string_nb(buf, i, end)
    if q < 0:
        return 0
    kind = 0
    at = i  # the last "@", or the opening quote
    for j in range(i + 1, q):
        if buf[j] == 64:
            at = j
            if j + 6 <= q and buf[j + 1] == 100 and buf[j + 2] == 101 and buf[j + 3] == 112 and buf[j + 4] == 116 \
                    and buf[j + 5] == 104:  # "@depth"
                kind = 3
    if kind == 0:
        name = q - at - 1
        if name == len(_BOOK_TICKER) and _same_bytes_nb(buf, at + 1, _BOOK_TICKER):
            kind = 1
        elif (name == len(_TRADE) and _same_bytes_nb(buf, at + 1, _TRADE)) or (
            name == len(_AGG_TRADE) and _same_bytes_nb(buf, at + 1, _AGG_TRADE)
        ):
            kind = 2
        else:
            return 0
    i = q + 1
    if i + len(_MID) > end or not _same_bytes_nb(buf, i, _MID):
        return 0
    i += len(_MID)
    px_digits, px_units, qty_digits, qty_units = scales
    # members: for each one-letter key (and "pu"), its type (0 absent, 1 string, 2 int, 3 true, 4 false, 5 levels)
    # and value (an int, or where a string's text starts)
    typ[:] = 0
    n_bid = 0
    n = 0
    if i < end and buf[i] == 125:  # "}": no member
        i += 1
    else:
        while True:
            q = _plain_string_nb(buf, i, end)
            if q < 0 or q + 2 >= end or buf[q + 1] != 58:  # ":"
                return 0
            key = np.int64(-1)
            if q == i + 2:
                key = np.int64(buf[i + 1])
            elif q == i + 3 and buf[i + 1] == 112 and buf[i + 2] == 117:  # "pu"
                key = np.int64(_KEY_PU)
            if key >= 0 and typ[key] != 0:  # the same key twice
                return 0
            i = q + 2
            c = buf[i]
            v = 0
            if c == 34:  # a string
                q = _plain_string_nb(buf, i, end)
                if q < 0:
                    return 0
                t = 1
                v = i + 1
                i = q + 1
            elif c == 116:
                if i + len(_TRUE) > end or not _same_bytes_nb(buf, i, _TRUE):
                    return 0
                t = 3
                i += len(_TRUE)
            elif c == 102:
                if i + len(_FALSE) > end or not _same_bytes_nb(buf, i, _FALSE):
                    return 0
                t = 4
                i += len(_FALSE)
            elif 48 <= c <= 57:  # an integer: 0, or no leading zero; at most 18 digits
                j = i
                while j < end and 48 <= buf[j] <= 57:
                    if j - i >= 18:
                        return 0
                    v = v * 10 + (buf[j] - 48)
                    j += 1
                if c == 48 and j - i > 1:
                    return 0
                t = 2
                i = j
            elif c == 91 and kind == 3 and key == 98:  # the bids of a diff
                r, i = _levels_nb(buf, i, rows, base, _C_DEPTH_BID, px_digits, px_units, qty_digits, qty_units)
                if r < 0 or i > end:
                    return -1 if r == -2 else 0
                n_bid = n = r - base
                t = 5
            elif c == 91 and kind == 3 and key == 97 and typ[98] == 5:  # the asks, after the bids
                r, i = _levels_nb(buf, i, rows, base + n_bid, _C_DEPTH_ASK, px_digits, px_units, qty_digits, qty_units)
                if r < 0 or i > end:
                    return -1 if r == -2 else 0
                n = r - base
                t = 5
            else:
                return 0
            if key >= 0:
                typ[key] = t
                val[key] = v
            if i >= end:
                return 0
            if buf[i] == 125:  # "}"
                i += 1
                break
            if buf[i] != 44:  # ","
                return 0
            i += 1
    # "}" then JSON blanks only
    if i >= end or buf[i] != 125:
        return 0
    i += 1
    while i < end:
        c = buf[i]
        if c != 32 and c != 9 and c != 10 and c != 13:
            return 0
        i += 1
    # "s": absent, or the symbol
    if typ[115] != 0:
        v = val[115]
        if typ[115] != 1 or v + len(symbol) >= end or buf[v + len(symbol)] != 34:
            return 0
        for k in range(len(symbol)):
            if buf[v + k] != symbol[k]:
                return 0
    # the exchange time, as data.get("T") or data.get("E")
    if (typ[84] != 0 and typ[84] != 2) or (typ[69] != 0 and typ[69] != 2):
        return 0
    ms = -1
    if typ[84] == 2 and val[84] != 0:
        ms = val[84]
    elif typ[69] == 2:
        ms = val[69]
    if ms > _MAX_MS:
        return 0
    if kind == 1:  # u (an int), b, B, a, A (plain decimals)
        if typ[117] != 2 or typ[98] != 1 or typ[66] != 1 or typ[97] != 1 or typ[65] != 1:
            return 0
        bpx, e = _decimal_nb(buf, val[98], px_digits, px_units)
        if e < 0:
            return 0
        bq, e = _decimal_nb(buf, val[66], qty_digits, qty_units)
        if e < 0:
            return 0
        apx, e = _decimal_nb(buf, val[97], px_digits, px_units)
        if e < 0:
            return 0
        aq, e = _decimal_nb(buf, val[65], qty_digits, qty_units)
        if e < 0:
            return 0
        row[2] = val[117]
        row[3] = bpx
        row[4] = bq
        row[5] = apx
        row[6] = aq
        row[7] = ms
    elif kind == 2:  # p, q (plain decimals, q not 0), m (true or false), t (or else a) (an int)
        if typ[112] != 1 or typ[113] != 1 or (typ[109] != 3 and typ[109] != 4):
            return 0
        if typ[116] == 2:
            tid = val[116]
        elif typ[116] == 0 and typ[97] == 2:
            tid = val[97]
        else:
            return 0
        px, e = _decimal_nb(buf, val[112], px_digits, px_units)
        if e < 0:
            return 0
        qty, e = _decimal_nb(buf, val[113], qty_digits, qty_units)
        if e < 0 or qty == 0:
            return 0
        row[2] = tid
        row[3] = px
        row[4] = qty
        row[5] = 1 if typ[109] == 3 else 0
        row[6] = ms
    else:  # e ("depthUpdate"), U <= u, pu (ints), b and a (levels, at least one)
        if typ[101] != 1 or val[101] + len(_DEPTH_UPDATE) >= end or buf[val[101] + len(_DEPTH_UPDATE)] != 34 \
                or not _same_bytes_nb(buf, val[101], _DEPTH_UPDATE):
            return 0
        if typ[85] != 2 or typ[117] != 2 or val[117] < val[85] or (typ[_KEY_PU] != 0 and typ[_KEY_PU] != 2):
            return 0
        if typ[98] != 5 or typ[97] != 5 or n == 0:
            return 0
        first, last = val[85], val[117]
        pu = val[_KEY_PU] if typ[_KEY_PU] == 2 else -1
        ts_exch = ms * 1_000_000 if ms >= 0 else -1
        for r in range(base, base + n):
            rows[r, 0] = ts_exch
            rows[r, 1] = ts
            rows[r, 5] = last
            rows[r, 6] = first
            rows[r, 7] = pu
        rows[base + n - 1, 2] |= _C_BATCH_END
        row[2] = first
        row[3] = last
        row[4] = pu
        row[5] = ms
        row[6] = n_bid
        row[7] = n
    row[1] = ts
    row[0] = kind
    return n if kind == 3 else 0


@njit(cache=True)
def _preparse_nb(buf, ends, symbol, scales, out, rows):
    """Pre-parse the lines ``buf[ends[j-1]:ends[j]]`` into ``out[j]``, the rows of their diffs into ``rows`` (see
    above). Returns False when ``rows`` was too small for some diff (that line is left to the Python way)."""
    typ = np.zeros(128, np.int8)
    val = np.zeros(128, np.int64)
    start = 0
    base = 0
    room = True
    for j in range(ends.shape[0]):
        out[j, 0] = 0
        n = _preparse_line_nb(buf, start, ends[j], symbol, scales, out[j], typ, val, rows, base)
        if n < 0:
            room = False
            out[j, 0] = 0
        else:
            base += n
        start = ends[j]
    return room


#: Width of a pre-parsed row of :func:`preparse_frames_nb`: the :func:`_preparse_nb` row, then the symbol's index.
FRAME_WIDTH = _P_WIDTH + 1


@njit(cache=True)
def preparse_frames_nb(buf, ends, ts_local, symbols, symbol_ends, scales, out, rows):
    """Pre-parse live combined-stream frames ``buf[ends[j-1]:ends[j]]``, all received at ``ts_local`` (ns), for the
    feed client: as :func:`_preparse_nb` does for capture lines, with several symbols.

    ``symbols`` holds the symbols' bytes one after the other (``symbol_ends`` where each ends), ``scales`` one row
    (px digits, px units, qty digits, qty units) per symbol. ``out[j]`` (:data:`FRAME_WIDTH` int64) is the
    :func:`_preparse_nb` row of frame j (kind 0: not plain, to be read the general way), then the index of its
    symbol; the rows of its diff (event slots, see :func:`_slot`) are in ``rows``, one diff after the other. Returns
    the rows written, or -1 when ``rows`` was too small for some diff (that frame is left kind 0).
    """
    typ = np.zeros(128, np.int8)
    val = np.zeros(128, np.int64)
    start = 0
    base = 0
    room = True
    for j in range(ends.shape[0]):
        end = ends[j]
        out[j, 0] = 0
        lo = 0
        for k in range(symbol_ends.shape[0]):
            hi = symbol_ends[k]
            sc = (scales[k, 0], scales[k, 1], scales[k, 2], scales[k, 3])
            n = _preparse_message_nb(buf, start, end, ts_local, symbols[lo:hi], sc, out[j], typ, val, rows, base)
            lo = hi
            if n < 0:
                room = False
                out[j, 0] = 0
                break
            if out[j, 0] != 0:
                if typ[115] != 1:  # no "s": the feed cannot tell the symbol (the general way says malformed)
                    out[j, 0] = 0
                    break
                out[j, _P_WIDTH] = k
                base += n
                break
        start = end
    return base if room else -1



@njit(cache=True)
def feed_frames_nb(buf, n, ts_local, io, symbols, ctl, out, rows, apply, books):
    """The feed client's step per socket read, in one call: pre-parse the ``n`` frames (:func:`preparse_frames_nb`;
    ``io[:n]`` where each ends in ``buf``), keep the update-id chains (:func:`workbench.book.nb.live_chain_nb`,
    passing over plain trades), and, when ``apply`` and every frame was plain (no trade, nothing for the Python way)
    and of one symbol, apply its accepted rows to its book and read its top
    (:func:`workbench.book.nb.apply_runs_nb`, ``books`` as it takes them).

    ``ctl`` holds the symbols' control rows (``CTL_*`` of :mod:`workbench.book.nb`: sync state, last id, run,
    counts, symbol end and scales in; run, counts and the book's result out). ``apply`` also says that no rows are
    pending: runs and counts are zeroed first (otherwise the caller has set them). The frame indices of the plain
    trades passed go to ``io[n:]`` (the caller reports them: on_trade runs before the books change, as on the
    Python way). Returns (rows written or -1 as :func:`preparse_frames_nb`, the index of the first frame the Python
    way must take or ``n``, its first row in ``rows``, trades passed, and 1 + the symbol whose book was applied
    here, else 0).
    """
    live = ctl[:, CTL_LIVE]
    last_ids = ctl[:, CTL_LAST]
    runs = ctl[:, CTL_RUN : CTL_RUN + 2]
    counts = ctl[:, CTL_COUNTS : CTL_COUNTS + 2]
    if apply:  # no rows pending (see above): every symbol's run and counts start empty
        runs[:] = 0
        counts[:] = 0
    got = preparse_frames_nb(buf, io[:n], ts_local, symbols, ctl[:, CTL_SYM_END],
                             ctl[:, CTL_SCALES : CTL_SCALES + 4], out, rows)
    j = 0
    at = 0
    n_tr = 0
    while True:
        j, at = live_chain_nb(out, j, n, at, live, last_ids, runs, counts)
        if j < n and out[j, 0] == 2 and out[j, 6] >= 0:  # a plain trade: no rows, no chain
            io[n + n_tr] = j
            n_tr += 1
            j += 1
            continue
        break
    done = 0
    n_runs = 0
    n_seen = 0
    k_run = 0
    for k in range(runs.shape[0]):
        if runs[k, 1] > runs[k, 0]:
            n_runs += 1
            k_run = k
        if counts[k, 0] + counts[k, 1] > 0:
            n_seen += 1
    # only one symbol had diffs, and its book changes: applying it here is what the caller would do next (with
    # several, each symbol's on_book must see the others' books as they were before its turn: the caller applies
    # them one by one)
    if apply and j >= n and n_tr == 0 and n_runs == 1 and n_seen == 1:
        apply_runs_nb(rows, ctl, books, k_run, k_run + 1)
        done = k_run + 1
    return got, j, at, n_tr, done

def _diff_events(ts_exch: int, ts_local: int, px: list, qty: list, n_bid: int, last: int, first: int, pu: int):
    """The DEPTH rows of one diff as int64 slots (bids first), the last flagged BATCH_END; one ``side=0`` row for a
    diff without levels (it keeps the id chain)."""
    n = len(px)
    if not n:
        return np.array([ts_exch, ts_local, _C_DEPTH_NONE_END, 0, 0, last, first, pu], np.int64)
    a = np.empty((n, 8), np.int64)
    a[:] = (ts_exch, ts_local, _C_DEPTH_BID, 0, 0, last, first, pu)
    if n_bid < n:
        a[n_bid:, 2] = _C_DEPTH_ASK
    a[n - 1, 2] |= _C_BATCH_END
    a[:, 3] = px
    a[:, 4] = qty
    return a


def _split(line: bytes) -> tuple[int, dict]:
    """``<ts> <json>`` -> (ts, object); ValueError (orjson's included) on anything else."""
    sp = line.index(b" ")
    obj = orjson.loads(line[sp + 1 :])
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return _i64(line[:sp]), obj


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
    fast : read lines written exactly as Binance writes them with a numba kernel (3x faster); False reads every line
        with orjson. Both give the same events, counters and problems (tested on real and corrupted captures).

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
        fast: bool = True,
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
        # The chunk being built, as int64 slots (see _slot): segments, each an array (a diff, a snapshot) or a list of
        # 8 Python ints per row (tickers, trades...), then _flat, the rows since the last array; _seg_rows counts the
        # rows of the segments. The chunk becomes one event array when it is complete (concatenating many small
        # structured arrays is slow in numpy), and the lists are converted only then, as the rows were before.
        self._segs: list = []
        self._seg_rows = 0
        self._flat: list[int] = []
        self._offset_ns = 0  # last seen exchange - receive time
        self._tickers: deque = deque(maxlen=4096)  # recent bookTickers (id, bid px, bid qty, ask px, ask qty)
        self._pending: deque = deque()  # (u, top of book) of applied diffs awaiting their ticker check
        self._where = ""  # file:line being read (set for diffs and snapshots), for problem reports
        self._lost_reported = False  # a CLEAR|GAP row was emitted since the last applied snapshot
        self._last_applied = -1
        self._scales = instrument.scales  # for _preparse_nb
        self._pre = np.empty((_BATCH, _P_WIDTH), np.int64)  # output of _preparse_nb: a row per line
        self._pre_rows = np.empty((1 << 15, 8), np.int64)  # and the rows of its diffs (grown when too small)
        sym = self.symbol
        plain = sym.isascii() and sym.isprintable() and '"' not in sym and "\\" not in sym
        # fast=False reads every line the general way (orjson + Python): the tests check both ways agree
        self._symbol_u8 = np.frombuffer(sym.encode(), np.uint8) if (plain and fast) else None

    # -- iteration --------------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray]:
        st = self.stats
        counts = st.counts
        chunk_rows = self.chunk_rows
        tickers, pending, resolve = self._tickers, self._pending, self._resolve_check
        for path in self.paths:
            name = path.name
            lineno = 0
            try:
                with _open(path) as f:
                    # a GzipFile reads its lines from a BufferedReader over its decompressor: read that one (the
                    # same lines and errors, without GzipFile.readline's Python wrapper around every line)
                    lines = iter(getattr(f, "_buffer", f) if isinstance(f, gzip.GzipFile) else f)
                    while True:
                        # Lines come in batches, for _preparse_nb. A read error ends the batch: its lines are
                        # processed first, then the error is reported at the next line, as when reading line by line.
                        batch: list[bytes] = []
                        error = None
                        try:
                            batch.extend(islice(lines, _BATCH))  # (keeps the lines read before an error)
                        except _READ_ERRORS as exc:
                            error = exc
                        pre_lines, pre_rows = self._preparse(batch)
                        at = 0  # the next diff's rows in pre_rows
                        for raw, pre in zip(batch, pre_lines):
                            lineno += 1
                            counts["lines"] += 1
                            k = pre[0]
                            if k == 3:
                                # A plain depth diff, pre-parsed: what _diff does with it.
                                self._where = f"{name}:{lineno}"
                                _, ts_local, first, last, pu, ms, _, n = pre
                                rows = pre_rows[at : at + n].copy()
                                at += n
                                if ms < 0:
                                    ts_exch = rows[:, 0] = ts_local + self._offset_ns
                                else:
                                    ts_exch = ms * _MS
                                    self._offset_ns = ts_exch - ts_local
                                self._diff_parsed(first, last, pu if pu >= 0 else first - 1, (ts_exch, ts_local, rows))
                            elif k:
                                # A plain bookTicker or trade line, pre-parsed: what _ticker or _trade does with it.
                                if k == 1:
                                    _, ts_local, uid, bpx, bq, apx, aq, ms = pre
                                else:
                                    _, ts_local, tid, px, qty, maker, ms, _ = pre
                                if ms < 0:
                                    ts_exch = ts_local + self._offset_ns
                                else:
                                    ts_exch = ms * _MS
                                    self._offset_ns = ts_exch - ts_local
                                if k == 1:
                                    self._flat.extend((
                                        ts_exch, ts_local, _C_BBO_BID, bpx, bq, uid, uid, -1,
                                        ts_exch, ts_local, _C_BBO_ASK_END, apx, aq, uid, uid, -1,
                                    ))
                                    tickers.append((uid, bpx, bq, apx, aq))
                                    counts["tickers"] += 1
                                    while pending and pending[0][0] < uid:
                                        resolve()
                                else:
                                    # m: the buyer was the maker, so the seller took liquidity
                                    code = _C_TRADE_ASK_END if maker else _C_TRADE_BID_END
                                    self._flat.extend((ts_exch, ts_local, code, px, qty, tid, tid, -1))
                                    counts["trades"] += 1
                            else:
                                self._where = f"{name}:{lineno}"
                                try:
                                    self._line(raw)
                                except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                                    st.problem("malformed", f"{name}:{lineno}", f"{exc.__class__.__name__}: {exc}")
                            if self._seg_rows + (len(self._flat) >> 3) >= chunk_rows:
                                yield self._flush()
                        if error is not None:
                            raise error
                        if len(batch) < _BATCH:
                            break
            except _READ_ERRORS as exc:
                st.problem("truncated", f"{name}:{lineno + 1}", f"{exc.__class__.__name__}: {exc}")
        self.sync.finish()
        while self._pending:
            self._resolve_check()
        if self._segs or self._flat:
            yield self._flush()

    def _preparse(self, batch: list[bytes]) -> tuple[list[list[int]], np.ndarray]:
        """One pre-parsed row per line, and the rows of the diffs (see _preparse_nb); all lines kind 0 when the
        symbol is not plain ASCII."""
        n = len(batch)
        if self._symbol_u8 is None or not n:
            return [_NOT_PLAIN] * n, self._pre_rows
        out = self._pre
        if len(out) < n:
            out = self._pre = np.empty((n, _P_WIDTH), np.int64)
        ends = np.fromiter(map(len, batch), np.int64, n).cumsum()
        rows = self._pre_rows
        if not _preparse_nb(np.frombuffer(b"".join(batch), np.uint8), ends, self._symbol_u8, self._scales, out, rows):
            self._pre_rows = np.empty((2 * len(rows), 8), np.int64)  # room for the next batches
        return out[:n].tolist(), rows

    def events(self) -> np.ndarray:
        """All events at once (for small captures and tests)."""
        chunks = list(self)
        return np.concatenate(chunks) if chunks else np.zeros(0, event_dt)

    def _push(self, rows: np.ndarray) -> None:
        """Add int64 rows to the chunk, after those of ``_flat`` (which becomes a segment)."""
        flat = self._flat
        if flat:
            self._segs.append(flat)
            self._seg_rows += len(flat) >> 3
            self._flat = []
        self._segs.append(rows.reshape(-1))
        self._seg_rows += rows.size >> 3

    def _flush(self) -> np.ndarray:
        segs = self._segs
        if self._flat:
            segs.append(self._flat)
            self._flat = []
        segs = [np.fromiter(s, np.int64, len(s)) if type(s) is list else s for s in segs]
        out = np.empty(sum(len(s) for s in segs) >> 3, event_dt)
        np.concatenate(segs, out=out.view(np.int64))
        self._segs = []
        self._seg_rows = 0
        self.stats.add("events", len(out))
        return out

    # -- one line, the Python way (lines that _preparse_nb does not read) --------------------------------------------
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
            return _i64(ts_local + self._offset_ns)
        ts = _i64(_i64(ms) * _MS)
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
        first, last = _i64(data["U"]), _i64(data["u"])
        prev = _i64(data["pu"]) if "pu" in data else first - 1
        if last < first:
            raise ValueError(f"U={first} > u={last}")
        ts_exch = self._exch_ns(ts_local, data)
        pu = _i64(data["pu"]) if "pu" in data else -1
        ids = (first, last, pu)
        rows: list[tuple] = []
        # Parse the whole message before deciding anything: a bad level rejects the message, not half of it.
        self._levels(BID, data["b"], K_DEPTH, ts_exch, ts_local, ids, rows)
        self._levels(ASK, data["a"], K_DEPTH, ts_exch, ts_local, ids, rows)
        px, qty = [r[5] for r in rows], [r[6] for r in rows]
        n_bid = sum(1 for r in rows if r[3] == BID)
        self._diff_parsed(first, last, prev, (ts_exch, ts_local, None, px, qty, n_bid, last, first, pu))

    def _diff_parsed(self, first: int, last: int, prev: int, payload: tuple) -> None:
        """A parsed diff to the sync and the book. ``payload``: (ts_exch, ts_local, rows) or (ts_exch, ts_local,
        None, px, qty, bid count, last, first, pu) (rows built when applied, see _diff_events)."""
        self.stats.add("diffs")
        was_synced = self.sync.state != SyncState.AWAIT_SNAPSHOT
        self._apply_all(self.sync.on_diff(Diff(first, last, prev, payload)))
        if was_synced and self.sync.state == SyncState.AWAIT_SNAPSHOT and not self._lost_reported:
            ts_exch, ts_local = payload[:2]
            self._lose_sync(ts_exch, ts_local, first, last, f"gap: U={first} pu={prev} after u={self._last_applied}")

    def _snapshot(self, ts_local: int, obj: dict) -> None:
        last = _i64(obj["lastUpdateId"])
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
        last_row = rows[-1]
        rows[-1] = last_row[:4] + (last_row[4] | F_BATCH_END,) + last_row[5:]
        self._emit_batch(np.array(rows, dtype=event_dt).view(np.int64))
        self._apply_all(diffs)
        if self.sync.state == SyncState.AWAIT_SNAPSHOT and not self._lost_reported:
            # the chain broke inside the diffs buffered before this snapshot
            self._lose_sync(ts_exch, ts_local, last, last, "gap in the diffs buffered before the snapshot")

    def _apply_all(self, diffs: list[Diff]) -> None:
        for k, d in enumerate(diffs):
            p = d.payload
            self._emit_batch(p[2] if p[2] is not None else _diff_events(*p[:2], *p[3:]))
            self._last_applied = d.last_id
            t = self.book.top()
            if t.crossed:
                # A consistent id chain cannot produce a crossed book: the input is wrong, so is the book.
                self.stats.add("crossed")
                self.sync.resync("crossed", requeue=diffs[k + 1 :])
                ts_exch, ts_local = d.payload[:2]
                self._lose_sync(ts_exch, ts_local, d.first_id, d.last_id, f"crossed book after u={d.last_id}")
                return
            self._pending.append((d.last_id, (t.bid_px_ticks, t.bid_qty_lots, t.ask_px_ticks, t.ask_qty_lots)))
            if len(self._pending) > 100_000:  # no tickers in this capture: do not hold on to every diff
                self._pending.popleft()
                self.stats.add("bbo_unchecked")

    def _lose_sync(self, ts_exch: int, ts_local: int, first_id: int, last_id: int, why: str) -> None:
        """The book is unknown from here: tell downstream books (CLEAR|GAP row), forget ours, say where."""
        self._flat.extend((ts_exch, ts_local, _C_LOST, 0, 0, last_id, first_id, -1))
        self.book.clear()
        self._lost_reported = True
        self.stats.note(self._where, f"out of sync: {why}")

    def _emit_batch(self, rows: np.ndarray) -> None:
        """One message's rows (int64 slots, the last flagged BATCH_END) to the chunk and to the book."""
        self._push(rows)
        self.book.apply(_as_events(rows))

    def _ticker(self, ts_local: int, data: dict) -> None:
        if not self._same_symbol(data):
            return
        tick, lot = self._tick, self._lot
        uid = _i64(data["u"])
        bpx, bq, apx, aq = tick(data["b"]), lot(data["B"]), tick(data["a"]), lot(data["A"])
        if bq < 0 or aq < 0:
            raise ValueError("negative quantity in bookTicker")
        ts_exch = self._exch_ns(ts_local, data)
        self._flat.extend((
            ts_exch, ts_local, _C_BBO_BID, bpx, bq, uid, uid, -1,
            ts_exch, ts_local, _C_BBO_ASK_END, apx, aq, uid, uid, -1,
        ))
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
        code = _C_TRADE_ASK_END if maker else _C_TRADE_BID_END
        tid = _i64(data["t"] if "t" in data else data["a"])
        self._flat.extend((self._exch_ns(ts_local, data), ts_local, code, px, qty, tid, tid, -1))
        self.stats.add("trades")
