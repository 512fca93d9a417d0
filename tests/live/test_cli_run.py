"""`workbench venue` + `workbench run` as a user runs them: the engine trades the synthetic market for a bounded
time; the journal's position and cash agree exactly with the venue's own account (asked over its API)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from websockets.sync.client import connect

from tests.venue.test_cli_venue import start, stop
from workbench.journal import Journal
from workbench.venue.signing import sign, signature_payload


def account(urls: dict, key: str, secret: str) -> dict[str, Decimal]:
    p = {"apiKey": key, "timestamp": int(time.time() * 1000)}
    p["signature"] = sign(secret, signature_payload(p))
    with connect(urls["ws_api"]) as ws:
        ws.send(json.dumps({"id": 1, "method": "account.status", "params": p}))
        r = json.loads(ws.recv(10))
    return {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in r["result"]["balances"]}


def test_venue_and_run_trade_and_the_journal_agrees_with_the_venue(tmp_path):
    keys = tmp_path / "keys.json"
    venue, lines = start(["--keys-file", str(keys), "--seed", "5"], tmp_path)
    try:
        data = json.loads(keys.read_text())
        before = account(data, data["api_key"], data["api_secret"])
        exe = Path(sys.executable).with_name("workbench")
        cmd = [str(exe), "run", "--strategy", "market_maker", "--venue", str(keys), "--journal",
               str(tmp_path / "j.sqlite"), "--duration", "4", "--param", "half_spread_ticks=0", "--param",
               "order_qty=0.001", "--param", "decide_every_ms=50"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "stopped:" in out.stdout and data["api_secret"] not in out.stdout + out.stderr
        after = account(data, data["api_key"], data["api_secret"])
    finally:
        assert stop(venue) == 0
    with Journal(str(tmp_path / "j.sqlite")) as j:
        fills = j.fills_frame()
        pos_lots, cash_units, fee_units = j.positions()["BTCUSDT"]
    assert len(fills) >= 1, out.stdout
    # BTCUSDT of the synthetic venue: tick 0.01, lot 0.00001 -> a notional unit is 1e-7 USDT
    assert after["BTC"] - before["BTC"] == Decimal(pos_lots) * Decimal("0.00001")
    assert after["USDT"] - before["USDT"] == Decimal(cash_units - fee_units) * Decimal("0.0000001")
