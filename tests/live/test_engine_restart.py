"""kill -9 of the engine's process during a burst of fills, then a restart on the same journal: zero fills lost
(every fill of the account in the venue's own records is in the journal exactly once, and ``myTrades`` agrees),
positions and cash equal to the venue's, open orders restored and reconciled with the venue before the strategy
starts. And after a kill (the kill switch), the venue accepts no order: neither what the strategy asks right after,
nor anything after the kill is confirmed; orders in flight at the kill are resolved before it is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from websockets.sync.client import connect

from tests.live.venue_records import (
    LOT,
    SYM,
    USER,
    Burst,
    alerts,
    Checker,
    journal_rows,
    served,
    stop_all,
    wait_for,
)
from workbench.journal import Journal
from workbench.live.engine import Engine
from workbench.strategy.orders import OrderBook, OrderState
from workbench.venue.api import OrderRequest, OrderType, TimeInForce
from workbench.venue.keys import write_keys_file
from workbench.venue.signing import sign, signature_payload
from workbench.venue.synthetic import TAKER

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import sys, time
    from workbench.live.engine import Engine, EngineConfig
    from workbench.risk import RiskConfig
    from tests.live.venue_records import Burst
    cfg = EngineConfig.from_keys_file(sys.argv[1], ("BTCUSDT",), journal_path=sys.argv[2], control=False,
                                      risk=RiskConfig(max_depth_frac=1.0))
    Engine(Burst(), cfg).start()
    print("started", flush=True)
    time.sleep(120)
""")


def journal_fill_ids(path) -> list[int]:
    if not Path(path).exists():
        return []
    return [r["trade_id"] for r in journal_rows(path, "fills")]


def my_trades(rig) -> list[dict]:
    """The account's fills as the venue's API lists them (``myTrades``, signed)."""
    p = {"symbol": SYM, "limit": 1000, "apiKey": rig.key.key, "timestamp": int(time.time() * 1000)}
    p["signature"] = sign(rig.key.secret, signature_payload(p))
    with connect(rig.urls["ws_api"], open_timeout=10) as ws:
        ws.send(json.dumps({"id": 1, "method": "myTrades", "params": p}))
        r = json.loads(ws.recv(10))
    assert r["status"] == 200, r
    return r["result"]


def sweep_resting_bids(rig) -> list[int]:
    """The market sells down through the user's resting bids (while the engine is down): their fills are ones the
    journal cannot have heard of. Returns the order ids swept."""
    def sell():
        mine = [v for v in rig.venue.open_orders(USER) if v.side > 0]
        if not mine:
            return []
        low = min(v.px_ticks for v in mine)
        qty = sum(q for p, q in rig.venue.depth(SYM, 1000).bids if p >= low)
        rig.venue.place(OrderRequest(TAKER, SYM, -1, OrderType.MARKET, qty), time.time_ns())
        return [v.order_id for v in mine]

    return rig.call(sell)


def test_orderbook_restore_takes_back_orders_of_an_earlier_run():
    old = OrderBook("a")
    live = old.submit(SYM, 1, OrderType.LIMIT, 5, 100, TimeInForce.GTC, 1)
    done = old.submit(SYM, -1, OrderType.MARKET, 5, 0, TimeInForce.IOC, 2)
    old.apply(done.client_order_id, OrderState.FILLED, 3, filled_lots=5)
    book = OrderBook("a")
    assert book.restore([live, done]) == 2
    assert book.open_orders() == [live] and book.get(done.client_order_id) is done
    assert book.new_id() == "a3"  # never one of the restored ids again
    try:
        book.restore([live])
    except Exception as e:
        assert "already used" in str(e)
    else:
        raise AssertionError("a restored id twice must be refused")


def test_kill_9_mid_burst_then_restart_loses_no_fill(tmp_path):
    with served(seed=31) as rig:
        base0 = rig.base_lots()
        quote0 = sum(rig.call(lambda: rig.venue.balances(USER))["USDT"])
        keys = write_keys_file(tmp_path / "keys.json", rig.key, **rig.urls)
        path = tmp_path / "j.sqlite"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        swept: list[int] = []
        restored: list[int] = []
        # at least two kills; more (at most four) while one has not found a resting bid to sweep, or none has left
        # an open order to restore (the strategy may cancel its bid between the check below and the kill)
        for cycle in range(4):
            if cycle >= 2 and swept and max(restored) >= 1:
                break
            p = subprocess.Popen([sys.executable, "-c", CHILD, str(keys), str(path)], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            watchdog = threading.Timer(120, p.kill)  # a child that hangs fails the test instead of hanging it
            watchdog.start()
            try:
                assert p.stdout.readline() == "started\n", p.stderr.read()[-2000:]
                n0 = len(journal_fill_ids(path))
                # a burst of fills, with the resting bid at the venue (the restart has an open order to restore)
                wait_for(lambda: len(journal_fill_ids(path)) >= n0 + 40
                         and rig.call(lambda: [v for v in rig.venue.open_orders(USER) if v.side > 0]),
                         60, "a burst of fills and a resting bid")
                p.send_signal(signal.SIGKILL)  # mid-burst: orders and reports in flight
                p.wait(30)
            finally:
                watchdog.cancel()
                p.kill()
            assert p.returncode == -signal.SIGKILL
            if not swept:
                swept += sweep_resting_bids(rig)  # fills while nobody listens; in the next cycle the bid rests on
            time.sleep(0.3)
            venue_ids = {e.fill.trade_id for e in rig.venue.fills_of(USER)}
            missing = venue_ids - set(journal_fill_ids(path))
            with Journal(path) as j:
                open_at_kill = len(j.open_orders())
            # restart on the same journal; the checker notes what it sees when trading may begin
            checker = Checker(rig)
            eng = Engine(checker, rig.config(journal_path=str(path))).start()
            try:
                seen = checker.seen
                assert seen.orders == seen.venue_orders  # restored and reconciled before the strategy starts
                assert eng.counters["restored_orders"] == open_at_kill  # every open order the journal holds
                restored.append(open_at_kill)
                assert seen.position == seen.venue_base - base0  # missed fills included
                ids = journal_fill_ids(path)
                now_ids = {e.fill.trade_id for e in rig.venue.fills_of(USER)}
                assert len(ids) == len(set(ids))  # each once
                assert venue_ids <= set(ids)  # zero lost
                # none invented; the checker is idle, but a restored bid resting on may fill since the restart
                late = set(ids) - venue_ids
                assert late <= now_ids
                if missing:
                    assert eng.counters["fills"] == len(missing) + len(late)
                    assert any("missed_fills" in f for f in alerts(eng))
            finally:
                stop_all(eng)
        assert max(restored) >= 1, "no open order to restore at any kill: the test did not exercise the restore"
        assert swept, "no resting bid to sweep at any kill: the test did not exercise fills missed while down"
        # the venue's own API says the same, and the sweeps were fills the journal could only learn from it
        api_ids = [t["id"] for t in my_trades(rig)]
        venue_ids = {e.fill.trade_id for e in rig.venue.fills_of(USER)}  # the engine has stopped: no fill since
        assert sorted(api_ids) == sorted(venue_ids) and len(api_ids) == len(set(api_ids))
        assert set(journal_fill_ids(path)) == venue_ids
        swept_fills = {e.fill.trade_id for e in rig.venue.fills_of(USER) if e.order.order_id in swept}
        assert swept_fills and swept_fills <= set(journal_fill_ids(path))
        with Journal(path) as j:
            pos, cash, fee = j.positions()[SYM]
            assert pos == rig.base_lots() - base0
            assert cash - fee == sum(rig.call(lambda: rig.venue.balances(USER))["USDT"]) - quote0
            assert not [o for o in j.open_orders() if rig.call(lambda c=o.client_order_id: rig.venue.order(
                USER, SYM, client_order_id=c)) is not None and o.state is OrderState.PENDING_NEW]


def test_after_a_kill_the_venue_accepts_no_order(tmp_path):
    with served(seed=32) as rig:
        base0 = rig.base_lots()
        path = tmp_path / "j.sqlite"
        burst = Burst()
        eng = Engine(burst, rig.config(journal_path=str(path))).start()
        try:
            wait_for(lambda: eng.counters["fills"] >= 20, 60, "fills")
            assert eng.kill("test") is True  # mid-burst: orders in flight
            t_done = time.time_ns()
            (k,) = journal_rows(path, "risk_events", "rule = 'kill'")
            t_kill = k["ts_ns"]
            tries = burst.attempts
            wait_for(lambda: burst.attempts >= tries + 40, 10, "the strategy asking after the kill")
            time.sleep(0.2)
            after_kill = rig.venue.accepted_of(USER, t_kill)
            # after the kill applied: only orders already in flight, and the guard's flatten
            for t, v in after_kill:
                o = eng.orders.get(v.client_order_id)
                assert o is not None and (o.created_ns < t_kill or o.tag == "guard"), (v, o)
                assert v.type is OrderType.MARKET or rig.call(
                    lambda v=v: rig.venue.order(USER, SYM, order_id=v.order_id).status.is_open) is False
            # after the kill is confirmed: nothing at all, whatever the strategy asked
            assert rig.venue.accepted_of(USER, t_done) == []
            assert rig.open_orders() == [] and rig.base_lots() == base0
            assert eng.counters["orders_refused"] >= 40 and eng.snapshot().guard_state == "HALTED"
            assert any("kill" in h for h in eng.snapshot().halts)
        finally:
            stop_all(eng)
        assert LOT == 100
