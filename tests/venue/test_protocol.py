"""The Binance protocol surface against a fake venue: every WebSocket API method, authentication, rate limits,
malformed input, user data events, REST, market streams, faults and number formatting."""

from __future__ import annotations

import json

import pytest

from tests.venue.fake_venue import (
    BTCUSDT,
    ETHBTC,
    ETHUSDT,
    KEYS,
    T0_MS,
    T0_NS,
    ApiClient,
    FakeVenue,
    make_protocol,
)
from workbench.exceptions import ConfigError
from workbench.instrument import Instrument
from workbench.venue import signing
from workbench.venue.api import DepthSnapshot, LevelChange, TradePrint
from workbench.venue.protocol import (
    Protocol,
    ProtocolConfig,
    StreamSession,
    book_ticker,
    combined,
    depth_levels,
    depth_update,
    format_decimal,
    parse_stream,
    server_shutdown,
    stream_session,
    trade_event,
)

MS = 1_000_000
SEC = 1_000_000_000


@pytest.fixture
def proto():
    return make_protocol()


@pytest.fixture
def maker(proto):
    return ApiClient(proto[0], "key-maker-0001")


@pytest.fixture
def taker(proto):
    return ApiClient(proto[0], "key-taker-0002")


def limit(side="SELL", price="61837.63", qty="0.01000", **kw):
    return {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC", "price": price,
            "quantity": qty, **kw}


def weight_count(resp):
    return next(r["count"] for r in resp["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT")


# -- general methods --------------------------------------------------------------------------------------------


def test_ping_time_and_response_envelope(maker):
    resp = maker.call("ping", rid="abc-1")
    assert resp == {"id": "abc-1", "status": 200, "result": {},
                    "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                    "limit": 6000, "count": 3}]}  # 2 for connecting, 1 for ping
    assert maker.ok("time") == {"serverTime": T0_MS}
    assert maker.call("ping", rid=7)["id"] == 7 and maker.call("ping", rid=None)["id"] is None
    assert maker.call("v3/ping")["status"] == 200  # method names may carry the version


def test_exchange_info_describes_symbol_filters_and_limits(maker):
    info = maker.ok("exchangeInfo", {"symbol": "BTCUSDT"})
    assert info["timezone"] == "UTC" and info["serverTime"] == T0_MS
    assert [(r["rateLimitType"], r["interval"], r["intervalNum"], r["limit"]) for r in info["rateLimits"]] == [
        ("REQUEST_WEIGHT", "MINUTE", 1, 6000), ("ORDERS", "SECOND", 10, 50), ("ORDERS", "DAY", 1, 160000),
        ("CONNECTIONS", "MINUTE", 5, 300)]
    (sym,) = info["symbols"]
    assert (sym["symbol"], sym["status"], sym["baseAsset"], sym["quoteAsset"]) == ("BTCUSDT", "TRADING", "BTC", "USDT")
    assert sym["orderTypes"] == ["LIMIT", "LIMIT_MAKER", "MARKET"] and sym["permissionSets"] == [["SPOT"]]
    filters = {f["filterType"]: f for f in sym["filters"]}
    assert filters["PRICE_FILTER"] == {"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
                                       "maxPrice": "1000000.00000000", "tickSize": "0.01000000"}
    assert filters["LOT_SIZE"] == {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
                                   "stepSize": "0.00001000"}
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
    assert maker.call("exchangeInfo", {"symbol": "NOPE"})["error"] == {"code": -1121, "msg": "Invalid symbol."}
    assert len(maker.ok("exchangeInfo", {"symbols": ["BTCUSDT"]})["symbols"]) == 1


def test_depth_and_its_weight(proto, maker):
    p, venue = proto
    maker.ok("order.place", limit("SELL", "61900.00", "0.50000"), signed=True)
    maker.ok("order.place", limit("BUY", "61800.00", "0.25000"), signed=True)
    resp = maker.call("depth", {"symbol": "BTCUSDT", "limit": 5})
    assert resp["result"] == {"lastUpdateId": venue.depth("BTCUSDT", 5).last_update_id,
                              "bids": [["61800.00000000", "0.25000000"]], "asks": [["61900.00000000", "0.50000000"]]}
    before = weight_count(resp)
    assert weight_count(maker.call("depth", {"symbol": "BTCUSDT", "limit": 1000})) == before + 50
    assert weight_count(maker.call("depth", {"symbol": "BTCUSDT", "limit": 5001})) == before + 50 + 250
    assert maker.call("depth", {"symbol": "NOPE"})["error"]["code"] == -1121


# -- orders ------------------------------------------------------------------------------------------------------


def test_place_limit_rests_and_answers_per_response_type(maker):
    ack = maker.ok("order.place", limit(newOrderRespType="ACK", newClientOrderId="my-1"), signed=True)
    assert ack == {"symbol": "BTCUSDT", "orderId": 1, "orderListId": -1, "clientOrderId": "my-1",
                   "transactTime": T0_MS}
    res = maker.ok("order.place", limit(newOrderRespType="RESULT"), signed=True)
    assert res["status"] == "NEW" and res["price"] == "61837.63000000" and res["origQty"] == "0.01000000"
    assert res["executedQty"] == "0.00000000" and res["cummulativeQuoteQty"] == "0.00000000"
    assert (res["timeInForce"], res["type"], res["side"]) == ("GTC", "LIMIT", "SELL")
    assert res["workingTime"] == T0_MS and res["selfTradePreventionMode"] == "NONE" and "fills" not in res
    full = maker.ok("order.place", limit(), signed=True)  # LIMIT defaults to FULL
    assert full["fills"] == []
    maker_only = maker.ok("order.place", limit(type="LIMIT_MAKER", timeInForce=None), signed=True)
    assert set(maker_only) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}  # ACK default


def test_crossing_orders_fill_with_fills_and_commission(proto, maker, taker):
    maker.ok("order.place", limit("SELL", "61837.63", "0.01000"), signed=True)
    maker.ok("order.place", limit("SELL", "61840.00", "0.02000"), signed=True)
    full = taker.ok("order.place", limit("BUY", "61850.00", "0.02500"), signed=True)
    assert full["status"] == "FILLED" and full["executedQty"] == "0.02500000"
    # 0.01 @ 61837.63 + 0.015 @ 61840.00 = 618.3763 + 927.60
    assert full["cummulativeQuoteQty"] == "1545.97630000"
    assert full["fills"] == [
        {"price": "61837.63000000", "qty": "0.01000000", "commission": "0.43286350", "commissionAsset": "USDT",
         "tradeId": 1},
        {"price": "61840.00000000", "qty": "0.01500000", "commission": "0.64932000", "commissionAsset": "USDT",
         "tradeId": 2},
    ]
    market = taker.ok("order.place", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"},
                      signed=True)
    assert market["status"] == "EXPIRED" and market["executedQty"] == "0.00500000"
    assert market["price"] == "0.00000000" and market["timeInForce"] == "GTC"


def test_venue_rejections_map_to_their_code_and_message(maker, taker):
    maker.ok("order.place", limit("SELL", "61837.63"), signed=True)
    resp = taker.call("order.place", limit("BUY", "61900.00", type="LIMIT_MAKER", timeInForce=None), signed=True)
    assert (resp["status"], resp["error"]) == (400, {"code": -2010, "msg": "Order would immediately match and take."})
    resp = taker.call("order.place", limit("BUY", "61000.00", "1000.00000"), signed=True)
    assert resp["error"] == {"code": -2010, "msg": "Account has insufficient balance for requested action."}


def test_order_status_and_open_orders(maker):
    placed = maker.ok("order.place", limit(newClientOrderId="status-1"), signed=True)
    by_id = maker.ok("order.status", {"symbol": "BTCUSDT", "orderId": placed["orderId"]}, signed=True)
    by_cid = maker.ok("order.status", {"symbol": "BTCUSDT", "origClientOrderId": "status-1"}, signed=True)
    assert by_id == by_cid
    assert by_id["status"] == "NEW" and by_id["time"] == by_id["updateTime"] == T0_MS and by_id["isWorking"] is True
    assert by_id["stopPrice"] == "0.00000000" and by_id["icebergQty"] == "0.00000000"
    assert by_id["origQuoteOrderQty"] == "0.00000000"
    resp = maker.call("order.status", {"symbol": "BTCUSDT", "orderId": 999}, signed=True)
    assert resp["error"] == {"code": -2013, "msg": "Order does not exist."}
    mismatch = maker.call("order.status", {"symbol": "BTCUSDT", "orderId": placed["orderId"],
                                           "origClientOrderId": "other"}, signed=True)
    assert mismatch["error"]["code"] == -2013
    resp = maker.call("order.status", {"symbol": "BTCUSDT"}, signed=True)
    assert resp["error"] == {"code": -1102,
                             "msg": "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"}
    opened = maker.call("openOrders.status", {"symbol": "BTCUSDT"}, signed=True)
    assert [o["orderId"] for o in opened["result"]] == [placed["orderId"]]
    w = weight_count(opened)
    everything = maker.call("openOrders.status", signed=True)
    assert everything["result"] == opened["result"] and weight_count(everything) == w + 80
    assert weight_count(maker.call("openOrders.status", {"symbol": "BTCUSDT"}, signed=True)) == w + 86


def test_cancel_by_id_client_id_and_restrictions(proto, maker):
    p, venue = proto
    a = maker.ok("order.place", limit(newClientOrderId="c-a"), signed=True)
    b = maker.ok("order.place", limit(newClientOrderId="c-b"), signed=True)
    resp = maker.ok("order.cancel", {"symbol": "BTCUSDT", "orderId": a["orderId"], "newClientOrderId": "kill-a"},
                    signed=True)
    assert (resp["status"], resp["origClientOrderId"], resp["clientOrderId"]) == ("CANCELED", "c-a", "kill-a")
    assert resp["transactTime"] == T0_MS and resp["price"] == "61837.63000000"
    resp = maker.call("order.cancel", {"symbol": "BTCUSDT", "orderId": a["orderId"]}, signed=True)
    assert resp["error"] == {"code": -2011, "msg": "Unknown order sent."}
    resp = maker.call("order.cancel", {"symbol": "BTCUSDT", "origClientOrderId": "c-b",
                                       "cancelRestrictions": "ONLY_PARTIALLY_FILLED"}, signed=True)
    assert resp["error"] == {"code": -2011, "msg": "Order was not canceled due to cancel restrictions."}
    resp = maker.call("order.cancel", {"symbol": "BTCUSDT", "origClientOrderId": "c-b", "cancelRestrictions": "X"},
                      signed=True)
    assert resp["error"] == {"code": -1145, "msg": "Invalid cancelRestrictions"}
    resp = maker.ok("order.cancel", {"symbol": "BTCUSDT", "origClientOrderId": "c-b"}, signed=True)
    assert resp["orderId"] == b["orderId"]
    assert resp["clientOrderId"].startswith("cxl") and len(resp["clientOrderId"]) == 22  # generated, 22 chars
    assert venue.open_orders(1) == []


def test_cancel_all(maker):
    for px in ("61837.63", "61900.00"):
        maker.ok("order.place", limit(price=px), signed=True)
    out = maker.ok("openOrders.cancelAll", {"symbol": "BTCUSDT"}, signed=True)
    assert [o["status"] for o in out] == ["CANCELED", "CANCELED"]
    assert {o["origClientOrderId"] for o in out}.isdisjoint({o["clientOrderId"] for o in out})
    again = maker.call("openOrders.cancelAll", {"symbol": "BTCUSDT"}, signed=True)
    assert again["error"] == {"code": -2011, "msg": "Unknown order sent."}


def test_account_status_balances(maker):
    maker.ok("order.place", limit("SELL", "61837.63", "0.50000"), signed=True)
    acct = maker.ok("account.status", signed=True)
    assert acct["balances"] == [{"asset": "BTC", "free": "9.50000000", "locked": "0.50000000"},
                                {"asset": "USDT", "free": "1000000.00000000", "locked": "0.00000000"}]
    assert acct["commissionRates"] == {"maker": "-0.00005000", "taker": "0.00070000", "buyer": "0.00000000",
                                       "seller": "0.00000000"}
    assert acct["canTrade"] is True and acct["accountType"] == "SPOT" and acct["uid"] == 1
    assert maker.ok("account.rateLimits.orders", signed=True)[0]["count"] == 1


def test_order_test_validates_without_placing(proto, maker):
    p, venue = proto
    assert maker.ok("order.test", limit(), signed=True) == {}
    assert venue.open_orders(1) == []
    assert maker.call("order.test", limit(price="1.001"), signed=True)["error"]["msg"] == "Filter failure: PRICE_FILTER"


def test_session_methods(maker):
    st = maker.ok("session.status")
    assert st == {"apiKey": None, "authorizedSince": None, "connectedSince": T0_MS, "returnRateLimits": True,
                  "serverTime": T0_MS, "userDataStream": False}
    assert maker.call("session.logon", signed=True)["error"]["code"] == -1020
    maker.ok("userDataStream.subscribe.signature", signed=True)
    assert maker.ok("session.status")["userDataStream"] is True
    assert maker.ok("session.subscriptions") == [{"subscriptionId": 0}]


# -- user data stream --------------------------------------------------------------------------------------------


def test_user_data_stream_routes_execution_reports(proto, maker, taker):
    p, venue = proto
    watcher = ApiClient(p, "key-maker-0001")       # another connection of the same account
    bystander = ApiClient(p, "key-taker-0002")     # never subscribes
    assert maker.ok("userDataStream.subscribe.signature", signed=True) == {"subscriptionId": 0}
    assert watcher.ok("userDataStream.subscribe.signature", signed=True) == {"subscriptionId": 0}
    dup = maker.call("userDataStream.subscribe.signature", signed=True)
    assert dup["status"] == 400  # one subscription per account per connection
    assert taker.ok("userDataStream.subscribe.signature", signed=True) == {"subscriptionId": 0}
    venue.poll()
    maker.ok("order.place", limit("SELL", "61837.63", "0.01000", newClientOrderId="m-1"), signed=True)
    taker.ok("order.place", limit("BUY", "61837.63", "0.01000"), signed=True)
    frames = p.render_user_events(venue.poll(), T0_NS)
    assert set(frames) == {maker.session, watcher.session, taker.session} and bystander.session not in frames
    msgs = [json.loads(f) for f in frames[maker.session]]
    assert frames[maker.session] == frames[watcher.session]
    assert all(m["subscriptionId"] == 0 for m in msgs)
    kinds = [(m["event"]["e"], m["event"].get("x")) for m in msgs]
    assert kinds == [("executionReport", "NEW"), ("executionReport", "TRADE"), ("outboundAccountPosition", None)]
    trade = msgs[1]["event"]
    assert trade["c"] == "m-1" and trade["C"] == "" and trade["X"] == "FILLED" and trade["m"] is True
    assert (trade["l"], trade["z"], trade["L"], trade["Y"], trade["Z"]) == (
        "0.01000000", "0.01000000", "61837.63000000", "618.37630000", "618.37630000")
    assert trade["n"] == "-0.03091880"  # a rebate is rounded toward zero and trade["N"] == "USDT" and trade["t"] == 1
    new = msgs[0]["event"]
    assert new["n"] == "0" and new["N"] is None and new["t"] == -1 and new["w"] is True
    position = msgs[2]["event"]
    assert position["B"] == [{"a": "BTC", "f": "9.99000000", "l": "0.00000000"},
                             {"a": "USDT", "f": "1000618.40721880", "l": "0.00000000"}]
    taker_kinds = [json.loads(f)["event"].get("x") for f in frames[taker.session]]
    assert taker_kinds == ["NEW", "TRADE", None]


def test_canceled_report_carries_the_cancel_client_id(proto, maker):
    p, venue = proto
    maker.ok("userDataStream.subscribe.signature", signed=True)
    placed = maker.ok("order.place", limit(newClientOrderId="orig-1"), signed=True)
    maker.ok("order.cancel", {"symbol": "BTCUSDT", "orderId": placed["orderId"], "newClientOrderId": "cxl-1"},
             signed=True)
    events = [json.loads(f)["event"] for f in p.render_user_events(venue.poll(), T0_NS)[maker.session]]
    canceled = next(e for e in events if e.get("x") == "CANCELED")
    assert (canceled["c"], canceled["C"], canceled["X"], canceled["w"]) == ("cxl-1", "orig-1", "CANCELED", False)


def test_unsubscribe_and_close_stop_events(proto, maker):
    p, venue = proto
    maker.ok("userDataStream.subscribe.signature", signed=True)
    assert maker.ok("userDataStream.unsubscribe", {"subscriptionId": 0}) == {}
    maker.ok("order.place", limit(), signed=True)
    assert p.render_user_events(venue.poll(), T0_NS) == {}
    assert maker.ok("userDataStream.subscribe.signature", signed=True) == {"subscriptionId": 1}  # ids never reused
    p.close_session(maker.session)
    maker.ok("order.place", limit(), signed=True)
    assert p.render_user_events(venue.poll(), T0_NS) == {}
    p.close_session(maker.session)  # idempotent


def test_subscriptions_per_connection_are_bounded():
    p, venue = make_protocol(ProtocolConfig(max_lifetime_subscriptions=2))
    c = ApiClient(p)
    for expected in (0, 1):
        assert c.ok("userDataStream.subscribe.signature", signed=True) == {"subscriptionId": expected}
        c.ok("userDataStream.unsubscribe")
    assert c.call("userDataStream.subscribe.signature", signed=True)["status"] == 400


# -- authentication -----------------------------------------------------------------------------------------------


def test_unknown_key_bad_signature_and_timestamps(proto):
    p, _ = proto
    stranger = ApiClient(p, "no-such-key")
    resp = stranger.call("account.status", signed=True)
    assert (resp["status"], resp["error"]) == (401, {"code": -2015,
                                                     "msg": "Invalid API-key, IP, or permissions for action."})
    c = ApiClient(p)
    params = c.signed_params({})
    params["signature"] = "0" * 64
    resp = c.send_text(json.dumps({"id": 1, "method": "account.status", "params": params}))
    assert (resp["status"], resp["error"]) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
    tampered = c.signed_params(limit(price="61837.63"))
    tampered["price"] = "61837.64"
    assert c.send_text(json.dumps({"id": 2, "method": "order.place", "params": tampered}))["error"]["code"] == -1022
    upper = c.signed_params({})
    upper["signature"] = upper["signature"].upper()  # HMAC signatures are case-insensitive
    assert c.send_text(json.dumps({"id": 3, "method": "account.status", "params": upper}))["status"] == 200


@pytest.mark.parametrize("offset_ms,recv_window,ok", [
    (0, None, True), (-5000, None, True), (-5001, None, False), (999, None, True), (1000, None, False),
    (-60000, 60000, True), (-150, 100, False), (-100, 100, True), (-100, "99.999", False), (-100, "100.5", True),
])
def test_recv_window(proto, offset_ms, recv_window, ok):
    p, _ = proto
    c = ApiClient(p)
    extra = {} if recv_window is None else {"recvWindow": recv_window}
    params = c.signed_params(extra, timestamp_ms=T0_MS + offset_ms)
    resp = c.send_text(json.dumps({"id": 1, "method": "account.status", "params": params}))
    if ok:
        assert resp["status"] == 200, resp
    else:
        assert resp["error"]["code"] == -1021
        assert resp["error"]["msg"] in ("Timestamp for this request is outside of the recvWindow.",
                                        "Timestamp for this request was 1000ms ahead of the server's time.")


def test_recv_window_limits_and_microsecond_timestamps(proto):
    p, _ = proto
    c = ApiClient(p)
    resp = c.call("account.status", {"recvWindow": 60001}, signed=True)
    assert resp["error"] == {"code": -1102, "msg": "'recvWindow' contains unexpected value. Cannot be greater than "
                                                   "'60000'."}
    params = c.signed_params({}, timestamp_ms=None)
    params = c.signed_params({}, timestamp_ms=T0_MS * 1000 - 3_000_000)  # microseconds, 3 s old
    assert c.send_text(json.dumps({"id": 1, "method": "account.status", "params": params}))["status"] == 200
    resp = c.send_text(json.dumps({"id": 1, "method": "account.status", "params": {"apiKey": "key-maker-0001"}}))
    assert resp["error"] == {"code": -1102, "msg": "Mandatory parameter 'timestamp' was not sent, was empty/null, or "
                                                   "malformed."}


def test_documented_hmac_request_is_accepted():
    """Binance's worked example (WebSocket API docs, "SIGNED request example (HMAC)"), byte for byte."""
    api_key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    venue = FakeVenue()
    venue.deposit(1, "BTC", 100_000)
    p = Protocol(venue, keys={api_key: ("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j", 1)})
    text = """{
      "id": "4885f793-e5ad-4c3b-8f6c-55d891472b71",
      "method": "order.place",
      "params": {
        "symbol":           "BTCUSDT",
        "side":             "SELL",
        "type":             "LIMIT",
        "timeInForce":      "GTC",
        "quantity":         "0.01000000",
        "price":            "52000.00",
        "newOrderRespType": "ACK",
        "recvWindow":       100,
        "timestamp":        1645423376532,
        "apiKey":           "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
        "signature":        "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
      }
    }"""
    now = (1645423376532 + 40) * MS
    resp = json.loads(p.handle_ws_api(p.open_session(now), text, now)[0])
    assert resp["status"] == 200, resp
    assert resp["result"]["clientOrderId"] and resp["result"]["transactTime"] == 1645423376572
    late = (1645423376532 + 101) * MS  # recvWindow 100 ms
    assert json.loads(p.handle_ws_api(p.open_session(late), text, late)[0])["error"]["code"] == -1021


def test_json_numbers_are_signed_as_sent(proto):
    """A price sent as a JSON number is signed and parsed from its text, never through a float."""
    p, venue = proto
    c = ApiClient(p)
    params = c.signed_params({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                              "price": signing.RawNumber("61837.10"), "quantity": signing.RawNumber("0.01000")})
    text = ('{"id":1,"method":"order.place","params":' +
            json.dumps({k: v for k, v in params.items() if k not in ("price", "quantity")})[:-1] +
            ',"price":61837.10,"quantity":0.01000}}')
    resp = c.send_text(text)
    assert resp["status"] == 200, resp
    assert resp["result"]["price"] == "61837.10000000"


# -- rate limits ---------------------------------------------------------------------------------------------------


def test_request_weight_counts_and_window(proto):
    p, _ = proto
    c = ApiClient(p)
    assert weight_count(c.call("ping")) == 3
    assert weight_count(c.call("exchangeInfo")) == 23
    other = ApiClient(p)  # same address: weight is shared (+2 for connecting)
    assert weight_count(other.call("time")) == 26
    far = ApiClient(p, session=p.open_session(T0_NS, client="10.0.0.9"))
    assert weight_count(far.call("ping")) == 3
    c.now_ns = T0_NS + 60 * SEC  # next minute
    assert weight_count(c.call("ping")) == 1


def test_request_weight_exhaustion_is_429_then_recovers():
    p, _ = make_protocol(ProtocolConfig(request_weight_per_minute=25))
    c = ApiClient(p)
    assert c.call("exchangeInfo")["status"] == 200          # 2 + 20
    c.call("ping"), c.call("ping"), c.call("ping")          # 25
    resp = c.call("ping")
    assert resp["status"] == 429
    assert resp["error"]["code"] == -1003
    assert resp["error"]["msg"] == ("Too much request weight used; current limit is 25 request weight per 1 MINUTE. "
                                    "Please use WebSocket Streams for live updates to avoid polling the API.")
    assert resp["error"]["data"] == {"serverTime": T0_MS, "retryAfter": T0_MS + 60_000}
    assert weight_count(resp) == 26
    c.now_ns = T0_NS + 61 * SEC
    assert c.call("ping")["status"] == 200


def test_order_rate_limit_and_its_counts():
    p, venue = make_protocol(ProtocolConfig(orders_per_10s=3, orders_per_day=5))
    c = ApiClient(p)
    counts = []
    for _ in range(3):
        resp = c.call("order.place", limit(), signed=True)
        assert [(r["rateLimitType"], r["interval"], r["intervalNum"]) for r in resp["rateLimits"]] == [
            ("ORDERS", "SECOND", 10), ("ORDERS", "DAY", 1), ("REQUEST_WEIGHT", "MINUTE", 1)]
        counts.append((resp["rateLimits"][0]["count"], resp["rateLimits"][1]["count"]))
    assert counts == [(1, 1), (2, 2), (3, 3)]
    resp = c.call("order.place", limit(), signed=True)
    assert (resp["status"], resp["error"]["code"]) == (429, -1015)
    assert resp["error"]["msg"] == "Too many new orders; current limit is 3 orders per 10 SECOND."
    assert len(venue.open_orders(1)) == 3  # the refused order never reached the venue
    c.now_ns = T0_NS + 10 * SEC
    assert c.call("order.place", limit(), signed=True)["rateLimits"][0]["count"] == 1
    c.call("order.place", limit(), signed=True)
    resp = c.call("order.place", limit(), signed=True)
    assert resp["error"]["msg"] == "Too many new orders; current limit is 5 orders per 1 DAY."
    other = ApiClient(p, "key-taker-0002")  # counted per account
    assert other.call("order.place", limit("BUY", "1000.00"), signed=True)["status"] == 200


def test_return_rate_limits_can_be_turned_off(proto):
    p, _ = proto
    c = ApiClient(p)
    assert "rateLimits" not in c.call("ping", {"returnRateLimits": False})
    quiet = ApiClient(p, session=p.open_session(T0_NS, return_rate_limits=False))
    assert "rateLimits" not in quiet.call("ping")
    assert "rateLimits" in quiet.call("ping", {"returnRateLimits": True})
    assert "rateLimits" not in quiet.call("order.status", {"symbol": "BTCUSDT", "orderId": 5}, signed=True)


# -- malformed input ------------------------------------------------------------------------------------------------

_ID_MSG = "Invalid 'id' in JSON request; expected an integer, a string matching '^[a-zA-Z0-9-_]{1,36}$', or null."


@pytest.mark.parametrize("text,expected", [
    ("not json", (None, 400, -1135, "Invalid JSON Request")),
    ('{"id": 1, "method": "ping"', (None, 400, -1135, "Invalid JSON Request")),
    ('[1, 2]', (None, 400, -1135, "Invalid JSON Request")),
    ('{"id": 1, "method": "ping", "x": NaN}', (None, 400, -1135, "Invalid JSON Request")),
    ('{"method": "ping"}', (None, 400, -1135, _ID_MSG)),
    ('{"id": "has space", "method": "ping"}', (None, 400, -1135, _ID_MSG)),
    ('{"id": 1.5, "method": "ping"}', (None, 400, -1135, _ID_MSG)),
    ('{"id": true, "method": "ping"}', (None, 400, -1135, _ID_MSG)),
    ('{"id": "' + "a" * 37 + '", "method": "ping"}', (None, 400, -1135, _ID_MSG)),
    ('{"id": 99999999999999999999, "method": "ping"}', (None, 400, -1135, _ID_MSG)),
    ('{"id": 1}', (1, 400, -1135, "Invalid 'method' in JSON request; expected a string.")),
    ('{"id": 1, "method": 5}', (1, 400, -1135, "Invalid 'method' in JSON request; expected a string.")),
    ('{"id": 1, "method": "ping", "params": [1]}',
     (1, 400, -1135, "Invalid 'params' in JSON request; expected an object.")),
    ('{"id": 1, "method": "no.such"}', (1, 400, -1020, "This operation is not supported.")),
    ('{"id": 1, "method": "depth", "params": {}}',
     (1, 400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")),
    ('{"id": 1, "method": "depth", "params": {"symbol": ""}}',
     (1, 400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")),
    ('{"id": 1, "method": "depth", "params": {"symbol": "btcusdt"}}',
     (1, 400, -1100, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.")),
    ('{"id": 1, "method": "ping", "params": {"foo": 1}}',
     (1, 400, -1104, "Not all sent parameters were read; read '0' parameter(s) but was sent '1'.")),
    ('{"id": 1, "method": "depth", "params": {"symbol": "BTCUSDT", "symbol": "BTCUSDT"}}',
     (1, 400, -1101, "Duplicate values for a parameter detected.")),
    ('{"id": 1, "method": "depth", "params": {"symbol": "BTCUSDT", "limit": "ten"}}',
     (1, 400, -1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.")),
])
def test_malformed_requests_are_answered_and_the_session_survives(maker, text, expected):
    resp = maker.send_text(text)
    assert (resp["id"], resp["status"], resp["error"]["code"], resp["error"]["msg"]) == expected
    assert maker.call("ping")["status"] == 200


@pytest.mark.parametrize("change,code,msg", [
    ({"side": "HOLD"}, -1117, "Invalid side."),
    ({"type": "LIMITED"}, -1116, "Invalid orderType."),
    ({"type": "STOP_LOSS"}, -2010, "Stop loss orders are not supported for this symbol."),
    ({"timeInForce": "GTX"}, -1115, "Invalid timeInForce."),
    ({"timeInForce": None}, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."),
    ({"price": None}, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."),
    ({"quantity": None}, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."),
    ({"side": None}, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed."),
    ({"price": "1e-5"}, -1100,
     "Illegal characters found in parameter 'price'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."),
    ({"quantity": "-1"}, -1100,
     "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."),
    ({"price": "61837.635"}, -1013, "Filter failure: PRICE_FILTER"),
    ({"price": "0.00"}, -1013, "Filter failure: PRICE_FILTER"),
    ({"price": "1000000.01"}, -1013, "Filter failure: PRICE_FILTER"),
    ({"quantity": "0.000001"}, -1013, "Filter failure: LOT_SIZE"),
    ({"quantity": "0"}, -1013, "Filter failure: LOT_SIZE"),
    ({"quantity": "9000.00001"}, -1013, "Filter failure: LOT_SIZE"),
    ({"price": "100.00", "quantity": "0.01"}, -1013, "Filter failure: NOTIONAL"),
    ({"symbol": "ETHUSDT"}, -1121, "Invalid symbol."),
    ({"newClientOrderId": "bad id"}, -1100,
     "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_]{1,36}$'."),
    ({"newOrderRespType": "ALL"}, -1100,
     "Illegal characters found in parameter 'newOrderRespType'; legal range is 'ACK, RESULT, FULL'."),
    ({"selfTradePreventionMode": "SOMETIMES"}, -1100,
     "Illegal characters found in parameter 'selfTradePreventionMode'; legal range is "
     "'NONE, EXPIRE_TAKER, EXPIRE_MAKER, EXPIRE_BOTH, DECREMENT'."),
    ({"quoteOrderQty": "10"}, -1013, "Quote order qty market orders are not support for this symbol."),
    ({"icebergQty": "0.001"}, -2010, "Iceberg orders are not supported for this symbol."),
    ({"stopPrice": "1.00"}, -1106, "Parameter 'stopPrice' sent when not required."),
    ({"pegPriceType": "PRIMARY_PEG"}, -1104,
     "Not all sent parameters were read; read '9' parameter(s) but was sent '10'."),
    ({"type": "MARKET", "timeInForce": None}, -1106, "Parameter 'price' sent when not required."),
    ({"type": "MARKET", "price": None}, -1106, "Parameter 'timeInForce' sent when not required."),
])
def test_bad_order_parameters(proto, maker, change, code, msg):
    p, venue = proto
    params = {k: v for k, v in {**limit(), **change}.items() if v is not None}
    resp = maker.call("order.place", params, signed=True)
    assert (resp["status"], resp["error"]) == (400, {"code": code, "msg": msg})
    assert venue.open_orders(1) == []
    assert maker.call("ping")["status"] == 200


def test_selftrade_prevention_modes_are_accepted(maker):
    for mode in ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"):
        assert maker.call("order.place", limit(selfTradePreventionMode=mode), signed=True)["status"] == 200


# -- faults -----------------------------------------------------------------------------------------------------------


def test_fault_answers_a_method_with_an_error_without_executing_it(proto, maker):
    p, venue = proto
    p.faults.fail("order.place", -1008, times=2)
    for _ in range(2):
        resp = maker.call("order.place", limit(), signed=True)
        assert (resp["status"], resp["error"]["code"]) == (503, -1008)
    assert venue.open_orders(1) == []
    assert maker.call("order.place", limit(), signed=True)["status"] == 200
    p.faults.fail("ping", -1000, "custom message", status=500, times=None)
    assert maker.call("ping")["error"] == {"code": -1000, "msg": "custom message"}
    assert maker.call("ping")["status"] == 500
    p.faults.clear("ping")
    assert maker.call("ping")["status"] == 200


def test_unknown_execution_status_still_places_the_order(proto, maker):
    p, venue = proto
    maker.ok("userDataStream.subscribe.signature", signed=True)
    p.faults.unknown_status("order.place")
    resp = maker.call("order.place", limit(newClientOrderId="maybe-1"), signed=True)
    assert resp["status"] == 503
    assert resp["error"] == {"code": -1006, "msg": "An unexpected response was received from the message bus. "
                                                   "Execution status unknown."}
    assert [o.client_order_id for o in venue.open_orders(1)] == ["maybe-1"]
    status = maker.ok("order.status", {"symbol": "BTCUSDT", "origClientOrderId": "maybe-1"}, signed=True)
    assert status["status"] == "NEW"  # reconciliation finds it
    events = p.render_user_events(venue.poll(), T0_NS)[maker.session]
    assert json.loads(events[0])["event"]["c"] == "maybe-1"
    p.faults.unknown_status("order.cancel", code=-1007)
    resp = maker.call("order.cancel", {"symbol": "BTCUSDT", "origClientOrderId": "maybe-1"}, signed=True)
    assert resp["error"]["code"] == -1007 and venue.open_orders(1) == []


# -- REST ---------------------------------------------------------------------------------------------------------


def rest(p, path, query="", method="GET", now_ns=T0_NS, client="127.0.0.1"):
    status, headers, body = p.handle_rest(method, path, query, {}, now_ns, client=client)
    h = {k.lower(): v for k, v in headers}
    return status, h, (json.loads(body) if h.get("content-type", "").startswith("application/json") else body)


def test_rest_general_endpoints(proto):
    p, _ = proto
    assert rest(p, "/api/v3/ping")[::2] == (200, {})
    status, h, body = rest(p, "/api/v3/time")
    assert (status, body) == (200, {"serverTime": T0_MS})
    assert h["content-type"] == "application/json;charset=UTF-8"
    assert h["x-mbx-used-weight"] == h["x-mbx-used-weight-1m"] == "2"
    status, h, body = rest(p, "/api/v3/exchangeInfo")
    assert status == 200 and h["x-mbx-used-weight-1m"] == "22"
    assert [s["symbol"] for s in body["symbols"]] == ["BTCUSDT"]
    assert body["rateLimits"][-1] == {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
                                      "limit": 61000}
    status, _, body = rest(p, "/api/v3/exchangeInfo", 'symbols=%5B%22BTCUSDT%22%5D')
    assert status == 200 and len(body["symbols"]) == 1


def test_rest_depth(proto, maker):
    p, venue = proto
    maker.ok("order.place", limit("BUY", "61800.00", "0.25000"), signed=True)
    status, h, body = rest(p, "/api/v3/depth", "symbol=BTCUSDT")
    assert (status, body) == (200, {"lastUpdateId": 1, "bids": [["61800.00000000", "0.25000000"]], "asks": []})
    w = int(h["x-mbx-used-weight-1m"])
    status, h, body = rest(p, "/api/v3/depth", "symbol=BTCUSDT&limit=6000")  # truncated to 5000, weight 250
    assert status == 200 and int(h["x-mbx-used-weight-1m"]) == w + 250
    assert rest(p, "/api/v3/depth", "symbol=NOPE")[::2] == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert rest(p, "/api/v3/depth")[::2] == (400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, "
                                                                         "was empty/null, or malformed."})
    assert rest(p, "/api/v3/depth", "symbol=BTCUSDT&symbol=BTCUSDT")[2]["code"] == -1101
    assert rest(p, "/api/v3/depth", "symbol=BTCUSDT&foo=1")[2]["code"] == -1104
    assert rest(p, "/api/v3/depth", "symbol=BTCUSDT&limit=-3")[2]["code"] == -1100


def test_rest_unknown_paths_methods_and_weight_limit():
    p, _ = make_protocol(ProtocolConfig(request_weight_per_minute=21))
    assert rest(p, "/api/v3/nothing")[0] == 404
    assert rest(p, "/api/v3/ping", method="POST")[0] == 405
    assert rest(p, "/api/v3/exchangeInfo")[0] == 200
    assert rest(p, "/api/v3/ping")[0] == 200
    status, h, body = rest(p, "/api/v3/ping", now_ns=T0_NS + 15 * SEC)
    assert status == 429 and body["code"] == -1003 and h["retry-after"] == "45"
    assert rest(p, "/api/v3/ping", now_ns=T0_NS + 60 * SEC)[0] == 200
    p.faults.fail("/api/v3/depth", -1001)
    status, _, body = rest(p, "/api/v3/depth", "symbol=BTCUSDT", now_ns=T0_NS + 60 * SEC)
    assert (status, body["code"]) == (500, -1001)


# -- market streams -------------------------------------------------------------------------------------------------


def test_stream_names_and_sessions():
    assert parse_stream("btcusdt@depth@100ms") == parse_stream("btcusdt@depth@100ms")
    s = parse_stream("btcusdt@depth@100ms")
    assert (s.symbol, s.kind, s.interval_ms) == ("BTCUSDT", "depth", 100)
    assert parse_stream("btcusdt@depth").interval_ms == 1000
    p5 = parse_stream("btcusdt@depth5@100ms")
    assert (p5.kind, p5.levels, p5.interval_ms) == ("partialDepth", 5, 100)
    assert parse_stream("btcusdt@bookTicker").kind == "bookTicker"
    for bad in ("BTCUSDT@trade", "btcusdt@depth7", "btcusdt@kline_1m", "btcusdt", "", None):
        assert parse_stream(bad) is None
    raw = stream_session("/ws/btcusdt@trade")
    assert not raw.combined and [x.name for x in raw.streams] == ["btcusdt@trade"]
    comb = stream_session("/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker")
    assert comb.combined and [x.name for x in comb.streams] == ["btcusdt@depth@100ms", "btcusdt@bookTicker"]
    assert stream_session("/ws").streams == []
    assert stream_session("/ws/btcusdt@nothing") is None and stream_session("/api/v3/ping") is None


def test_stream_control_messages(proto):
    p, _ = proto
    s = stream_session("/ws/btcusdt@trade")
    ctl = lambda text: json.loads(p.handle_stream_control(s, text)[0])  # noqa: E731
    assert ctl('{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms","btcusdt@trade"],"id":1}') == {
        "result": None, "id": 1}
    assert ctl('{"method":"LIST_SUBSCRIPTIONS","id":3}') == {"result": ["btcusdt@trade", "btcusdt@depth@100ms"],
                                                             "id": 3}
    assert ctl('{"method":"UNSUBSCRIBE","params":["btcusdt@trade"],"id":312}') == {"result": None, "id": 312}
    assert ctl('{"method":"GET_PROPERTY","params":["combined"],"id":2}') == {"result": False, "id": 2}
    assert s.frame("btcusdt@depth@100ms", '{"x":1}') == '{"x":1}'
    assert ctl('{"method":"SET_PROPERTY","params":["combined",true],"id":5}') == {"result": None, "id": 5}
    assert json.loads(s.frame("btcusdt@depth@100ms", '{"x":1}')) == {"stream": "btcusdt@depth@100ms", "data": {"x": 1}}
    assert s.frame("btcusdt@trade", "{}") is None
    errors = {
        "{nope": (3, "Invalid JSON: expected value at line 1 column 2"),
        '{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1.5}':
            (2, "Invalid request: request ID must be an unsigned integer"),
        '{"method":"SUBSCRIBE","params":["nonsense"],"id":7}': (2, "Invalid request: invalid stream"),
        '{"method":"SET_PROPERTY","params":["combined","yes"],"id":7}': (1, "Invalid value type: expected Boolean"),
        '{"method":"GET_PROPERTY","params":["colour"],"id":7}': (0, "Unknown property"),
        '{"method":"LIST_SUBSCRIPTIONS","params":["x"],"id":7}': (2, "Invalid request: too many parameters"),
        '{"params":[],"id":7}': (2, "Invalid request: missing field `method` at line 1 column 20"),
    }
    for text, (code, msg) in errors.items():
        resp = ctl(text)
        assert (resp["error"]["code"], resp["error"]["msg"]) == (code, msg), text
    resp = ctl('{"method":"SUBSCRIBEX","params":[],"id":9}')
    assert resp["error"]["msg"].startswith("Invalid request: unknown variant `SUBSCRIBEX`, expected one of "
                                           "`SUBSCRIBE`, `UNSUBSCRIBE`") and resp["id"] == 9
    assert [x.name for x in s.streams] == ["btcusdt@depth@100ms"]  # errors changed nothing
    small = StreamSession(max_streams=1)
    assert json.loads(small.handle_control('{"method":"SUBSCRIBE","params":["a@trade","b@trade"],"id":1}')[0])["error"]


def test_market_data_builders():
    inst = BTCUSDT.instrument
    changes = [LevelChange("BTCUSDT", 10, 1, 6183763, 100, 0), LevelChange("BTCUSDT", 11, -1, 6183800, 0, 0),
               LevelChange("BTCUSDT", 12, 1, 6183763, 250, 0)]
    assert depth_update(inst, changes, T0_NS + 5 * MS) == {
        "e": "depthUpdate", "E": T0_MS + 5, "s": "BTCUSDT", "U": 10, "u": 12,
        "b": [["61837.63000000", "0.00250000"]], "a": [["61838.00000000", "0.00000000"]]}
    assert trade_event(inst, TradePrint("BTCUSDT", 77, 6183763, 1234, True, T0_NS + 3 * MS), T0_NS + 4 * MS) == {
        "e": "trade", "E": T0_MS + 4, "s": "BTCUSDT", "t": 77, "p": "61837.63000000", "q": "0.01234000",
        "T": T0_MS + 3, "m": True, "M": True}
    assert book_ticker(inst, 400900217, (2535190, 3121000), (2536520, 4066000)) == {
        "u": 400900217, "s": "BTCUSDT", "b": "25351.90000000", "B": "31.21000000", "a": "25365.20000000",
        "A": "40.66000000"}
    snap = DepthSnapshot("BTCUSDT", 160, [(100, 1), (99, 2)], [(101, 3)])
    assert depth_levels(inst, snap, 1) == {"lastUpdateId": 160, "bids": [["1.00000000", "0.00001000"]],
                                           "asks": [["1.01000000", "0.00003000"]]}
    assert json.loads(combined("btcusdt@trade", '{"e":"trade"}')) == {"stream": "btcusdt@trade",
                                                                      "data": {"e": "trade"}}
    assert json.loads(server_shutdown(T0_NS)) == {"event": {"e": "serverShutdown", "E": T0_MS}}


# -- formatting -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value,digits,units,text", [
    (6183763, 2, 1, "61837.63000000"), (1, 8, 1, "0.00000001"), (0, 8, 1, "0.00000000"), (5, 0, 1, "5.00000000"),
    (3, 2, 5, "0.15000000"), (7630763542, 10, 1, "0.7630763542"), (7630763500, 10, 1, "0.76307635"),
    (-3091881, 8, 1, "-0.03091881"), (123456789012345678, 8, 1, "1234567890.12345678"),
])
def test_format_decimal(value, digits, units, text):
    assert format_decimal(value, digits, units) == text


def test_quote_amounts_finer_than_8_decimals_stay_exact():
    """With a book lot of 1e-8 BTC the notional unit is 1e-10 USDT: never rounded to 8 places."""
    fine = type(BTCUSDT)(Instrument("BTCUSDT", "0.01", "0.00000001"), "BTC", "USDT")
    venue = FakeVenue((fine,), )
    for acct in (1, 2):
        venue.deposit(acct, "BTC", 10**8)
        venue.deposit(acct, "USDT", 10**18)
    p = Protocol(venue, keys=KEYS)
    ApiClient(p, "key-maker-0001").ok("order.place", limit("SELL", "61837.63", "0.00001234"), signed=True)
    full = ApiClient(p, "key-taker-0002").ok("order.place", limit("BUY", "61837.63", "0.00001234"), signed=True)
    assert full["cummulativeQuoteQty"] == "0.7630763542"
    assert full["origQty"] == "0.00001234" and full["fills"][0]["commission"] == "0.0005341535"


def test_assets_with_two_scales_are_a_config_error():
    with pytest.raises(ConfigError, match="BTC"):
        Protocol(FakeVenue((BTCUSDT, ETHBTC)), keys=KEYS)
    Protocol(FakeVenue((BTCUSDT, ETHUSDT)), keys=KEYS)  # consistent scales are fine


def test_secrets_stay_out_of_reprs_and_messages(proto, maker):
    p, _ = proto
    texts = [repr(p), repr(maker.session), repr(p._keys), repr(p.faults)]
    resp = maker.call("account.status", {"recvWindow": 1}, signed=True)
    texts.append(json.dumps(resp))
    bad = maker.signed_params({})
    bad["signature"] = "f" * 64
    texts.append(json.dumps(maker.send_text(json.dumps({"id": 1, "method": "account.status", "params": bad}))))
    for text in texts:
        for secret, _ in KEYS.values():
            assert secret not in text


def test_keys_may_be_api_key_objects_and_fees_per_account():
    from types import SimpleNamespace

    from workbench.venue.api import FeeSchedule

    venue = FakeVenue()
    venue.fees = {1: FeeSchedule(maker_ppm=0, taker_ppm=1000)}
    p = Protocol(venue, keys=[SimpleNamespace(key="key-maker-0001", secret="secret-maker", account=1)])
    acct = ApiClient(p).ok("account.status", signed=True)
    assert (acct["commissionRates"]["taker"], acct["takerCommission"]) == ("0.00100000", 10)
    venue.fees_of = lambda account: FeeSchedule(maker_ppm=200, taker_ppm=300)
    assert ApiClient(p).ok("account.status", signed=True)["commissionRates"]["maker"] == "0.00020000"
