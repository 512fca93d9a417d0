"""Snapshots for the views: the telemetry parts against plain references, the JSON round trip of the control plane,
and a running engine's snapshot carrying what the dashboard draws (book levels, trades, fills, own orders, P&L
split, breakers, parameters, latencies, feed health, alerts)."""

from __future__ import annotations

import orjson
import numpy as np
from hypothesis import given, settings, strategies as st

from tests.live.test_engine import config, served_venue, wait_for
from workbench.live.engine import Engine
from workbench.live.snapshot import LATENCY_EDGES_US, LatencyRing, Snapshot, Telemetry
from workbench.strategy import MarketMaker


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=300), st.integers(1, 64))
def test_latency_ring_keeps_the_last_n_samples(samples_ns, n):
    ring = LatencyRing(n)
    for x in samples_ns:
        ring.add(x)
    s = ring.summary()
    last = np.asarray(samples_ns[-n:]) / 1e3
    assert s["n"] == len(samples_ns) and sum(s["counts"]) == len(last)
    assert s["p50_us"] == round(float(np.percentile(last, 50)), 1)
    edges = LATENCY_EDGES_US
    want = [sum(1 for v in last if edges[i] <= v and (i + 1 == len(edges) or v < edges[i + 1]))
            for i in range(len(edges))]
    assert s["counts"] == want


def test_a_summary_is_computed_again_only_when_samples_arrived():
    ring = LatencyRing(8)
    ring.add(1000)
    s1 = ring.summary()
    assert ring.summary() is s1
    ring.add(3000)
    assert ring.summary()["n"] == 2


def test_an_empty_ring_says_so():
    assert LatencyRing().summary() == {"p50_us": None, "p99_us": None, "n": 0, "counts": [0] * len(LATENCY_EDGES_US)}


def test_telemetry_numbers_trades_and_fills_once_and_keeps_alerts_short():
    tel = Telemetry(n_trades=3, n_alerts=2)
    for i in range(5):
        tel.on_trade(i, "X", 100 + i, 1, 1)
    tel.on_fill(9, "X", -1, 104, 2, 0.5, True)
    assert [t[0] for t in tel.trades] == [3, 4, 5] and tel.fills[0][0] == 6
    tel.alert(1, "a")
    tel.alert(2, "a")  # the same text again is not a new alert
    tel.alert(3, "b")
    tel.alert(4, "c")
    assert [a[1] for a in tel.alerts] == ["b", "c"]


def test_feed_health_gives_the_rate_between_snapshots():
    tel = Telemetry()
    tel.feed_health(1_000_000_000, {})
    for i in range(50):
        tel.on_book(1_000_000_000 + i, "X")
    h = tel.feed_health(1_500_000_000, {"feed_gap": 2, "feed_resync": 1})
    assert h["book_updates_per_s"] == 0.0  # under a second: no rate yet (snapshots come faster than some feeds)
    h = tel.feed_health(2_000_000_000, {"feed_gap": 2, "feed_resync": 1})
    assert h["book_updates_per_s"] == 50.0 and h["gaps"] == 2 and h["resyncs"] == 1
    assert h["age_ms"]["X"] == round((2_000_000_000 - 1_000_000_049) / 1e6, 1)


def test_a_running_engines_snapshot_carries_what_the_dashboard_draws():
    with served_venue() as (venue, urls, key):
        mm = MarketMaker(half_spread_ticks=0, order_qty=0.001, max_position=3, decide_every_ms=50)
        eng = Engine(mm, config(urls, key, snapshot_hz=20, snapshot_levels=5)).start()
        try:
            wait_for(lambda: eng.counters["fills"] >= 2 and eng.snapshot().trades, 60, "fills and trades")
            wait_for(lambda: eng.snapshot().latency["order_ack"]["n"] > 0, 10, "an acknowledged order")
            s = eng.snapshot()
            book = s.books["BTCUSDT"]
            assert 0 < len(book["bids"]) <= 5 and 0 < len(book["asks"]) <= 5
            assert book["bids"][0][0] < book["asks"][0][0] and book["bids"][0][0] == s.tops["BTCUSDT"][0]
            assert all(a[0] > b[0] for a, b in zip(book["bids"], book["bids"][1:]))  # best first
            assert s.fills and all(f[2] == "BTCUSDT" and f[3] in (1, -1) and f[5] > 0 for f in s.fills)
            assert s.strategy == "MarketMaker" and s.params["half_spread_ticks"] == 0
            assert s.instruments["BTCUSDT"] == [eng.instruments["BTCUSDT"].tick_size,
                                                eng.instruments["BTCUSDT"].lot_size]
            assert abs(s.realised + s.unrealised - s.equity_change) < 1e-9
            assert s.drawdown >= 0 and s.peak_equity >= s.equity_change
            assert s.breakers["kill"] == [0.0, 1.0, False] and "stale" in s.breakers
            assert s.latency["order_ack"]["p50_us"] > 0
            assert s.feed["book_updates"] > 0 and "BTCUSDT" in s.feed["age_ms"]
            # the control plane's JSON brings the same snapshot back
            back = Snapshot.from_dict(orjson.loads(orjson.dumps(s.to_dict(), option=orjson.OPT_NON_STR_KEYS)))
            assert back.books == s.books and back.params == s.params and back.fills == s.fills
            eng.kill("test")
            wait_for(lambda: any("venue confirms" in a[1] for a in eng.snapshot().alerts), 10, "the kill alert")
            assert any("kill" in a[1] for a in eng.snapshot().alerts)
        finally:
            eng.stop()
