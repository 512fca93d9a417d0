"""The control plane: token required (refused and logged otherwise), snapshots streamed, commands applied on the
engine's loop, and a kill from another process (`workbench kill`) leaves the venue flat."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.live.test_engine import USER, config, served_venue, wait_for
from workbench.live.engine import Engine
from workbench.strategy import MarketMaker


def client(eng, token=None):
    return connect(eng.control_url, additional_headers={"Authorization": f"Bearer {token or eng.control_token}"},
                   open_timeout=10)


def call(ws, rid, cmd, params=None):
    ws.send(json.dumps({"id": rid, "cmd": cmd, "params": params or {}}))
    while True:
        m = json.loads(ws.recv(20))
        if m.get("id") == rid:
            return m


def test_token_snapshots_and_commands(caplog):
    with served_venue(seed=9) as (venue, urls, key):
        mm = MarketMaker(order_qty=0.001, max_position=2, decide_every_ms=50)
        eng = Engine(mm, config(urls, key)).start()
        try:
            assert eng.control_url.startswith("ws://127.0.0.1:") and eng.control_token not in repr(eng)
            for bad in ("x" * 32, ""):
                with pytest.raises(InvalidStatus) as e:
                    client(eng, bad).close() if bad else connect(eng.control_url, open_timeout=10).close()
                assert e.value.response.status_code == 401
            assert eng.control.refused == 2
            assert eng.control_token not in caplog.text
            with client(eng) as ws:
                snaps = []
                while len(snaps) < 3:
                    m = json.loads(ws.recv(10))
                    if m.get("type") == "snapshot":
                        snaps.append(m)
                assert snaps[-1]["running"] and snaps[-1]["in_sync"]["BTCUSDT"] and snaps[-1]["guard_state"] == "ACTIVE"
                r = call(ws, 1, "set_params", {"half_spread_ticks": 3})
                assert r["ok"] and r["result"] == [{"name": "half_spread_ticks", "old": 1, "new": 3}]
                assert mm.params.half_spread_ticks == 3
                bad = call(ws, 2, "set_params", {"half_spread_ticks": -1})
                assert not bad["ok"] and "half_spread_ticks" in bad["error"] and mm.params.half_spread_ticks == 3
                assert not call(ws, 3, "launch")["ok"]
                assert call(ws, 4, "pause")["ok"] and eng.paused
                assert call(ws, 5, "resume")["ok"] and not eng.paused
        finally:
            eng.stop()


def test_workbench_kill_from_another_process_leaves_the_venue_flat():
    with served_venue(seed=10) as (venue, urls, key):
        base0 = sum(venue.balances(USER)["BTC"])
        mm = MarketMaker(half_spread_ticks=0, order_qty=0.001, max_position=3, decide_every_ms=50)
        eng = Engine(mm, config(urls, key)).start()
        try:
            wait_for(lambda: eng.counters["orders_sent"] >= 2, 30, "quotes")
            exe = Path(sys.executable).with_name("workbench")
            t0 = time.monotonic()
            out = subprocess.run([str(exe), "kill", "--control", eng.control_url, "--token", eng.control_token],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stdout + out.stderr
            assert "killed" in out.stdout and time.monotonic() - t0 < 30
            assert venue.open_orders(USER) == [] and sum(venue.balances(USER)["BTC"]) == base0
            assert eng.snapshot().guard_state == "HALTED"
            sent = eng.counters["orders_sent"]
            time.sleep(0.3)
            assert eng.counters["orders_sent"] == sent  # nothing after the kill
        finally:
            eng.stop()
        bad = subprocess.run([str(exe), "kill", "--control", "ws://127.0.0.1:9/", "--token", "x" * 20],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "cannot reach the engine" in bad.stderr
