"""The served venue's latency model (order entry, response, feed; order kept under sampled draws) and venue time:
a request reaches a replay at the recording's time, not at the wall clock's."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import websockets

from tests.venue.test_server import USER, call, make_engine, order_params, run, signed
from workbench.enums import ASK, BID, F_BATCH_END, K_DEPTH, K_SNAPSHOT
from workbench.instrument import Instrument
from workbench.types import empty_events
from workbench.venue.api import OrderRequest, OrderType, SymbolSpec
from workbench.venue.keys import new_api_key
from workbench.venue.latency import ConstantLatency, LatencyModel, SampledLatency
from workbench.venue.replay import ReplayVenue
from workbench.venue.server import ServerConfig, VenueClock, VenueServer

MS = 1_000_000


def test_order_entry_and_response_latency_delay_the_round_trip():
    async def scenario():
        key = new_api_key(USER)
        lat = LatencyModel.constant(feed_ns=0, order_entry_ns=30 * MS, response_ns=40 * MS)
        async with VenueServer(make_engine(), [key], latency=lat) as srv:
            async with websockets.connect(srv.urls["ws_api"]) as ws:
                sent_ms = time.time() * 1000
                t0 = time.perf_counter()
                r = await call(ws, 1, "order.place", signed(key, order_params()))
                rtt = time.perf_counter() - t0
                assert r["result"]["status"] == "NEW"
                assert 0.070 <= rtt < 0.5
                # transactTime is when the order reached the engine: one order-entry leg after it was sent
                assert r["result"]["transactTime"] >= sent_ms + 29

    run(scenario())


def test_speed_divides_the_latency_on_the_wall():
    async def scenario():
        key = new_api_key(USER)
        lat = LatencyModel.constant(feed_ns=0, order_entry_ns=400 * MS, response_ns=0)
        async with VenueServer(make_engine(), [key], latency=lat, clock=VenueClock(speed=10.0)) as srv:
            async with websockets.connect(srv.urls["ws_api"]) as ws:
                t0 = time.perf_counter()
                await call(ws, 1, "ping")
                rtt = time.perf_counter() - t0
                assert 0.040 <= rtt < 0.3  # 400 ms of venue time at 10x: 40 ms on the wall

    run(scenario())


def test_sampled_latency_never_reorders_a_connection():
    async def scenario():
        key = new_api_key(USER)
        # half the requests take 60 ms, half 1 ms: without the delay line, fast ones would overtake slow ones
        legs = SampledLatency(np.array([60 * MS, 1 * MS]), seed=3)
        lat = LatencyModel(feed=ConstantLatency(0), order_entry=legs, response=SampledLatency(np.array([0, 30 * MS]), 4))
        async with VenueServer(make_engine(), [key], latency=lat) as srv:
            async with websockets.connect(srv.urls["ws_api"]) as ws:
                for i in range(40):
                    await ws.send(json.dumps({"id": i, "method": "ping"}))
                ids = [json.loads(await asyncio.wait_for(ws.recv(), 5))["id"] for _ in range(40)]
                assert ids == list(range(40))

    run(scenario())


def test_feed_latency_delays_market_data_after_its_event_time():
    async def scenario():
        eng = make_engine()
        lat = LatencyModel.constant(feed_ns=50 * MS, order_entry_ns=0)
        async with VenueServer(eng, [new_api_key(USER)], latency=lat,
                               config=ServerConfig(depth_every_batch=True)) as srv:
            async with websockets.connect(srv.urls["stream"] + "/ws/btcusdt@depth@100ms") as st:
                await asyncio.sleep(0.05)
                ages = []
                for i in range(5):
                    eng.place(OrderRequest(0, "BTCUSDT", 1, OrderType.LIMIT, 1000, 5_999_000 - i), time.time_ns())
                    srv._poll_dispatch()
                    m = json.loads(await asyncio.wait_for(st.recv(), 5))
                    ages.append(time.time() * 1000 - m["E"])
                assert min(ages) >= 49, ages  # E: when the venue rendered it; received one feed leg later

    run(scenario())


T0 = 1_700_000_000_000_000_000  # the recording's clock: 2023, far from the wall's


def _recording(seconds: int) -> np.ndarray:
    """A snapshot, then one bid change every 100 ms for ``seconds``."""
    n = seconds * 10
    ev = empty_events(4 + n)
    ev["ts_exch_ns"] = ev["ts_local_ns"] = T0
    ev["kind"][:4] = K_SNAPSHOT
    ev["side"][:4] = [BID, BID, ASK, ASK]
    ev["px_ticks"][:4] = [100, 99, 102, 103]
    ev["qty_lots"][:4] = 10
    ev["id"][:4] = 1
    ev["flags"][3] = F_BATCH_END
    d = ev[4:]
    d["ts_exch_ns"] = d["ts_local_ns"] = T0 + (np.arange(n) + 1) * 100 * MS
    d["kind"], d["side"], d["px_ticks"], d["flags"] = K_DEPTH, BID, 98, F_BATCH_END
    d["qty_lots"] = np.arange(n) % 7 + 1
    d["id"] = d["first_id"] = np.arange(n) + 2
    d["prev_id"] = d["id"] - 1
    return ev


def test_a_served_replay_takes_orders_at_the_recordings_time():
    async def scenario():
        ins = Instrument("TEST", "0.01", "1")
        venue = ReplayVenue([_recording(600)], SymbolSpec(ins, "BASE", "QUOTE"),
                            accounts={USER: {"BASE": 1000, "QUOTE": 10**9}})
        key = new_api_key(USER)
        async with VenueServer(venue, [key], clock=VenueClock(start_ns=T0, speed=1.0)) as srv:
            async with websockets.connect(srv.urls["ws_api"]) as ws:
                r = await call(ws, 1, "order.place", signed(key, order_params(symbol="TEST", price="0.97",
                                                                              quantity="1")))
                assert r["result"]["status"] == "NEW"
        # the order reached the replay a moment after it started, not at today's date (the end of the recording)
        assert T0 <= venue.now_ns < T0 + 10_000 * MS
        assert not venue.exhausted

    run(scenario())
