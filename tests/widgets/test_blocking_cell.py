"""In a real kernel: while a cell holds the kernel's thread for 10 s (a busy loop, not a sleep), the engine keeps
deciding in its own thread, a breaker trips on a fault that happens meanwhile (the venue goes away: the feed goes
stale), the panels draw nothing during the block and catch up with the newest snapshot afterwards."""

from __future__ import annotations

import json
import threading

import pytest

from workbench.venue import SyntheticVenue, new_api_key
from workbench.venue.server import ThreadedVenue

jupyter_client = pytest.importorskip("jupyter_client")

SETUP = """
import asyncio, json, os, time
import widgets
from workbench.live import Credentials, Engine, EngineConfig
from workbench.risk import RiskConfig
from workbench.strategy import MarketMaker
cfg = EngineConfig(rest=os.environ["T_REST"], stream=os.environ["T_STREAM"], ws_api=os.environ["T_WS_API"],
                   credentials=Credentials(os.environ["T_KEY"], os.environ["T_SECRET"]), symbols=("BTCUSDT",),
                   risk=RiskConfig(max_depth_frac=1.0), snapshot_hz=20, flatten_timeout_s=1.0)
engine = Engine(MarketMaker(half_spread_ticks=1, order_qty=0.001, max_position=3, decide_every_ms=100), cfg).start()
dash = widgets.dashboard(engine, fps=10)
await asyncio.sleep(1.0)
assert dash.frames > 0
"""

BLOCK = """
t0, d0, f0 = time.time_ns(), engine.counters["decisions"], dash.frames
x = 0
while time.time_ns() - t0 < 10_000_000_000:
    x += 1
t1, d1, f1 = time.time_ns(), engine.counters["decisions"], dash.frames
"""

AFTER = """
await asyncio.sleep(1.0)
stale = [e.ts_ns for e in engine.risk_events if e.rule == "stale" and e.state_to.name != "ACTIVE"]
print(json.dumps({"decided_in_block": d1 - d0, "frames_in_block": f1 - f0, "frames_after": dash.frames - f1,
                  "stale_in_block": [t for t in stale if t0 < t < t1], "drawn_ts": dash._last_ts, "t1": t1}))
dash.close()
engine.stop()
"""


def _run(kc, code: str, timeout: float) -> str:
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":  # stderr carries the engine's log
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out)


def test_a_blocked_kernel_does_not_stop_trading_nor_the_breakers():
    key = new_api_key(1)
    tv = ThreadedVenue(SyntheticVenue.default(seed=3), [key]).start()
    env = {"T_REST": tv.urls["rest"], "T_STREAM": tv.urls["stream"], "T_WS_API": tv.urls["ws_api"],
           "T_KEY": key.key, "T_SECRET": key.secret}
    km = jupyter_client.KernelManager(kernel_name="python3")
    import os

    km.start_kernel(env={**os.environ, **env})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        _run(kc, SETUP, 120)
        # while the next cell blocks, the venue goes away after 3 s: the feed goes stale in the engine
        killer = threading.Timer(3.0, tv.stop)
        killer.start()
        _run(kc, BLOCK, 60)
        killer.join()
        r = json.loads([ln for ln in _run(kc, AFTER, 60).splitlines() if ln.startswith("{")][-1])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        tv.stop()
    assert r["decided_in_block"] >= 20        # 100 ms decisions; the venue was up for the first 3 s of the block
    assert r["stale_in_block"], "the stale-feed breaker did not trip while the kernel was blocked"
    assert r["frames_in_block"] == 0          # the panels wait for the kernel's thread...
    assert r["frames_after"] > 0 and r["drawn_ts"] > r["t1"]  # ...and then jump to the newest snapshot
