"""The command line contract of issue 2: `workbench book` layouts, summaries and exit codes; `workbench replay`."""

from __future__ import annotations

import csv
import gzip
import io
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from workbench.cli import main
from workbench.data.binance import BinanceCapture
from workbench.data.lobster import iter_lobster_messages, iter_lobster_orderbook
from workbench.data.lobster_book import level1_rows
from workbench.book.book import L2Book

AMZN = "lobster/AMZN_2012-06-21_34200000_57600000_{}_1.csv"


def test_book_lobster_writes_lobster_level1_layout(shared_data, tmp_path, capsys):
    msg = shared_data / AMZN.format("message")
    out = tmp_path / "book.csv"
    assert main(["book", str(msg), "--format", "lobster", "-o", str(out)]) == 0
    rows = np.loadtxt(out, delimiter=",", dtype=np.int64)
    expected = np.concatenate(list(iter_lobster_orderbook(shared_data / AMZN.format("orderbook"))))
    assert rows.shape == expected.shape == (57_515, 4)
    ev = np.concatenate(list(iter_lobster_messages(msg)))
    np.testing.assert_array_equal(rows, level1_rows(L2Book(), ev))
    # LOBSTER's own empty-side values, and prices in its integer units
    assert set(rows[rows[:, 1] == 0, 0]) <= {9_999_999_999}
    assert set(rows[rows[:, 3] == 0, 2]) <= {-9_999_999_999}
    assert 2_000_000 < np.median(rows[rows[:, 1] > 0, 0]) < 2_500_000
    err = capsys.readouterr().err
    assert "messages=57515" in err and "malformed=0" in err


def test_book_binance_rows_and_summary(shared_data, tmp_path, capsys):
    path = shared_data / "binance" / "usdm" / "btcusdt_20240808.gz"
    out = tmp_path / "book.csv"
    assert main(["book", str(path), "--format", "binance", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    with open(out) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["update_id", "bid_px", "bid_qty", "ask_px", "ask_qty"]
    reader = BinanceCapture(path)
    ev = reader.events()
    assert len(rows) - 1 == reader.stats["diffs_applied"] == 6547
    ids = [int(r[0]) for r in rows[1:]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    t = reader.book.top()
    last = rows[-1]
    ins = reader.instrument
    assert Decimal(last[1]) == Decimal(ins.ticks_to_str(t.bid_px_ticks))
    assert Decimal(last[4]) == Decimal(ins.lots_to_str(t.ask_qty_lots))
    assert all(Decimal(r[1]) < Decimal(r[3]) for r in rows[1:])  # never crossed
    assert "gaps=0" in err and "crossed=0" in err and "malformed=0" in err and "resyncs=0" in err
    assert "bbo_match=6547/6547" in err
    assert len(ev)


def test_book_binance_consecutive_files_are_one_stream(shared_data, tmp_path, capsys):
    spot = shared_data / "binance" / "spot"
    out = tmp_path / "book.csv"
    assert main(["book", str(spot / "btcusdt_20240808.gz"), str(spot / "btcusdt_20240809.gz"),
                 "--format", "binance", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "applied=6493" in err and "gaps=0" in err and "crossed=0" in err
    assert sum(1 for _ in open(out)) == 6494


@pytest.mark.parametrize("fmt", ["binance", "lobster"])
@pytest.mark.parametrize("content", [None, b"", b"a,b,c\n1,2,3\n", b"\x00\x01garbage\xff" * 10])
def test_unreadable_or_unrecognised_input_exits_nonzero_with_one_line(tmp_path, capsys, fmt, content):
    path = tmp_path / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
    if content is not None:
        path.write_bytes(content)
    code = main(["book", str(path), "--format", fmt, "-o", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err.strip()
    if fmt == "lobster" and content == b"":
        assert code == 0  # an empty message file is a valid empty book
        return
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("workbench book: ")


def test_truncated_capture_is_reported_not_fatal(shared_data, tmp_path, capsys):
    raw = (shared_data / "binance" / "spot" / "btcusdt_20240808.gz").read_bytes()
    path = tmp_path / "cut.gz"
    path.write_bytes(raw[: len(raw) // 3])
    assert main(["book", str(path), "--format", "binance", "-o", str(tmp_path / "o.csv")]) == 0
    err = capsys.readouterr().err
    assert "truncated=1" in err and "cut.gz:" in err


def test_replay_prints_book_and_signal_statistics(shared_data, capsys):
    spot = shared_data / "binance" / "spot"
    assert main(["replay", str(spot / "btcusdt_20240808.gz")]) == 0
    out = capsys.readouterr().out
    for name in ("book sync", "bookTicker check", "spread (ticks)", "imbalance top 5", "bollinger z", "volume delta",
                 "breakouts", "absorption (iceberg)", "markout 1 s", "M events/s"):
        assert name in out, name
    assert "gaps 0" in out and "crossed 0" in out


def test_replay_without_data_says_where_it_looked(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "absent"))
    assert main(["replay"]) == 2
    assert "WORKBENCH_DATA" in capsys.readouterr().err


def test_console_script_runs():
    exe = Path(sys.executable).with_name("workbench")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "workbench.cli"]
    res = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "book" in res.stdout and "replay" in res.stdout


@pytest.mark.parametrize("fmt", ["binance", "lobster", "equity"])
def test_convert_writes_the_same_events_to_parquet(shared_data, tmp_path, capsys, fmt):
    import pandas as pd

    from workbench.data import read_events, read_instrument
    from workbench.data.equity import iter_equity_ticks
    from workbench.data.parquet import FORMAT_VERSION  # noqa: F401  (the format is versioned)

    paths = {
        "binance": [shared_data / "binance" / "usdm" / "btcusdt_20240808.gz"],
        "lobster": [shared_data / AMZN.format("message")],
        "equity": [shared_data / "equity_ticks" / "ibm" / "20131007_quote.zip",
                   shared_data / "equity_ticks" / "ibm" / "20131007_trade.zip"],
    }[fmt]
    out = tmp_path / "events.parquet"
    assert main(["convert", *map(str, paths), "--format", fmt, "-o", str(out)]) == 0
    got = np.concatenate(list(read_events(out)))
    if fmt == "binance":
        want = BinanceCapture(paths[0]).events()
    elif fmt == "lobster":
        want = np.concatenate(list(iter_lobster_messages(paths[0])))
    else:
        want = np.concatenate(list(iter_equity_ticks(*paths, classify="quote")))
    assert np.array_equal(got, want)
    assert read_instrument(out).symbol in {"BTCUSDT", "AMZN", "IBM"}
    assert len(pd.read_parquet(out)) == len(want)
    assert f"{len(want)} events" in capsys.readouterr().err
