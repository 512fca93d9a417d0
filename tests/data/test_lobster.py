"""LOBSTER readers: parsing rules, faults, chunking, exact times; the real AMZN sample when present."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.data.lobster import (
    _MESSAGE,
    LOBSTER_EMPTY_ASK_PX,
    LOBSTER_EMPTY_BID_PX,
    _parse_block,
    _secs_to_ns_arrow,
    aggressor_side,
    iter_lobster_messages,
    iter_lobster_orderbook,
    lobster_instrument,
    parse_seconds_ns,
)
from workbench.enums import EventFlag, EventKind, Side, TradingStatus
from workbench.exceptions import ConfigError, DataError, UnrecognisedFormatError
from workbench.instrument import Instrument
from workbench.stats import ReadStats
from workbench.types import event_dt

NAME = "AMZN_2012-06-21_34200000_57600000_message_1.csv"
NY = ZoneInfo("America/New_York")


def midnight_ns(y: int, m: int, d: int) -> int:
    return int(datetime(y, m, d, tzinfo=NY).timestamp()) * 10**9


MIDNIGHT = midnight_ns(2012, 6, 21)


def write(tmp_path: Path, text: str, name: str = NAME) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def read_all(path, **kw) -> np.ndarray:
    chunks = list(iter_lobster_messages(path, **kw))
    return np.concatenate(chunks) if chunks else np.zeros(0, event_dt)


SAMPLE = """\
34200.017459617,5,0,1,2238200,-1
34200.18960767,1,11885113,21,2238100,1
34200.190226476,4,11885113,21,2238100,1
34200.2,2,11885114,10,2239000,-1
34200.3,3,11885114,90,2239000,-1
34200.4,6,-1,500,2238500,1
36023,7,0,0,-1,-1
36323,7,0,0,0,-1
36723,7,0,0,1,-1
"""


def test_message_mapping(tmp_path):
    stats = ReadStats()
    ev = read_all(write(tmp_path, SAMPLE), stats=stats)
    assert stats["malformed"] == 0 and stats["lines"] == 9 and stats["events"] == 9
    assert [stats[f"type_{k}"] for k in range(1, 8)] == [1, 1, 1, 1, 1, 1, 3]
    assert ev["kind"].tolist() == [
        EventKind.ORDER_EXEC_HIDDEN, EventKind.ORDER_ADD, EventKind.ORDER_EXEC, EventKind.ORDER_CANCEL,
        EventKind.ORDER_DELETE, EventKind.CROSS_TRADE, EventKind.STATUS, EventKind.STATUS, EventKind.STATUS,
    ]
    assert ev["side"].tolist() == [-1, 1, 1, -1, -1, 1, 0, 0, 0]
    assert ev["id"].tolist()[:6] == [0, 11885113, 11885113, 11885114, 11885114, -1]
    assert ev["id"].tolist()[6:] == [TradingStatus.HALTED, TradingStatus.QUOTING, TradingStatus.TRADING]
    assert ev["px_ticks"].tolist() == [2238200, 2238100, 2238100, 2239000, 2239000, 2238500, 0, 0, 0]
    assert ev["qty_lots"].tolist() == [1, 21, 21, 10, 90, 500, 0, 0, 0]
    assert (ev["flags"] == EventFlag.BATCH_END).all()
    assert (ev["ts_local_ns"] == ev["ts_exch_ns"]).all()
    assert ev["ts_exch_ns"][0] == MIDNIGHT + 34_200_017_459_617
    assert ev["ts_exch_ns"][1] == MIDNIGHT + 34_200_189_607_670  # 8 decimals: padded, not float-rounded
    assert ev["ts_exch_ns"][6] == MIDNIGHT + 36_023 * 10**9
    # 2012-06-21 is summer time: local midnight is 04:00 UTC.
    assert MIDNIGHT == int(datetime(2012, 6, 21, 4).replace(tzinfo=ZoneInfo("UTC")).timestamp()) * 10**9


def test_aggressor_is_opposite_of_resting_side(tmp_path):
    ev = read_all(write(tmp_path, SAMPLE))
    # hidden exec of a resting sell -> buy-initiated; visible exec of a resting buy -> sell-initiated.
    assert aggressor_side(ev).tolist() == [Side.BUY, 0, Side.SELL, 0, 0, 0, 0, 0, 0]


def test_time_is_exact_to_the_ns(tmp_path):
    text = "34200.372779672,1,1,1,100,1\n57599.999999999,1,2,1,100,1\n57599.999999998,1,3,1,100,1\n"
    ev = read_all(write(tmp_path, text))
    assert (ev["ts_exch_ns"] - MIDNIGHT).tolist() == [34_200_372_779_672, 57_599_999_999_999, 57_599_999_999_998]
    assert int(float("34200.372779672") * 1e9) == 34_200_372_779_671  # what a float parse gets wrong


def test_winter_date_and_dst_transition_day(tmp_path):
    p = write(tmp_path, "5400,1,1,1,100,1\n12600,1,2,1,100,1\n", name="msgs.csv")
    winter = read_all(p, date="2012-12-21")
    assert winter["ts_exch_ns"][0] == midnight_ns(2012, 12, 21) + 5400 * 10**9
    assert midnight_ns(2012, 12, 21) % (86400 * 10**9) == 5 * 3600 * 10**9  # EST: UTC-5
    # 2013-03-10: clocks jump from 02:00 EST to 03:00 EDT; 01:30 EST and 03:30 EDT are one real hour apart.
    dst = read_all(p, date="2013-03-10")
    utc = [datetime.fromtimestamp(t / 1e9, ZoneInfo("UTC")).strftime("%H:%M") for t in dst["ts_exch_ns"]]
    assert utc == ["06:30", "07:30"]


def test_malformed_rows_are_counted_with_line_numbers_and_skipped(tmp_path):
    text = (
        "34200.1,1,1,100,2238100,1\n"  # 1 ok
        "34200.2,1,2,100,2238100\n"  # 2 five fields
        "34200.3,1,x3,100,2238100,1\n"  # 3 non-numeric
        "34200.4,1,4,-100,2238100,1\n"  # 4 negative size
        "34200.5,9,5,100,2238100,1\n"  # 5 unknown type
        "34200.6,1,6,100,2238100,0\n"  # 6 bad direction
        "34200.7,7,0,0,5,-1\n"  # 7 bad halt indicator
        "\n"  # 8 blank
        "-34200.8,1,8,100,2238100,1\n"  # 9 negative time
        "34200.1234567891,1,9,100,2238100,1\n"  # 10 finer than ns
        "34200.9,1,10,100,2238100,1,7\n"  # 11 seven fields
        "34201,1,11,100,2238100,1\n"  # 12 ok
    )
    stats = ReadStats()
    ev = read_all(write(tmp_path, text), stats=stats)
    assert ev["id"].tolist() == [1, 11]
    assert stats["malformed"] == 9 and stats["blank_lines"] == 1 and stats["lines"] == 12
    lines = sorted(int(p.split(":")[1]) for p in stats.problems)
    assert lines == [2, 3, 4, 5, 6, 7, 9, 10, 11]
    assert all(p.startswith(NAME + ":") for p in stats.problems)
    assert any("negative" in p or "not positive" in p for p in stats.problems if p.startswith(f"{NAME}:4:"))


def test_out_of_order_rows_are_counted_and_kept(tmp_path):
    stats = ReadStats()
    ev = read_all(write(tmp_path, "34201,1,1,1,100,1\n34200,1,2,1,100,1\n34202,1,3,1,100,1\n"), stats=stats)
    assert len(ev) == 3 and stats["out_of_order"] == 1 and stats["malformed"] == 0


def test_coarser_instrument_converts_exactly(tmp_path):
    text = "34200.1,1,1,200,2238100,1\n34200.2,1,2,100,2238150,1\n34200.3,1,3,150,2238200,1\n"
    stats = ReadStats()
    ev = read_all(write(tmp_path, text), instrument=Instrument("AMZN", "0.01", "100"), stats=stats)
    assert ev["px_ticks"].tolist() == [22381] and ev["qty_lots"].tolist() == [2]
    assert stats["malformed"] == 2
    assert "whole tick of 0.01" in stats.problems[0] and "whole lot of 100" in stats.problems[1]


def test_empty_file_yields_nothing(tmp_path):
    stats = ReadStats()
    assert list(iter_lobster_messages(write(tmp_path, ""), stats=stats)) == []
    assert stats["lines"] == 0 and stats["events"] == 0


@pytest.mark.parametrize(
    "content",
    ["1,2,3\n4,5,6\n", "a;b;c\n", "PK\x03\x04\x00\x00binary\x00junk", "ask,bid\n1,2\n"],
)
def test_not_a_message_file(tmp_path, content):
    with pytest.raises(UnrecognisedFormatError, match=NAME):
        iter_lobster_messages(write(tmp_path, content))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot open"):
        iter_lobster_messages(tmp_path / NAME)


def test_dates(tmp_path):
    good = "34200.1,1,1,1,100,1\n"
    with pytest.raises(ConfigError, match="no session date"):
        iter_lobster_messages(write(tmp_path, good, name="msgs.csv"))
    with pytest.raises(ConfigError, match="2012-02-30"):
        iter_lobster_messages(write(tmp_path, good, name="AMZN_2012-02-30_1_2_message_1.csv"))
    with pytest.raises(ConfigError, match="contradicts"):
        iter_lobster_messages(write(tmp_path, good), date="2012-06-22")
    with pytest.raises(ConfigError, match="not a session date"):
        iter_lobster_messages(write(tmp_path, good, name="msgs.csv"), date="21/06/2012")
    ev = read_all(write(tmp_path, good, name="msgs.csv"), date="2012-06-21")
    assert ev["ts_exch_ns"][0] == MIDNIGHT + 34_200_100_000_000
    with pytest.raises(ConfigError):
        iter_lobster_messages(write(tmp_path, good), chunk_rows=0)


def synthetic_messages(n: int, seed: int = 1) -> str:
    """n rows, every 97th of them broken in some way, times increasing."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        t = 34200 * 10**9 + i * 1_234_567
        typ = int(rng.integers(1, 6))
        row = f"{t // 10**9}.{t % 10**9:09d},{typ},{i},{int(rng.integers(1, 500))},{int(rng.integers(1, 10**7))},"
        row += str(int(rng.choice([-1, 1])))
        if i % 97 == 5:
            row = row.replace(",", ";", 1) if i % 2 else row + ",1"
        rows.append(row)
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("chunk_rows", [1, 7, 4095, 100_000])
def test_chunking_does_not_change_the_result(tmp_path, chunk_rows):
    p = write(tmp_path, synthetic_messages(9000))
    ref_stats, stats = ReadStats(), ReadStats()
    ref = read_all(p, stats=ref_stats)
    chunks = list(iter_lobster_messages(p, chunk_rows=chunk_rows, stats=stats))
    assert all(1 <= len(c) <= chunk_rows for c in chunks)
    assert all(len(c) == chunk_rows for c in chunks[:-1])
    assert np.array_equal(np.concatenate(chunks), ref)
    assert stats.counts == ref_stats.counts
    assert ref_stats["malformed"] == len(range(5, 9000, 97)) and len(ref) == 9000 - ref_stats["malformed"]


# --------------------------------------------------------------------------------------------------------------------
# The two parsing paths and the exact time parse
# --------------------------------------------------------------------------------------------------------------------

_good_line = st.builds(
    lambda t, f, typ, oid, size, px, d: f"{t}.{f},{typ},{oid},{size},{px},{d}",
    st.integers(0, 99_999),
    st.text("0123456789", min_size=0, max_size=11),
    st.integers(-1, 8),
    st.integers(-5, 10**12),
    st.integers(-5, 10**6),
    st.integers(-(10**10), 10**10),
    st.sampled_from(["1", "-1", "0", "2"]),
)
_noise = st.text(alphabet="0123456789,.-+ xX\r\tE", max_size=30)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_good_line, _good_line, _noise), min_size=1, max_size=30))
def test_fast_block_parse_equals_line_by_line(lines):
    raw = [(s + "\n").encode() for s in lines]
    s_fast, s_slow = ReadStats(), ReadStats()
    n_fast, c_fast = _parse_block(raw, 1, _MESSAGE, "f", s_fast, fast=True)
    n_slow, c_slow = _parse_block(raw, 1, _MESSAGE, "f", s_slow, fast=False)
    assert n_fast.tolist() == n_slow.tolist()
    assert all(np.array_equal(c_fast[k], c_slow[k]) for k in c_slow)
    assert s_fast.counts == s_slow.counts


@pytest.mark.parametrize(
    "line",
    ["34200.1,1,0x1F,100,2238100,1", "34200.1,1,0X1F,100,2238100,1", "34200.1,1, 7,100,2238100,1",
     "34200.1,1,7 ,100,2238100,1", "34200.1,1,+7,100,2238100,1", "34200.1,1,7.0,100,2238100,1",
     "34200.1,1,1e3,100,2238100,1", "34200.1,1,9223372036854775808,100,2238100,1", "34200.1 ,1,7,100,2238100,1"],
)
def test_lenient_spellings_are_malformed_in_both_paths(line):
    """pyarrow alone would read hex, blanks around numbers; the grammar does not, whichever path a block takes."""
    raw = [b"34200.0,1,1,100,2238100,1\n", line.encode() + b"\n"]
    for fast in (True, False):
        stats = ReadStats()
        lineno, cols = _parse_block(raw, 1, _MESSAGE, "f", stats, fast=fast)
        assert lineno.tolist() == [1] and stats["malformed"] == 1, (fast, stats.problems)


_secs_text = st.builds(
    lambda w, f, z: f"{w}.{f}{'0' * z}" if f or z else str(w),
    st.integers(0, 999_999_999),
    st.text("0123456789", max_size=9),
    st.integers(0, 4),
)


@settings(max_examples=300, deadline=None)
@given(_secs_text)
def test_parse_seconds_ns_is_exact(text):
    expected = Decimal(text) * 10**9
    assert parse_seconds_ns(text) == int(expected)
    assert _secs_to_ns_arrow(pa.array([text])).tolist() == [int(expected)]


@pytest.mark.parametrize("text", ["", ".5", "-1", "+1", "1.0000000001", "1e3", "1.2.3", " 1", "1234567890", "١"])
def test_parse_seconds_ns_rejects(text):
    with pytest.raises(ValueError):
        parse_seconds_ns(text)


# --------------------------------------------------------------------------------------------------------------------
# Order book file
# --------------------------------------------------------------------------------------------------------------------

BOOK_NAME = "AMZN_2012-06-21_34200000_57600000_orderbook_2.csv"


def test_orderbook_levels_and_sentinels(tmp_path):
    text = (
        "2239500,100,2231800,100,2239600,50,2231700,20\n"
        f"2239500,100,2238100,21,{LOBSTER_EMPTY_ASK_PX},0,{LOBSTER_EMPTY_BID_PX},0\n"
    )
    p = write(tmp_path, text, BOOK_NAME)
    book = np.concatenate(list(iter_lobster_orderbook(p)))
    assert book.dtype == np.int64 and book.shape == (2, 8)
    assert book[1, 4] == 9_999_999_999 and book[1, 6] == -9_999_999_999 and book[1, 5] == 0
    assert np.concatenate(list(iter_lobster_orderbook(p, levels=2, chunk_rows=1))).tolist() == book.tolist()
    with pytest.raises(UnrecognisedFormatError, match="1 level"):
        iter_lobster_orderbook(p, levels=1)


def test_orderbook_bad_rows(tmp_path):
    text = "1,2,3,4\n1,2,3\n5,-6,7,8\n9,10,11,12\n"
    stats = ReadStats()
    book = np.concatenate(list(iter_lobster_orderbook(write(tmp_path, text, BOOK_NAME), stats=stats)))
    assert book.tolist() == [[1, 2, 3, 4], [9, 10, 11, 12]]
    assert stats["malformed"] == 2 and stats["rows"] == 2
    with pytest.raises(UnrecognisedFormatError):
        iter_lobster_orderbook(write(tmp_path, "1,2,3\n4,5,6\n", BOOK_NAME))


def test_instrument_from_name():
    inst = lobster_instrument(NAME)
    assert (inst.symbol, inst.tick_size, inst.lot_size) == ("AMZN", "0.0001", "1")


# --------------------------------------------------------------------------------------------------------------------
# The real LOBSTER sample
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def amzn(shared_data):
    p = shared_data / "lobster" / NAME
    if not p.exists():
        pytest.skip(f"{p} not found")
    return p


@pytest.mark.data
def test_real_amzn_messages(amzn):
    stats = ReadStats()
    ev = read_all(amzn, stats=stats)
    assert len(ev) == 57_515 and stats["malformed"] == 0 and stats["out_of_order"] == 0
    assert [stats[f"type_{k}"] for k in range(1, 8)] == [27845, 16, 18235, 8974, 2445, 0, 0]
    ts = ev["ts_exch_ns"]
    assert (np.diff(ts) >= 0).all()
    assert ts[0] == MIDNIGHT + 34_200_017_459_617
    assert MIDNIGHT + 34_200 * 10**9 <= ts.min() and ts.max() < MIDNIGHT + 57_600 * 10**9
    assert set(np.unique(ev["side"]).tolist()) == {-1, 1}
    assert (ev["id"][ev["kind"] == EventKind.ORDER_EXEC_HIDDEN] == 0).all()


@pytest.mark.data
def test_real_amzn_half_cent_hidden_executions(amzn):
    """Priced in whole cents, 63 hidden executions (midpoint fills at half cents) are not whole ticks."""
    stats = ReadStats()
    ev = read_all(amzn, instrument=Instrument("AMZN", "0.01", "1"), stats=stats)
    assert stats["malformed"] == 63 and len(ev) == 57_515 - 63
    assert stats["type_5"] == 2445 - 63


@pytest.mark.data
def test_real_amzn_orderbook_matches_messages(amzn):
    stats = ReadStats()
    book = np.concatenate(list(iter_lobster_orderbook(str(amzn).replace("message", "orderbook"), stats=stats)))
    assert book.shape == (57_515, 4) and stats["malformed"] == 0
    ask, bid = book[:, 0], book[:, 2]
    assert (ask > bid).all()  # never crossed
    ev = read_all(amzn)
    # A visible execution of a resting sell at the best ask: that level's size drops by the executed size.
    i = np.flatnonzero((ev["kind"] == EventKind.ORDER_EXEC) & (ev["side"] == -1))
    i = i[(i > 0) & (ev["px_ticks"][i] == ask[i - 1]) & (ask[i] == ask[i - 1])]
    assert len(i) > 100
    assert (book[i - 1, 1] - book[i, 1] == ev["qty_lots"][i]).all()
