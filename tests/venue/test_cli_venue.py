"""`workbench venue` as a user runs it: URLs on stdout, a 0600 keys file, no secret anywhere, clean exit."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import argparse

from workbench.cli import _latency, _parse_fault
from workbench.exceptions import ConfigError


def start(args: list[str], tmp_path: Path):
    exe = Path(sys.executable).with_name("workbench")
    cmd = ([str(exe)] if exe.exists() else [sys.executable, "-m", "workbench.cli"]) + ["venue", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(tmp_path / "err.txt", "w"), text=True)
    lines = {}
    deadline = time.monotonic() + 60
    while len(lines) < 4 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        k, _, v = line.strip().partition(": ")
        lines[k] = v
    return proc, lines


def stop(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_replay_venue_serves_prints_urls_and_keeps_the_secret(shared_data, tmp_path):
    keys = tmp_path / "keys.json"
    capture = shared_data / "binance" / "spot" / "btcusdt_20240808.gz"
    proc, lines = start(["--replay", str(capture), "--speed", "10", "--keys-file", str(keys), "--port", "0",
                         "--latency-ms", "2,1"], tmp_path)
    try:
        assert set(lines) == {"rest", "stream", "ws-api", "keys"}, lines
        assert lines["rest"].startswith("http://127.0.0.1:") and lines["ws-api"].endswith("/ws-api/v3")
        assert Path(lines["keys"]) == keys.resolve()
        assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600
        data = json.loads(keys.read_text())
        assert set(data) == {"api_key", "api_secret", "rest", "stream", "ws_api"}
        assert data["rest"] == lines["rest"]
        deadline = time.monotonic() + 20
        while True:  # the replay reaches the recording's snapshot a moment after start
            with urllib.request.urlopen(lines["rest"] + "/api/v3/depth?symbol=BTCUSDT&limit=5", timeout=10) as r:
                depth = json.loads(r.read())
            if depth["lastUpdateId"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert depth["lastUpdateId"] > 50_093_239_218 and len(depth["bids"]) == 5  # the recording's ids
    finally:
        code = stop(proc)
    assert code == 0
    out = proc.stdout.read() + (tmp_path / "err.txt").read_text()
    assert data["api_secret"] not in out and data["api_secret"] not in "\n".join(lines.values())


@pytest.mark.parametrize("bad", ["drop-depth", "boom@1", "error@1:order.place", "drop-depth@soon"])
def test_fault_specs_are_checked(bad):
    with pytest.raises(ConfigError):
        _parse_fault(bad)


def test_fault_specs_parse():
    assert _parse_fault("drop-depth@2.5:3") == (2.5, "drop-depth", ["3"])
    assert _parse_fault("error@1:order.place:-2010:2") == (1.0, "error", ["order.place", "-2010", "2"])


def _latency_args(**kw):
    base = {"latency_ms": None, "latency_from_recording": False, "replay": None, "seed": 1, "tick_size": None,
            "lot_size": None, "symbol_for_instrument": None}
    return argparse.Namespace(**{**base, **kw})


def test_latency_options():
    assert _latency(_latency_args()) is None
    m = _latency(_latency_args(latency_ms="2,0.5"))
    assert (m.feed_ns(), m.order_entry_ns(), m.response_ns()) == (2_000_000, 500_000, 500_000)
    m = _latency(_latency_args(latency_ms="1,2,3"))
    assert (m.feed_ns(), m.order_entry_ns(), m.response_ns()) == (1_000_000, 2_000_000, 3_000_000)
    for bad in ("x", "1,2,3,4", "-1", ""):
        with pytest.raises(ConfigError):
            _latency(_latency_args(latency_ms=bad))
    with pytest.raises(ConfigError, match="needs --replay"):
        _latency(_latency_args(latency_from_recording=True))


def test_feed_latency_sampled_from_the_recording(shared_data):
    capture = shared_data / "binance" / "spot" / "btcusdt_20240808.gz"
    m = _latency(_latency_args(latency_ms="5,1", latency_from_recording=True, replay=[str(capture)]))
    draws = m.feed.draw_many_ns(2000)
    # the fastest message of the recording counts as 0, the constant 5 ms is added to every draw
    assert draws.min() >= 5_000_000 and len(set(draws.tolist())) > 10
    assert m.order_entry_ns() == 1_000_000
