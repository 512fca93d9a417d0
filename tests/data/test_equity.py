"""Equity tick zips (LEAN layout): quote pairing, trades, the streaming merge and quote-rule classification."""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from workbench.data.equity import equity_instrument, iter_equity_quotes, iter_equity_ticks, iter_equity_trades
from workbench.enums import EventFlag, EventKind, Side
from workbench.exceptions import ConfigError, DataError, UnrecognisedFormatError
from workbench.instrument import Instrument
from workbench.stats import ReadStats
from workbench.types import event_dt

MIDNIGHT = int(datetime(2013, 10, 7, tzinfo=ZoneInfo("America/New_York")).timestamp()) * 10**9
BE, SUS = int(EventFlag.BATCH_END), int(EventFlag.SUSPICIOUS)


def zipped(tmp_path: Path, name: str, text: str, member: str | None = None) -> Path:
    p = tmp_path / name
    what = "Quote" if "quote" in name else "Trade"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member or f"{name[:8]}_ibm_{what}_Tick.csv", text)
    return p


def cat(chunks) -> np.ndarray:
    chunks = list(chunks)
    return np.concatenate(chunks) if chunks else np.zeros(0, event_dt)


QUOTES = """\
14400054,0,0,1836300,100,Q,1,0
14400241,1800100,300,0,0,P,1,0
14400241,0,0,1818000,3000,P,1,0
14400277,1812400,200,0,0,P,1,0
14400277,0,0,1818000,3000,P,1,1
14400300,1812500,200,0,0,P,1,0
14400301,1812600,200,1818100,100,P,1,0
14400302,1812700,100,0,0,P,1,0"""

TRADES = """\
14400241,1818000,100,P,20002020,0
14400290,1812400,50,D,1,0
14400290,1815000,10,D,1,1
14400400,1812700,5,N,2000,0"""


def test_quote_rows_pairs_and_flags(tmp_path):
    stats = ReadStats()
    ev = cat(iter_equity_quotes(zipped(tmp_path, "20131007_quote.zip", QUOTES), stats=stats))
    assert (ev["kind"] == EventKind.BBO).all()
    assert ev["side"].tolist() == [-1, 1, -1, 1, -1, 1, 1, -1, 1]
    assert ev["px_ticks"].tolist() == [1836300, 1800100, 1818000, 1812400, 1818000, 1812500, 1812600, 1818100, 1812700]
    assert ev["qty_lots"].tolist() == [100, 300, 3000, 200, 3000, 200, 200, 100, 100]
    # lone ask; pair; pair with a suspicious ask; bid with no ask at its time; two-sided row; lone bid at the end
    assert ev["flags"].tolist() == [BE, 0, BE, 0, BE | SUS, BE, 0, BE, BE]
    assert ev["id"].tolist() == [1, 2, 3, 4, 5, 6, 7, 7, 8]  # line numbers
    assert (ev["ts_exch_ns"] - MIDNIGHT).tolist()[:3] == [14_400_054_000_000, 14_400_241_000_000, 14_400_241_000_000]
    assert (ev["ts_local_ns"] == ev["ts_exch_ns"]).all()
    assert stats["suspicious"] == 1 and stats["two_sided_rows"] == 1 and stats["unpaired_rows"] == 3
    assert stats["lines"] == 8 and stats["events"] == 9 and stats["malformed"] == 0


def test_trades(tmp_path):
    stats = ReadStats()
    ev = cat(iter_equity_trades(zipped(tmp_path, "20131007_trade.zip", TRADES), stats=stats))
    assert (ev["kind"] == EventKind.TRADE).all() and (ev["side"] == 0).all()
    assert ev["flags"].tolist() == [BE, BE, BE | SUS, BE]
    assert ev["px_ticks"].tolist() == [1818000, 1812400, 1815000, 1812700]
    assert ev["qty_lots"].tolist() == [100, 50, 10, 5]
    assert stats["suspicious"] == 1 and stats["events"] == 4


def test_merge_puts_quotes_first_at_equal_times_and_classifies(tmp_path):
    q = zipped(tmp_path, "20131007_quote.zip", QUOTES)
    t = zipped(tmp_path, "20131007_trade.zip", TRADES)
    stats = ReadStats()
    ev = cat(iter_equity_ticks(q, t, stats=stats, classify="quote"))
    assert len(ev) == 9 + 4 and stats["events"] == 13 and stats["lines"] == 12
    assert (np.diff(ev["ts_exch_ns"]) >= 0).all()
    kinds = ev["kind"].tolist()
    assert kinds[:4] == [EventKind.BBO] * 3 + [EventKind.TRADE]  # the 14400241 quote pair before its trade
    trades = ev[ev["kind"] == EventKind.TRADE]
    # 1818000 >= ask 1818000: buy; 1812400 <= bid: sell; 1815000 inside the spread: unknown (the suspicious ask
    # 1818000 at 14400277 is ignored, the one before has the same price); 1812700 at the last bid: sell.
    assert trades["side"].tolist() == [Side.BUY, Side.SELL, 0, Side.SELL]
    assert (stats["buy_initiated"], stats["sell_initiated"], stats["unclassified"]) == (1, 2, 1)
    plain = cat(iter_equity_ticks(q, t))
    assert (plain["side"][plain["kind"] == EventKind.TRADE] == 0).all()
    assert np.array_equal(plain["ts_exch_ns"], ev["ts_exch_ns"])


def test_suspicious_quotes_do_not_set_the_prevailing_price(tmp_path):
    quotes = "1000,100,1,0,0,P,1,0\n1000,0,0,200,1,P,1,0\n2000,0,0,150,1,P,1,1\n"
    q = zipped(tmp_path, "20131007_quote.zip", quotes)
    t = zipped(tmp_path, "20131007_trade.zip", "3000,160,1,P,1,0\n3000,200,1,P,1,0\n")
    ev = cat(iter_equity_ticks(q, t, classify="quote"))
    assert ev["side"][ev["kind"] == EventKind.TRADE].tolist() == [0, Side.BUY]


def synthetic_day(tmp_path, n_pairs: int, n_trades: int):
    """A lone first ask, then n_pairs bid/ask pairs; trades at times interleaved and equal to quote times."""
    q = ["1000,0,0,1000,1,P,1,0"]
    for i in range(n_pairs):
        t = 1000 + 3 * i
        q.append(f"{t},{900 + i % 50},{1 + i % 7},0,0,P,1,0")
        q.append(f"{t},0,0,{1000 + i % 50},{1 + i % 5},Q,1,{int(i % 101 == 0)}")
    tr = [f"{1000 + (7 * i) // 2},{950 + i % 90},{1 + i % 9},D,1,0" for i in range(n_trades)]
    return (
        zipped(tmp_path, "20131007_quote.zip", "\n".join(q) + "\n"),
        zipped(tmp_path, "20131007_trade.zip", "\n".join(tr) + "\n"),
    )


@pytest.mark.parametrize("chunk_rows", [1, 7, 5000, 1_000_000])
def test_chunking_does_not_change_quotes_or_the_merge(tmp_path, chunk_rows):
    # 4096-line read blocks: with the lone first row, line 4096 is a bid row whose ask is in the next block.
    q, t = synthetic_day(tmp_path, 6000, 5000)
    ref_q = cat(iter_equity_quotes(q, chunk_rows=10**7))
    assert len(ref_q) == 12_001 and (ref_q["flags"][2::2] & BE).all() and not (ref_q["flags"][1::2] & BE).any()
    got_q = list(iter_equity_quotes(q, chunk_rows=chunk_rows))
    assert all(len(c) <= chunk_rows for c in got_q)
    assert np.array_equal(np.concatenate(got_q), ref_q)
    ref = cat(iter_equity_ticks(q, t, chunk_rows=10**7, classify="quote"))
    got = list(iter_equity_ticks(q, t, chunk_rows=chunk_rows, classify="quote"))
    assert all(len(c) <= chunk_rows for c in got)
    got = np.concatenate(got)
    assert np.array_equal(got, ref)
    assert len(ref) == 12_001 + 5000 and (np.diff(ref["ts_exch_ns"]) >= 0).all()
    # the merge is a stable interleave: each source keeps its order, quotes before trades at equal times
    key = ref["ts_exch_ns"] * 2 + (ref["kind"] == EventKind.TRADE)
    assert (np.diff(key) >= 0).all()
    assert np.array_equal(ref[ref["kind"] == EventKind.BBO], ref_q)


def test_malformed_rows(tmp_path):
    quotes = (
        "1000,100,1,0,0,P,1,0\n"  # 1 ok (pairs with 2)
        "1000,0,0,200,1,P,1,0\n"  # 2 ok
        "1001,100,1,0,0,P,1\n"  # 3 seven fields
        "1002,1o0,1,0,0,P,1,0\n"  # 4 non-numeric
        "1003,100,-1,0,0,P,1,0\n"  # 5 negative size
        "1004,0,0,0,0,P,1,0\n"  # 6 neither side
        "1005,100,1,0,0,P,1,2\n"  # 7 bad suspicious flag
        "-5,100,1,0,0,P,1,0\n"  # 8 negative time
        "1006,100,1,0,0,P,1,0\n"  # 9 ok, lone
    )
    stats = ReadStats()
    ev = cat(iter_equity_quotes(zipped(tmp_path, "20131007_quote.zip", quotes), stats=stats))
    assert ev["id"].tolist() == [1, 2, 9]
    assert stats["malformed"] == 6
    assert sorted(int(p.split(":")[1]) for p in stats.problems) == [3, 4, 5, 6, 7, 8]
    trades = "1000,100,1,P,1,0\n1001,0,1,P,1,0\n1002,100,-3,P,1,0\n1003,100,1,P,1\n1004,abc,1,P,1,0\n"
    stats = ReadStats()
    ev = cat(iter_equity_trades(zipped(tmp_path, "20131007_trade.zip", trades), stats=stats))
    assert ev["id"].tolist() == [1] and stats["malformed"] == 4


def test_coarser_instrument(tmp_path):
    stats = ReadStats()
    ev = cat(iter_equity_trades(
        zipped(tmp_path, "20131007_trade.zip", "1000,1818000,100,P,1,0\n1001,1818050,100,P,1,0\n"),
        instrument=Instrument("IBM", "0.01", "1"),
        stats=stats,
    ))
    assert ev["px_ticks"].tolist() == [18180] and stats["malformed"] == 1


def test_empty_member(tmp_path):
    stats = ReadStats()
    assert list(iter_equity_quotes(zipped(tmp_path, "20131007_quote.zip", ""), stats=stats)) == []
    assert stats["lines"] == 0


def test_not_a_zip_truncated_zip_and_missing(tmp_path):
    (tmp_path / "20131007_quote.zip").write_text("14400054,0,0,1836300,100,Q,1,0\n")
    with pytest.raises(UnrecognisedFormatError, match="20131007_quote.zip"):
        iter_equity_quotes(tmp_path / "20131007_quote.zip")
    (tmp_path / "good").mkdir()
    data = zipped(tmp_path / "good", "20131007_quote.zip", (QUOTES + "\n") * 50).read_bytes()
    cut = tmp_path / "20131008_quote.zip"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="20131008_quote.zip"):
        iter_equity_quotes(cut)
    (tmp_path / "20131009_quote.zip").write_bytes(b"")
    with pytest.raises(UnrecognisedFormatError):
        iter_equity_quotes(tmp_path / "20131009_quote.zip")
    with pytest.raises(DataError, match="cannot open"):
        iter_equity_quotes(tmp_path / "20131010_quote.zip")


def test_corrupt_member_data_raises_data_error(tmp_path):
    """The zip directory is intact but the compressed bytes are not: reading fails with the file's name."""
    rows = "".join(f"{1000 + i},{100 + i % 13},{1 + i % 7},0,0,P,1,0\n" for i in range(20000))
    p = zipped(tmp_path, "20131007_quote.zip", rows)
    data = bytearray(p.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="20131007_quote.zip"):
        list(iter_equity_quotes(p))


def test_zip_with_other_content(tmp_path):
    p = tmp_path / "20131007_quote.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("a.csv", QUOTES)
        zf.writestr("b.csv", QUOTES)
    with pytest.raises(UnrecognisedFormatError, match="one .csv member"):
        iter_equity_quotes(p)
    with pytest.raises(UnrecognisedFormatError, match="expected 8"):
        iter_equity_quotes(zipped(tmp_path, "20131008_quote.zip", TRADES))
    with pytest.raises(UnrecognisedFormatError, match="quote"):
        iter_equity_trades(zipped(tmp_path, "20131009_quote.zip", QUOTES))


def test_dates(tmp_path):
    with pytest.raises(ConfigError, match="no session date"):
        iter_equity_quotes(zipped(tmp_path, "quotes.zip", QUOTES, member="q.csv"))
    ev = cat(iter_equity_quotes(zipped(tmp_path, "quotes.zip", QUOTES, member="q.csv"), date="2013-10-07"))
    assert ev["ts_exch_ns"][0] == MIDNIGHT + 14_400_054_000_000
    with pytest.raises(ConfigError):
        iter_equity_quotes(zipped(tmp_path, "20131345_quote.zip", QUOTES))
    q = zipped(tmp_path, "20131007_quote.zip", QUOTES)
    with pytest.raises(ConfigError, match="different days"):
        iter_equity_ticks(q, zipped(tmp_path, "20131008_trade.zip", TRADES))
    with pytest.raises(ConfigError, match="contradicts"):
        iter_equity_quotes(q, date="2013-10-08")
    with pytest.raises(ConfigError, match="classify"):
        iter_equity_ticks(q, zipped(tmp_path, "20131007_trade.zip", TRADES), classify="tick")


def test_instrument_from_member_name(tmp_path):
    inst = equity_instrument(zipped(tmp_path, "20131007_quote.zip", QUOTES))
    assert (inst.symbol, inst.tick_size, inst.lot_size) == ("IBM", "0.0001", "1")


# --------------------------------------------------------------------------------------------------------------------
# The real IBM files
# --------------------------------------------------------------------------------------------------------------------

REAL = {  # day: (quote rows, trade rows, unpaired quote rows)
    "20131007": (109_067, 24_293, 1),
    "20131008": (125_750, 33_381, 0),
}


@pytest.mark.data
@pytest.mark.parametrize("day", sorted(REAL))
def test_real_ibm_day(shared_data, day):
    folder = shared_data / "equity_ticks" / "ibm"
    q, t = folder / f"{day}_quote.zip", folder / f"{day}_trade.zip"
    if not q.exists():
        pytest.skip(f"{q} not found")
    n_quotes, n_trades, unpaired = REAL[day]
    stats = ReadStats()
    ev = cat(iter_equity_ticks(q, t, stats=stats, classify="quote"))
    assert stats["malformed"] == 0 and stats["out_of_order"] == 0 and stats["blank_lines"] == 0
    assert stats["lines"] == n_quotes + n_trades == len(ev)
    assert stats["unpaired_rows"] == unpaired and stats["two_sided_rows"] == 0
    assert (np.diff(ev["ts_exch_ns"]) >= 0).all()
    local = datetime.fromtimestamp(ev["ts_exch_ns"][0] / 1e9, ZoneInfo("America/New_York"))
    assert (local.hour, local.date().isoformat()) == (4, f"{day[:4]}-{day[4:6]}-{day[6:]}")
    # Data oddity, pinned: the last quote row of each day (20:00:00.1) is the only one marked suspicious.
    quotes = ev[ev["kind"] == EventKind.BBO]
    assert stats["suspicious"] == 1 and quotes["flags"][-1] & SUS and not (quotes["flags"][:-1] & SUS).any()
    trades = ev[ev["kind"] == EventKind.TRADE]
    assert len(trades) == n_trades
    assert stats["buy_initiated"] + stats["sell_initiated"] + stats["unclassified"] == n_trades
