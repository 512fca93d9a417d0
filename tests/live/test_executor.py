"""The executor against the simulated venue over loopback: orders placed, acknowledged, filled, cancelled with the
state machine of the backtests; and each fault: a refused order (-2010), a timestamp outside the window (-1021),
an order flood (-1015 / 429), an unknown execution status reconciled, a disconnect reconciled, serverShutdown.
Each test that talks to the venue runs on both transports (picows and the websockets fallback)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
import pytest

from tests.venue.test_server import INS, TAKER, USER, make_engine
from workbench.live.executor import Credentials, Executor, ExecutorConfig
from workbench.strategy.orders import OrderBook, OrderState
from workbench.venue.api import OrderRequest, OrderType, TimeInForce
from workbench.venue.keys import new_api_key
from workbench.venue.protocol import ProtocolConfig
from workbench.venue.server import VenueServer

S = OrderState


@pytest.fixture(params=["picows", "websockets"])
def transport(request):
    """The executor's websocket client: the fast one and the fallback."""
    if request.param == "picows":
        pytest.importorskip("picows")
    return request.param


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def until(pred, timeout=10.0, what=""):
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Rig:
    def __init__(self, eng, server, key, clock=time.time_ns, transport="auto", **xcfg):
        self.eng, self.server = eng, server
        self.book = OrderBook("t")
        self.fills, self.status = [], []
        xcfg = {"ws_api_url": server.urls["ws_api"], "reconnect_min_s": 0.05, "transport": transport, **xcfg}
        self.ex = Executor(ExecutorConfig(**xcfg),
                           Credentials(key.key, key.secret), {"BTCUSDT": INS}, self.book,
                           on_fill=lambda o, *f: self.fills.append((o.client_order_id, *f)),
                           on_status=lambda what, detail: self.status.append(what), clock=clock)
        assert self.ex.transport == transport or transport == "auto"
        self.task = asyncio.create_task(self.ex.run())

    def order(self, side=1, qty=100_000, px=6_000_000, type=OrderType.LIMIT):
        return self.book.submit("BTCUSDT", side, type, qty, px, TimeInForce.GTC, time.time_ns())

    async def close(self):
        await self.ex.stop()
        await asyncio.wait_for(self.task, 10)
        assert self.ex.connection is None and not self.ex._pending
        for _ in range(3):  # the tasks it started (orders' answers, status queries) end with it
            await asyncio.sleep(0)
        assert _executor_tasks() == []


def _executor_tasks() -> list[asyncio.Task]:
    """The unfinished tasks running the executor's code."""
    import workbench.live.executor as mod

    return [t for t in asyncio.all_tasks() if not t.done() and t is not asyncio.current_task()
            and t.get_coro().cr_code.co_filename == mod.__file__]


@contextlib.asynccontextmanager
async def rig(clock=time.time_ns, transport="auto", xcfg=None, key=None, **pcfg):
    """A venue on a free port and a connected executor (on ``transport``, with ExecutorConfig's ``xcfg``, the API
    ``key``: default a new one) for the body; both stopped after it."""
    eng = make_engine()
    key = key or new_api_key(USER)
    server = VenueServer(eng, [key], protocol_config=ProtocolConfig(**pcfg) if pcfg else None)
    await server.start()
    try:
        r = Rig(eng, server, key, clock, transport, **(xcfg or {}))
        try:
            await asyncio.wait_for(r.ex.ready.wait(), 10)
            yield r
        finally:
            await r.close()
    finally:
        await server.stop()


def test_place_fill_cancel_through_the_state_machine(transport):
    async def scenario():
        async with rig(transport=transport) as r:
            o = r.order(px=6_000_000, qty=200_000)  # joins the bid of 1 BTC at 60000.00
            await r.ex.place(o)
            assert o.state is S.NEW and o.order_id > 0
            # the market sells 1.5 BTC: 1 against the bid ahead, 0.5 against ours
            r.eng.place(OrderRequest(TAKER, "BTCUSDT", -1, OrderType.MARKET, 150_000), time.time_ns())
            r.server._poll_dispatch()
            await until(lambda: o.filled_lots == 50_000, what="the partial fill")
            assert o.state is S.PARTIALLY_FILLED and r.fills[0][1:3] == (6_000_000, 50_000)
            assert r.fills[0][3] > 0  # commission charged (quote units)
            await r.ex.cancel(o.client_order_id)
            await until(lambda: o.state is S.CANCELED, what="the cancel")
            assert r.ex.rate_usage and all(c <= lim for c, lim in r.ex.rate_usage.values())
            assert "secret" not in repr(r.ex) and r.ex._cred.api_secret not in repr(r.ex)

    run(scenario())


def test_refusals_are_rejections_with_binances_message(transport):
    async def scenario():
        async with rig(transport=transport) as r:
            bad = r.order(px=10**14)  # beyond the PRICE_FILTER maximum
            await r.ex.place(bad)
            assert bad.state is S.REJECTED and bad.reason.startswith("-1013")
            r.server.protocol.faults.fail("order.place", -2010, "Account has insufficient balance for requested action.")
            o = r.order()
            await r.ex.place(o)
            assert o.state is S.REJECTED and "insufficient balance" in o.reason

    run(scenario())


def test_a_clock_outside_recv_window_is_reported_and_retried_not_taken_for_a_bad_key(transport):
    """-1021 on the subscription is the clock, which the engine can correct (see test_engine_faults): reported as
    "clock" and retried with backoff; a refused key is not retried (the test below)."""
    async def scenario():
        eng = make_engine()
        key = new_api_key(USER)
        async with VenueServer(eng, [key]) as server:
            status = []
            ex = Executor(ExecutorConfig(ws_api_url=server.urls["ws_api"], max_reconnects=2, reconnect_min_s=0.01,
                                         transport=transport),
                          Credentials(key.key, key.secret), {"BTCUSDT": INS}, OrderBook("t"),
                          on_status=lambda what, detail: status.append((what, detail)),
                          clock=lambda: time.time_ns() - 30 * 1_000_000_000)  # 30 s behind
            await asyncio.wait_for(ex.run(), 10)  # returns after max_reconnects
            clock = [d for w, d in status if w == "clock"]
            assert len(clock) == 3 and all("-1021" in d for d in clock)
            assert ex.stats["refused"] == 0 and not ex.ready.is_set()

    run(scenario())


def test_a_refused_key_is_not_retried(transport):
    async def scenario():
        eng = make_engine()
        key = new_api_key(USER)
        async with VenueServer(eng, [key]) as server:
            status = []
            ex = Executor(ExecutorConfig(ws_api_url=server.urls["ws_api"], reconnect_min_s=0.01, transport=transport),
                          Credentials(key.key, "not-the-secret"), {"BTCUSDT": INS}, OrderBook("t"),
                          on_status=lambda what, detail: status.append((what, detail)))
            await asyncio.wait_for(ex.run(), 10)  # returns at once: retrying a bad key would not help
            assert ex.stats["refused"] == 1 and [w for w, _ in status] == ["refused"] and not ex.ready.is_set()

    run(scenario())


def test_an_order_flood_is_refused_with_429(transport):
    async def scenario():
        async with rig(transport=transport, orders_per_10s=3) as r:
            orders = [r.order(px=5_990_000 - i) for i in range(5)]
            for o in orders:
                await r.ex.place(o)
            assert [o.state for o in orders].count(S.NEW) == 3
            refused = [o for o in orders if o.state is S.REJECTED]
            assert len(refused) == 2 and all(o.reason.startswith("-1015") for o in refused)

    run(scenario())


def test_order_counts_are_known_on_connect_and_count_orders_in_flight(transport):
    """rate_usage's ORDERS counts: read on connect (account.rateLimits.orders), each order counted as it is
    written, and each answer's count (the venue's, as of that order) plus the orders still in flight."""
    async def scenario():
        async with rig(transport=transport, orders_per_10s=50) as r:
            name = "ORDERS:10SECOND"
            assert r.ex.rate_usage[name] == (0, 50)  # before any order
            orders = [r.order(px=5_990_000 - i) for i in range(5)]
            for o in orders:
                r.ex.submit(o)  # written now, answers later
            assert r.ex.rate_usage[name] == (5, 50)  # counted at once, none answered yet
            await until(lambda: all(o.state is S.NEW for o in orders), what="the answers")
            assert r.ex.rate_usage[name] == (5, 50) and not r.ex._places  # the venue's own count now
            await r.ex.place(r.order(px=5_980_000))
            assert r.ex.rate_usage[name] == (6, 50)

    run(scenario())


def test_order_counts_start_afresh_when_their_window_ends():
    """A count read in one window is not carried into the next (Binance's windows are fixed, aligned to their
    interval); what is in flight counts in the new one. Sans-I/O: the executor is not connected."""
    now = [1_700_000_003_000_000_000]  # 3 s into a 10 s window
    ex = Executor(ExecutorConfig(ws_api_url="ws://127.0.0.1:9"), Credentials("k", "s"), {"BTCUSDT": INS},
                  OrderBook("t"), clock=lambda: now[0])
    ex._rate_limits([{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 20, "count": 18},
                     {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000,
                      "count": 44}])
    ex._count_order(7)  # one more written, not answered
    assert ex.rate_usage == {"ORDERS:10SECOND": (19, 20), "REQUEST_WEIGHT:1MINUTE": (44, 6000)}
    now[0] += 6_900_000_000  # still the same window
    ex.roll_rate_windows()
    assert ex.rate_usage["ORDERS:10SECOND"] == (19, 20)
    now[0] += 200_000_000  # the next window
    ex.roll_rate_windows()
    assert ex.rate_usage["ORDERS:10SECOND"] == (1, 20)  # the one in flight
    ex._places.clear()
    now[0] += 10_000_000_000
    ex._count_order(8)  # the first order of a later window: counted from zero
    assert ex.rate_usage["ORDERS:10SECOND"] == (1, 20) and ex.rate_usage["REQUEST_WEIGHT:1MINUTE"] == (44, 6000)


def test_an_unknown_execution_status_is_reconciled_with_order_status(transport):
    async def scenario():
        async with rig(transport=transport) as r:
            r.server.protocol.faults.unknown_status("order.place")
            o = r.order()
            await r.ex.place(o)
            await until(lambda: r.ex.stats["status_queries"] >= 1, what="the order.status query")
            await until(lambda: o.state is S.NEW, what="reconciliation")
            assert "unknown_status" in r.status

    run(scenario())


def test_a_disconnect_then_reconnect_reconciles_what_happened_meanwhile(transport):
    async def scenario():
        async with rig(transport=transport) as r:
            o = r.order(px=6_000_000, qty=100_000)
            await r.ex.place(o)
            r.server.disconnect_all()
            # while the client is away, its order fills entirely
            r.eng.place(OrderRequest(TAKER, "BTCUSDT", -1, OrderType.MARKET, 300_000), time.time_ns())
            r.server._poll_dispatch()
            await until(lambda: r.ex.stats["reconnects"] >= 1, what="the reconnect")
            await until(lambda: o.state is S.FILLED, what="reconciliation after reconnect")
            assert o.filled_lots == 100_000

    run(scenario())


def test_server_shutdown_makes_the_client_reconnect(transport):
    async def scenario():
        async with rig(transport=transport) as r:
            assert r.server.send_server_shutdown() == 1
            await until(lambda: r.ex.stats["reconnects"] >= 1, what="reconnect after serverShutdown")
            assert "server_shutdown" in r.status
            assert r.ex.stats["disconnects"] == 0  # closed by us, cleanly: not a fault
            o = r.order()
            await r.ex.place(o)
            assert o.state is S.NEW

    run(scenario())


def test_a_dropped_connection_fails_what_is_in_flight_and_is_survived(transport):
    """The venue's end goes away without a close frame (a network drop) while a request waits for its answer: the
    request fails with ConnectionError at once (not at its timeout), nothing can be sent until the executor has
    reconnected, and it trades again after."""
    async def scenario():
        async with rig(transport=transport, xcfg={"request_timeout_s": 30.0, "reconnect_min_s": 0.5}) as r:
            o = r.order(px=5_990_000)
            await r.ex.place(o)
            proto = r.server.protocol
            orig = proto.handle_ws_api

            def swallow(session, text, *a, **kw):  # the request is read, never answered
                return [] if '"account.status"' in text else orig(session, text, *a, **kw)

            proto.handle_ws_api = swallow
            asked = asyncio.create_task(r.ex._request("account.status", {}, signed=True))
            await until(lambda: r.ex._pending, what="the request in flight")
            t0 = time.monotonic()
            for c in list(r.server._api_clients.values()):
                c.conn.transport.abort()
            with pytest.raises(ConnectionError):
                await asked
            assert time.monotonic() - t0 < 5
            await until(lambda: r.ex.connection is None, what="the connection gone")
            assert not r.ex.ready.is_set() and "disconnected" in r.status and r.ex.stats["disconnects"] == 1
            with pytest.raises(ConnectionError):
                r.ex._send_now("account.status", {}, signed=True)
            proto.handle_ws_api = orig
            await until(lambda: r.ex.ready.is_set(), what="the reconnect")
            assert r.ex.stats["reconnects"] == 1 and r.ex.connection.is_open
            o2 = r.order(px=5_980_000)
            await r.ex.place(o2)
            await r.ex.cancel(o.client_order_id)
            assert o2.state is S.NEW and o.state is S.CANCELED

    run(scenario())


def test_sending_while_closing_raises_connection_error(transport):
    async def scenario():
        async with rig(transport=transport) as r:
            conn = r.ex.connection
            closing = asyncio.ensure_future(conn.close())
            await asyncio.sleep(0)  # the close frame is out
            assert not conn.is_open
            with pytest.raises(ConnectionError):
                conn.send_text(b"{}")
            with pytest.raises(ConnectionError):
                r.ex._send_now("account.status", {}, signed=True)
            await closing
            await until(lambda: r.ex.ready.is_set() and r.ex.connection is not conn, what="the reconnect")

    run(scenario())


def test_both_transports_put_the_same_frames_on_the_wire():
    """The same session (subscription, orders placed and cancelled by every path, queries) on picows and on
    websockets: the venue reads the same text frames, byte for byte (a fixed clock makes the timestamps and so
    the signatures equal)."""
    pytest.importorskip("picows")
    t_ns, key = time.time_ns(), new_api_key(USER)

    async def session(transport):
        frames = []
        async with rig(clock=lambda: t_ns, transport=transport, xcfg={"recv_window_ms": 60_000}, key=key) as r:
            proto = r.server.protocol
            orig = proto.handle_ws_api

            def handle(session, text, *a, **kw):
                frames.append(text)
                return orig(session, text, *a, **kw)

            proto.handle_ws_api = handle
            a = r.order(px=5_990_000)
            await r.ex.place(a)
            b = r.order(side=-1, px=6_100_000, qty=50_000)
            r.ex.submit(b)  # the synchronous path (templated frames)
            await until(lambda: b.state is S.NEW, what="the submitted order")
            m = r.order(side=1, type=OrderType.MARKET, qty=10_000)
            await r.ex.place(m)
            r.ex.submit_cancel(b.client_order_id)
            await until(lambda: b.state is S.CANCELED, what="the submitted cancel")
            await r.ex.cancel(a.client_order_id)  # the general framing
            assert await r.ex.venue_open_orders("BTCUSDT") == []
            assert await r.ex.account_balances()
            assert a.state is S.CANCELED and m.state is S.FILLED
        return frames

    on_picows, on_websockets = run(session("picows")), run(session("websockets"))
    assert len(on_picows) == 7 and on_picows == on_websockets


def test_an_exception_in_a_callback_ends_run(transport):
    """A callback's exception is a bug, not a connection fault: it ends :meth:`Executor.run` (as websockets' reader
    task raising it does), on either transport, and is not taken for a disconnect and retried."""
    async def scenario():
        eng = make_engine()
        key = new_api_key(USER)
        async with VenueServer(eng, [key]) as server:
            book = OrderBook("t")

            def on_fill(o, *fill):
                raise RuntimeError("a bug in on_fill")

            ex = Executor(ExecutorConfig(ws_api_url=server.urls["ws_api"], transport=transport),
                          Credentials(key.key, key.secret), {"BTCUSDT": INS}, book, on_fill=on_fill)
            task = asyncio.create_task(ex.run())
            await asyncio.wait_for(ex.ready.wait(), 10)
            o = book.submit("BTCUSDT", 1, OrderType.LIMIT, 100_000, 6_000_000, TimeInForce.GTC, time.time_ns())
            await ex.place(o)
            eng.place(OrderRequest(TAKER, "BTCUSDT", -1, OrderType.MARKET, 300_000), time.time_ns())
            server._poll_dispatch()
            with pytest.raises(RuntimeError, match="a bug in on_fill"):
                await asyncio.wait_for(task, 10)
            assert ex.connection is None and ex.stats["disconnects"] == 0 and _executor_tasks() == []

    run(scenario())


def test_the_transport_is_checked():
    from workbench.exceptions import ConfigError

    with pytest.raises(ConfigError):
        ExecutorConfig(ws_api_url="ws://127.0.0.1:9", transport="zeromq")
    ex = Executor(ExecutorConfig(ws_api_url="ws://127.0.0.1:9", transport="websockets"), Credentials("k" * 64, "s" * 64),
                  {}, OrderBook("t"))
    assert ex.transport == "websockets" and ex.connection is None
    with pytest.raises(ConnectionError):
        ex._send_now("account.status", {}, signed=True)


def test_the_request_signature_is_the_documented_one():
    """The executor's shortcut payload (str and int values) signs exactly what signing.signature_payload signs."""
    import hashlib
    import hmac as hmac_

    from workbench.live.executor import Credentials, Executor, ExecutorConfig
    from workbench.strategy.orders import OrderBook
    from workbench.venue.signing import signature_payload, verify

    ex = Executor(ExecutorConfig(ws_api_url="ws://127.0.0.1:9"), Credentials("k" * 64, "s" * 64), {}, OrderBook("t"),
                  clock=lambda: 1_700_000_000_000_000_000)
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.00100", "price": "60000.00",
              "newClientOrderId": "t-1", "timeInForce": "GTC"}
    _, frame = ex._frame("order.place", params, True)
    p = orjson.loads(frame)["params"]
    want = hmac_.new(b"s" * 64, signature_payload(p).encode(), hashlib.sha256).hexdigest()
    assert p["signature"] == want and verify("s" * 64, p, p["signature"])
    assert p["timestamp"] == 1_700_000_000_000 and p["recvWindow"] == 5000


def test_the_keyed_hmac_states_sign_as_hmac_does():
    """The executor signs with HMAC-SHA256 as two SHA-256 states keyed once (RFC 2104 by hand): the same digest as
    the standard library's for secrets shorter than, as long as, and longer than SHA-256's 64-byte block."""
    import hashlib
    import hmac as hmac_

    from workbench.live.executor import _hmac_states

    for n in (0, 1, 32, 63, 64, 65, 200):
        secret = bytes((7 * i + 3) % 256 for i in range(n))
        for msg in (b"", b"symbol=BTCUSDT&timestamp=1", b"x" * 1000):
            inner, outer = (h.copy() for h in _hmac_states(secret))
            inner.update(msg)
            outer.update(inner.digest())
            assert outer.hexdigest() == hmac_.new(secret, msg, hashlib.sha256).hexdigest()


def test_templated_order_frames_equal_the_general_ones():
    """order.place and order.cancel are framed from templates: the same parameters and signature as _frame makes
    (every order type and side), and a client order id that would need escaping takes the general way."""
    from workbench.instrument import Instrument
    from workbench.live.executor import Credentials, Executor, ExecutorConfig
    from workbench.strategy.orders import OrderBook
    from workbench.venue.api import OrderType, TimeInForce
    from workbench.venue.signing import verify

    ins = Instrument("BTCUSDT", "0.01", "0.00001")
    ex = Executor(ExecutorConfig(ws_api_url="ws://127.0.0.1:9"), Credentials("k%" * 32, "s" * 64),
                  {"BTCUSDT": ins}, OrderBook("t"), clock=lambda: 1_700_000_000_000_000_000)
    book = OrderBook("t")
    for typ in (OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.MARKET):
        for side in (1, -1):
            for tif in (TimeInForce.GTC, TimeInForce.IOC):
                for coid in (None, 'a"b\\c%d'):
                    o = book.submit("BTCUSDT", side, typ, 123, 6_000_000, tif, 1, client_order_id=coid)
                    for _ in range(2):  # the template is made, then used
                        rid, frame = ex._place_frame(o)
                        got = orjson.loads(frame)
                        _, ref = ex._frame("order.place", ex._place_params(o), True)
                        want = orjson.loads(ref)
                        want["id"] = rid
                        assert got == want
                        assert verify("s" * 64, got["params"], got["params"]["signature"])
                        p = got["params"]  # and the order's own fields, not only the two framings agreeing
                        assert (p["type"], p["side"], p["quantity"]) == (typ.name, "BUY" if side > 0 else "SELL",
                                                                         "0.00123")
                        assert p.get("price") == (None if typ is OrderType.MARKET else "60000.00")
                        assert p.get("timeInForce") == (tif.name if typ is OrderType.LIMIT else None)
                    book.orders.pop(o.client_order_id)
    o = book.submit("BTCUSDT", 1, OrderType.LIMIT, 1, 1, TimeInForce.GTC, 1)
    rid, frame = ex._templated(("BTCUSDT", "cancel"), "order.cancel", {"symbol": "BTCUSDT"}, ("origClientOrderId",),
                               (o.client_order_id,))
    _, ref = ex._frame("order.cancel", {"symbol": "BTCUSDT", "origClientOrderId": o.client_order_id}, True)
    want = orjson.loads(ref)
    want["id"] = rid
    assert orjson.loads(frame) == want
