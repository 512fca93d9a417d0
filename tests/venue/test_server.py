"""The venue server over loopback: every surface, bad input answered as Binance does, faults, slow clients.

Each test starts its own server on 127.0.0.1 and a free port, and stops it; loops are bounded by timeouts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from workbench.book.sync import BookSync, Diff
from workbench.instrument import Instrument
from workbench.venue.api import OrderRequest, OrderType, SymbolSpec
from workbench.venue.keys import new_api_key
from workbench.venue.matching import MatchingEngine
from workbench.venue.protocol import ProtocolConfig
from workbench.venue.server import ServerConfig, VenueServer

INS = Instrument("BTCUSDT", "0.01", "0.00001")
SPEC = SymbolSpec(INS, "BTC", "USDT")
MARKET = 0  # the engine's own liquidity account
USER = 1
TAKER = 2  # another market account, so its orders do not trade against MARKET's (self-trade prevention)
TIMEOUT = 5.0


def make_engine() -> MatchingEngine:
    eng = MatchingEngine([SPEC], balances={USER: {"BTC": 10**8, "USDT": 10**17}}, unlimited=[MARKET, TAKER])
    now = time.time_ns()
    for i in range(10):
        eng.place(OrderRequest(MARKET, "BTCUSDT", 1, OrderType.LIMIT, 100_000, 6_000_000 - i), now)
        eng.place(OrderRequest(MARKET, "BTCUSDT", -1, OrderType.LIMIT, 100_000, 6_000_001 + i), now)
    eng.poll()
    return eng


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def signed(key, params: dict) -> dict:
    p = dict(params, apiKey=key.key, timestamp=int(time.time() * 1000))
    q = "&".join(f"{k}={p[k]}" for k in sorted(p))
    p["signature"] = hmac.new(key.secret.encode(), q.encode(), hashlib.sha256).hexdigest()
    return p


async def call(ws, rid, method, params=None):
    msg = {"id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    await ws.send(json.dumps(msg))
    while True:
        r = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if r.get("id") == rid:
            return r


async def http_get(url: str) -> tuple[int, dict]:
    def get():
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body)
            except ValueError:
                return e.code, body.decode()

    return await asyncio.get_running_loop().run_in_executor(None, get)


def order_params(**kw):
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": "59990.00",
            "quantity": "0.01"}
    base.update(kw)
    return base


def test_rest_surface():
    async def scenario():
        async with VenueServer(make_engine(), [new_api_key(USER)]) as srv:
            rest = srv.urls["rest"]
            assert await http_get(rest + "/api/v3/ping") == (200, {})
            st, t = await http_get(rest + "/api/v3/time")
            assert st == 200 and abs(t["serverTime"] - time.time() * 1000) < 5000
            st, info = await http_get(rest + "/api/v3/exchangeInfo")
            sym = info["symbols"][0]
            assert sym["symbol"] == "BTCUSDT" and {f["filterType"] for f in sym["filters"]} >= {"PRICE_FILTER", "LOT_SIZE"}
            st, depth = await http_get(rest + "/api/v3/depth?symbol=BTCUSDT&limit=5")
            assert st == 200 and depth["bids"][0] == ["60000.00000000", "1.00000000"] and len(depth["asks"]) == 5
            assert (await http_get(rest + "/api/v3/depth?symbol=NOPE"))[1]["code"] == -1121
            assert (await http_get(rest + "/api/v3/nothing"))[0] == 404

    run(scenario())


def test_bad_input_is_answered_like_binance_and_the_connection_keeps_working():
    async def scenario():
        key = new_api_key(USER)
        async with VenueServer(make_engine(), [key]) as srv:
            async with websockets.connect(srv.urls["ws_api"]) as ws, websockets.connect(srv.urls["ws_api"]) as other:
                await ws.send("{not json")
                r = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                assert r["id"] is None and r["status"] == 400 and r["error"]["code"] == -1135
                assert (await call(ws, 1, "no.such.method"))["status"] == 400
                r = await call(ws, 2, "order.place", signed(key, {"side": "BUY", "type": "LIMIT"}))
                assert r["error"]["code"] == -1102 and "symbol" in r["error"]["msg"]
                p = signed(key, order_params())
                p["signature"] = "0" * 64
                assert (await call(ws, 3, "order.place", p))["error"]["code"] == -1022
                p = order_params(apiKey=key.key, timestamp=int(time.time() * 1000) - 60_000)
                q = "&".join(f"{k}={p[k]}" for k in sorted(p))
                p["signature"] = hmac.new(key.secret.encode(), q.encode(), hashlib.sha256).hexdigest()
                assert (await call(ws, 4, "order.place", p))["error"]["code"] == -1021
                r = await call(ws, 5, "order.place", signed(key, order_params(price="59990.001")))
                assert r["error"]["code"] == -1013 and "PRICE_FILTER" in r["error"]["msg"]
                # still usable, and so is everybody else
                assert (await call(ws, 6, "ping"))["status"] == 200
                assert (await call(other, 7, "time"))["status"] == 200
                r = await call(ws, 8, "order.place", signed(key, order_params()))
                assert r["status"] == 200 and r["result"]["status"] == "NEW"

    run(scenario())


def test_order_flood_is_refused_with_429():
    async def scenario():
        key = new_api_key(USER)
        async with VenueServer(make_engine(), [key], protocol_config=ProtocolConfig(orders_per_10s=5)) as srv:
            async with websockets.connect(srv.urls["ws_api"]) as ws:
                codes = []
                for i in range(8):
                    r = await call(ws, i, "order.place", signed(key, order_params(price=f"5990{i}.00")))
                    codes.append((r["status"], r.get("error", {}).get("code")))
                assert codes[:5] == [(200, None)] * 5
                assert all(c == (429, -1015) for c in codes[5:])
                assert (await call(ws, 99, "ping"))["status"] == 200

    run(scenario())


def test_oversize_frame_closes_that_client_only():
    async def scenario():
        cfg = ServerConfig(max_frame_bytes=4096)
        async with VenueServer(make_engine(), [new_api_key(USER)], config=cfg) as srv:
            async with websockets.connect(srv.urls["ws_api"]) as big, websockets.connect(srv.urls["ws_api"]) as ok:
                await big.send(json.dumps({"id": 1, "method": "ping", "params": {"x": "a" * 10_000}}))
                with pytest.raises(ConnectionClosed) as exc:
                    await asyncio.wait_for(big.recv(), TIMEOUT)
                assert exc.value.rcvd is not None and exc.value.rcvd.code == 1009
                assert (await call(ok, 2, "ping"))["status"] == 200

    run(scenario())


def test_a_client_that_never_reads_is_disconnected_and_nobody_else_slows_down():
    async def scenario():
        eng = make_engine()
        cfg = ServerConfig(outbox_frames=500, depth_every_batch=True)
        async with VenueServer(eng, [new_api_key(USER)], config=cfg) as srv:
            url = srv.urls["stream"] + "/ws/btcusdt@depth@100ms"
            async with websockets.connect(url, max_queue=1) as lazy, websockets.connect(url) as reader:
                await asyncio.sleep(0.05)
                n = 60_000  # more than the socket buffers of the lazy client can swallow
                received = 0

                async def read_all():
                    nonlocal received
                    while received < n:
                        await asyncio.wait_for(reader.recv(), TIMEOUT)
                        received += 1

                task = asyncio.create_task(read_all())
                for i in range(n):  # book changes made by code, dispatched by the market task
                    eng.place(OrderRequest(MARKET, "BTCUSDT", 1, OrderType.LIMIT, 1 + i % 7, 5_990_000 - i % 500),
                              time.time_ns())
                    if i % 200 == 199:  # paced by the reading client, never by the one that does not read
                        deadline = time.monotonic() + TIMEOUT
                        while received < i - 50 and time.monotonic() < deadline:
                            await asyncio.sleep(0.001)
                await asyncio.wait_for(task, 30)
                assert received == n  # every change reached the reading client, one message each
                with pytest.raises(ConnectionClosed):
                    for _ in range(n):  # what the lazy client had buffered, then the cut
                        await asyncio.wait_for(lazy.recv(), TIMEOUT)

    run(scenario())


def test_user_data_reports_every_step_and_faults():
    async def scenario():
        eng = make_engine()
        key = new_api_key(USER)
        async with VenueServer(eng, [key]) as srv:
            async with websockets.connect(srv.urls["ws_api"]) as ws:
                r = await call(ws, 1, "userDataStream.subscribe.signature", signed(key, {}))
                sub = r["result"]["subscriptionId"]
                events: list[dict] = []

                async def read_events(n):
                    while len([e for e in events if e.get("e") == "executionReport"]) < n:
                        m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                        if m.get("subscriptionId") == sub:
                            events.append(m["event"])

                r = await call(ws, 2, "order.place", signed(key, order_params(price="60000.00", quantity="2",
                                                                           newClientOrderId="mine")))
                assert r["result"]["status"] == "NEW"
                await read_events(1)
                # the market sells 1.5 BTC: 1 against the bid ahead of ours, 0.5 against ours; we cancel the rest
                eng.place(OrderRequest(TAKER, "BTCUSDT", -1, OrderType.MARKET, 150_000), time.time_ns())
                await read_events(2)
                st = await call(ws, 3, "openOrders.status", signed(key, {"symbol": "BTCUSDT"}))
                assert [o["clientOrderId"] for o in st["result"]] == ["mine"]
                assert st["result"][0]["status"] == "PARTIALLY_FILLED"
                await call(ws, 4, "order.cancel", signed(key, {"symbol": "BTCUSDT", "origClientOrderId": "mine"}))
                await read_events(3)
                reports = [(e["x"], e["X"]) for e in events if e.get("e") == "executionReport"]
                assert reports == [("NEW", "NEW"), ("TRADE", "PARTIALLY_FILLED"), ("CANCELED", "CANCELED")]

                # faults: an error answer, then "execution status unknown" for an order that was placed
                srv.protocol.faults.fail("order.place", -2010, "Account has insufficient balance for requested action.")
                r = await call(ws, 5, "order.place", signed(key, order_params(newClientOrderId="x1")))
                assert r["error"]["code"] == -2010
                srv.protocol.faults.unknown_status("order.place")
                r = await call(ws, 6, "order.place", signed(key, order_params(newClientOrderId="x2")))
                assert r["status"] >= 500
                st = await call(ws, 7, "order.status", signed(key, {"symbol": "BTCUSDT", "origClientOrderId": "x2"}))
                assert st["result"]["status"] == "NEW"  # it was placed after all: the client must reconcile
                assert srv.send_server_shutdown() == 1
                while True:
                    m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                    if m.get("event", {}).get("e") == "serverShutdown":
                        break
                assert srv.disconnect_all() == 1
                with pytest.raises(ConnectionClosed):
                    for _ in range(100):
                        await asyncio.wait_for(ws.recv(), TIMEOUT)

    run(scenario())


def test_a_client_keeps_its_book_in_sync_and_sees_an_injected_gap():
    async def scenario():
        eng = make_engine()
        async with VenueServer(eng, [new_api_key(USER)]) as srv:
            async with websockets.connect(srv.urls["stream"] + "/ws/btcusdt@depth@100ms") as st:
                sync = BookSync()
                book: dict[tuple[int, str], str] = {}

                def apply(levels_b, levels_a):
                    for side, levels in ((1, levels_b), (-1, levels_a)):
                        for p, q in levels:
                            if float(q) == 0:
                                book.pop((side, p), None)
                            else:
                                book[(side, p)] = q

                async def changes(k):
                    for i in range(k):
                        eng.place(OrderRequest(MARKET, "BTCUSDT", 1 if i % 2 else -1, OrderType.LIMIT, 1 + i,
                                               5_999_000 - i if i % 2 else 6_001_000 + i), time.time_ns())
                        await asyncio.sleep(0.01)

                async def consume(until_id):
                    while sync.last_id < until_id:
                        m = json.loads(await asyncio.wait_for(st.recv(), TIMEOUT))
                        for d in sync.on_diff(Diff(m["U"], m["u"], m["U"] - 1, m)):
                            apply(d.payload["b"], d.payload["a"])

                await changes(5)
                _, snap = await http_get(srv.urls["rest"] + "/api/v3/depth?symbol=BTCUSDT&limit=5000")
                ok, buffered = sync.on_snapshot(snap["lastUpdateId"])
                assert ok
                apply(snap["bids"], snap["asks"])
                for d in buffered:
                    apply(d.payload["b"], d.payload["a"])
                await changes(10)
                await consume(eng.depth("BTCUSDT", 1).last_update_id)
                want = eng.depth("BTCUSDT", 5000)
                mine = sorted((s, p, q) for (s, p), q in book.items())
                assert len(mine) == len(want.bids) + len(want.asks) and sync.in_sync
                # drop the next depth event: the client sees the gap at the one after it
                srv.faults.drop_depth = 1
                await changes(3)
                await asyncio.sleep(0.25)
                await changes(3)
                deadline = time.monotonic() + TIMEOUT
                while sync.in_sync and time.monotonic() < deadline:
                    m = json.loads(await asyncio.wait_for(st.recv(), TIMEOUT))
                    sync.on_diff(Diff(m["U"], m["u"], m["U"] - 1, m))
                assert not sync.in_sync and sync.stats["gaps"] == 1
                # a stale snapshot: older than the buffered diffs, the client must fetch again
                srv.faults.stale_snapshot = 1
                _, stale = await http_get(srv.urls["rest"] + "/api/v3/depth?symbol=BTCUSDT&limit=5000")
                assert stale["lastUpdateId"] == snap["lastUpdateId"]
                _, fresh = await http_get(srv.urls["rest"] + "/api/v3/depth?symbol=BTCUSDT&limit=5000")
                assert fresh["lastUpdateId"] > stale["lastUpdateId"]

    run(scenario())
