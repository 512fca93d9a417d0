"""The official Binance Spot SDK (``binance-sdk-spot``) as the referee: its pydantic models must parse every
response and event the protocol produces (strict types, and no field the SDK does not know), and requests built
and signed by the SDK's own code must verify. No network: the SDK's functions are called directly."""

from __future__ import annotations

import json
import typing

import pytest

pytest.importorskip("binance_sdk_spot")

from binance_common.configuration import ConfigurationWebSocketAPI  # noqa: E402
from binance_common.models import WebsocketApiOptions, WebsocketApiRateLimit  # noqa: E402
from binance_common.utils import parse_user_event, websocket_api_signature, ws_api_payload  # noqa: E402
from binance_sdk_spot.rest_api import models as rest_models  # noqa: E402
from binance_sdk_spot.websocket_api import models as ws  # noqa: E402
from binance_sdk_spot.websocket_api.models import enums as ws_enums  # noqa: E402
from binance_sdk_spot.websocket_streams import models as streams  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from tests.venue.fake_venue import BTCUSDT, KEYS, T0_NS, ApiClient, make_protocol  # noqa: E402
from workbench.venue.api import DepthSnapshot, LevelChange, TradePrint  # noqa: E402
from workbench.venue.protocol import book_ticker, depth_levels, depth_update, dumps, trade_event  # noqa: E402

MS = 1_000_000


def _models_in(annotation) -> list[type[BaseModel]]:
    """BaseModel classes inside an annotation (Optional[List[X]] -> [X]), oneOf wrappers excluded."""
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel) and "actual_instance" not in annotation.model_fields:
            return [annotation]
        return []
    out = []
    for arg in typing.get_args(annotation):
        out += _models_in(arg)
    return out


def unknown_fields(model: type[BaseModel], obj: dict, path: str = "") -> list[str]:
    """Keys of ``obj`` (recursively) that ``model`` does not declare: a typo the lenient models would swallow."""
    fields = {(f.alias or name): f for name, f in model.model_fields.items() if name != "additional_properties"}
    out = []
    for key, value in obj.items():
        field = fields.get(key)
        if field is None:
            out.append(path + key)
            continue
        for sub in _models_in(field.annotation):
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    out += unknown_fields(sub, item, f"{path}{key}[{i}].")
    return out


def sdk_parse(model: type[BaseModel], resp: dict):
    """What the SDK does with a WebSocket API answer (``model_validate`` + rate limits), plus the field check.

    Two quirks of the generated models: some envelopes (session.*, userDataStream.*) declare no ``rateLimits``
    although the SDK reads ``rateLimits`` from every answer (``send_message`` indexes it unconditionally), and the
    WebSocket ``ExchangeInfoResponse`` describes the ``result`` rather than the envelope.
    """
    assert resp["status"] == 200, resp
    if "id" not in model.model_fields:  # a model of the result
        parsed = model.model_validate(resp["result"])
        assert unknown_fields(model, resp["result"]) == []
    else:
        parsed = model.model_validate(resp)
        extra = unknown_fields(model, resp)
        assert extra in ([], ["rateLimits"]), extra
    assert [WebsocketApiRateLimit(**r).count for r in resp["rateLimits"]] == [r["count"] for r in resp["rateLimits"]]
    return parsed


@pytest.fixture
def setup():
    p, venue = make_protocol()
    return p, venue, ApiClient(p, "key-maker-0001"), ApiClient(p, "key-taker-0002")


def limit(side="SELL", price="61837.63", qty="0.01000", **kw):
    return {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC", "price": price,
            "quantity": qty, **kw}


def test_general_and_market_responses(setup):
    p, venue, maker, _ = setup
    sdk_parse(ws.PingResponse, maker.call("ping"))
    assert sdk_parse(ws.TimeResponse, maker.call("time")).result.server_time == T0_NS // MS
    info = maker.call("exchangeInfo")
    parsed = sdk_parse(ws.ExchangeInfoResponse, info)
    assert parsed.symbols[0].base_asset == "BTC"
    filter_models = {"PRICE_FILTER": ws.PriceFilter, "LOT_SIZE": ws.LotSizeFilter, "NOTIONAL": ws.NotionalFilter}
    for f in info["result"]["symbols"][0]["filters"]:
        filter_models[f["filterType"]].model_validate(f)
        assert unknown_fields(filter_models[f["filterType"]], f) == []
        assert ws.SymbolFilters.from_dict(f).actual_instance is not None
    maker.ok("order.place", limit(), signed=True)
    depth = sdk_parse(ws.DepthResponse, maker.call("depth", {"symbol": "BTCUSDT"}))
    assert depth.result.asks == [["61837.63000000", "0.01000000"]]
    sdk_parse(ws.SessionStatusResponse, maker.call("session.status"))


def test_order_responses(setup):
    p, venue, maker, taker = setup
    for resp_type in ("ACK", "RESULT", "FULL"):
        r = sdk_parse(ws.OrderPlaceResponse, maker.call("order.place", limit(newOrderRespType=resp_type), signed=True))
        assert r.result.order_list_id == -1
    filled = sdk_parse(ws.OrderPlaceResponse, taker.call("order.place", limit("BUY", qty="0.02000"), signed=True))
    assert filled.result.status == "FILLED" and len(filled.result.fills) == 2
    assert filled.result.fills[0].commission_asset == "USDT" and filled.result.fills[0].trade_id == 1
    sdk_parse(ws.OrderTestResponse, maker.call("order.test", limit(), signed=True))
    a = maker.ok("order.place", limit(newClientOrderId="a-1"), signed=True)
    maker.ok("order.place", limit(newClientOrderId="a-2"), signed=True)
    st = sdk_parse(ws.OrderStatusResponse,
                   maker.call("order.status", {"symbol": "BTCUSDT", "orderId": a["orderId"]}, signed=True))
    assert st.result.client_order_id == "a-1" and st.result.is_working is True
    opened = sdk_parse(ws.OpenOrdersStatusResponse, maker.call("openOrders.status", signed=True))
    assert {"a-1", "a-2"} <= {o.client_order_id for o in opened.result}
    cancel = sdk_parse(ws.OrderCancelResponse, maker.call(
        "order.cancel", {"symbol": "BTCUSDT", "origClientOrderId": "a-1"}, signed=True))
    assert cancel.result.orig_client_order_id == "a-1" and cancel.result.status == "CANCELED"
    all_ = sdk_parse(ws.OpenOrdersCancelAllResponse,
                     maker.call("openOrders.cancelAll", {"symbol": "BTCUSDT"}, signed=True))
    assert {o.status for o in all_.result} == {"CANCELED"} and len(all_.result) == 2


def test_account_and_user_stream_responses(setup):
    p, venue, maker, _ = setup
    acct = sdk_parse(ws.AccountStatusResponse, maker.call("account.status", signed=True))
    assert {b.asset: b.free for b in acct.result.balances} == {"BTC": "10.00000000", "USDT": "1000000.00000000"}
    assert acct.result.commission_rates.taker == "0.00070000"
    sdk_parse(ws.AccountRateLimitsOrdersResponse, maker.call("account.rateLimits.orders", signed=True))
    sub = sdk_parse(ws.UserDataStreamSubscribeSignatureResponse,
                    maker.call("userDataStream.subscribe.signature", signed=True))
    assert sub.result.subscription_id == 0
    sdk_parse(ws.SessionSubscriptionsResponse, maker.call("session.subscriptions"))
    sdk_parse(ws.UserDataStreamUnsubscribeResponse, maker.call("userDataStream.unsubscribe"))


EXECUTION_REPORT_FIELDS = set("e E s c S o f q p P F g C x X r i l z L n N T t I w m M O Z Y Q W V".split())


def test_user_data_events_parse_as_sdk_event_models(setup):
    p, venue, maker, taker = setup
    for c in (maker, taker):
        c.ok("userDataStream.subscribe.signature", signed=True)
    maker.ok("order.place", limit(), signed=True)
    maker.ok("order.place", limit(price="61900.00", newClientOrderId="x-2"), signed=True)
    taker.ok("order.place", limit("BUY", qty="0.00500"), signed=True)
    maker.ok("order.cancel", {"symbol": "BTCUSDT", "origClientOrderId": "x-2"}, signed=True)
    frames = p.render_user_events(venue.poll(), T0_NS)
    seen = set()
    for session_frames in frames.values():
        for text in session_frames:
            msg = json.loads(text)
            assert set(msg) == {"subscriptionId", "event"}
            event = msg["event"]
            parsed = parse_user_event(event, ws.UserDataStreamEventsResponse)  # the SDK's own dispatch
            instance = parsed.actual_instance
            assert isinstance(instance, BaseModel), f"the SDK fell back to the raw payload for {event}"
            assert unknown_fields(type(instance), event) == ["e"]  # the event type is the wrapper's business
            if event["e"] == "executionReport":
                assert isinstance(instance, ws.ExecutionReport)
                assert EXECUTION_REPORT_FIELDS <= set(event) or event["o"] == "MARKET"
                seen.add(event["x"])
                # the streams package carries its own copy of the model; it must agree
                streams.ExecutionReport.model_validate(event)
            else:
                assert isinstance(instance, ws.OutboundAccountPosition)
                seen.add(event["e"])
    assert seen == {"NEW", "TRADE", "CANCELED", "outboundAccountPosition"}


def test_rest_responses_parse_as_sdk_rest_models(setup):
    p, venue, maker, _ = setup
    maker.ok("order.place", limit(), signed=True)
    for path, query, model in (("/api/v3/time", "", rest_models.TimeResponse),
                               ("/api/v3/exchangeInfo", "", rest_models.ExchangeInfoResponse),
                               ("/api/v3/depth", "symbol=BTCUSDT&limit=5", rest_models.DepthResponse)):
        status, headers, body = p.handle_rest("GET", path, query, {}, T0_NS)
        assert status == 200
        obj = json.loads(body)
        parsed = model.from_dict(obj)  # what the SDK's REST client does
        assert parsed.additional_properties == {}
        assert unknown_fields(model, obj) == []
    assert rest_models.DepthResponse.from_dict(obj).asks[0] == ["61837.63000000", "0.01000000"]


def test_market_stream_payloads_parse_as_sdk_stream_models():
    inst = BTCUSDT.instrument
    payloads = [
        (streams.DiffBookDepthResponse,
         depth_update(inst, [LevelChange("BTCUSDT", 5, 1, 6183763, 100, 0),
                             LevelChange("BTCUSDT", 6, -1, 6183800, 0, 0)], T0_NS)),
        (streams.TradeResponse, trade_event(inst, TradePrint("BTCUSDT", 1, 6183763, 100, False, T0_NS), T0_NS)),
        (streams.BookTickerResponse, book_ticker(inst, 9, (6183763, 100), (6183800, 200))),
        (streams.PartialBookDepthResponse, depth_levels(inst, DepthSnapshot("BTCUSDT", 9, [(1, 1)], [(2, 2)]), 5)),
    ]
    for model, payload in payloads:
        model.model_validate_json(dumps(payload))  # as the SDK's stream receive loop does
        assert unknown_fields(model, payload) == []


# -- requests signed by the SDK ------------------------------------------------------------------------------------


def sdk_frame(method: str, params: dict, *, api_key="key-maker-0001", return_rate_limits=True) -> tuple[str, int]:
    """The text the SDK sends for a signed method (``WebsocketAPIBase.send_signed_message`` without a socket):
    parameters in snake_case as the SDK's API methods pass them, camelCased, stringified and signed by
    ``ws_api_payload``. Returns the frame and the timestamp the SDK put in it."""
    config = ConfigurationWebSocketAPI(api_key=api_key, api_secret=KEYS[api_key][0],
                                       return_rate_limits=return_rate_limits)
    payload = {"method": method, "params": dict(params)}
    if not config.return_rate_limits:
        payload["params"].update({"returnRateLimits": False})
    sent = ws_api_payload(config, payload, WebsocketApiOptions(signer=None, api_key=False, is_signed=True,
                                                               skip_auth=False))
    return json.dumps(sent), int(sent["params"]["timestamp"])


def send(p, session, text: str, ts_ms: int) -> dict:
    return json.loads(p.handle_ws_api(session, text, ts_ms * MS + 7 * MS)[0])


def test_requests_signed_by_the_sdk_verify():
    p, venue = make_protocol()
    session = p.open_session(T0_NS)
    text, ts = sdk_frame("order.place", {
        "symbol": "BTCUSDT", "side": ws_enums.OrderPlaceSideEnum["SELL"], "type": ws_enums.OrderPlaceTypeEnum["LIMIT"],
        "time_in_force": ws_enums.OrderPlaceTimeInForceEnum["GTC"], "price": 61837.63, "quantity": 0.012,
        "new_client_order_id": "sdk-order-1",
        "new_order_resp_type": ws_enums.OrderPlaceNewOrderRespTypeEnum["RESULT"],
        "self_trade_prevention_mode": ws_enums.OrderPlaceSelfTradePreventionModeEnum["EXPIRE_MAKER"],
        "recv_window": 5000,
    })
    resp = send(p, session, text, ts)
    assert resp["status"] == 200, resp
    assert (resp["result"]["price"], resp["result"]["origQty"]) == ("61837.63000000", "0.01200000")
    ws.OrderPlaceResponse.model_validate(resp)
    for method, params in (("order.status", {"symbol": "BTCUSDT", "orig_client_order_id": "sdk-order-1"}),
                           ("openOrders.status", {"symbol": "BTCUSDT"}),
                           ("account.status", {"omit_zero_balances": True}),
                           ("userDataStream.subscribe.signature", {}),
                           ("order.cancel", {"symbol": "BTCUSDT", "order_id": resp["result"]["orderId"]})):
        text, ts = sdk_frame(method, params)
        assert send(p, session, text, ts)["status"] == 200, method
    # the SDK's return_rate_limits=False adds returnRateLimits="false" to what it signs
    text, ts = sdk_frame("account.status", {}, return_rate_limits=False)
    resp = send(p, session, text, ts)
    assert resp["status"] == 200 and "rateLimits" not in resp
    # and a tampered SDK request does not verify
    tampered = json.loads(sdk_frame("order.place", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                    "time_in_force": "GTC", "price": 100.0, "quantity": 0.1})[0])
    tampered["params"]["quantity"] = "0.2"
    assert send(p, session, json.dumps(tampered), tampered["params"]["timestamp"])["error"]["code"] == -1022


def test_sdk_signature_helper_agrees_with_ours():
    """``websocket_api_signature`` (percent-encoded payload) on values that need encoding."""
    from workbench.venue import signing

    config = ConfigurationWebSocketAPI(api_key="key-maker-0001", api_secret="secret-maker")
    params = websocket_api_signature(config, {"symbol": "BTCUSDT", "note": "a b&c=d/é", "timestamp": 1})
    assert signing.verify("secret-maker", dict(params), params["signature"])
    assert not signing.verify("secret-taker", dict(params), params["signature"])
    plain = {"symbol": "BTCUSDT", "timestamp": 1, "apiKey": "key-maker-0001"}
    assert websocket_api_signature(config, dict(plain))["signature"] == signing.sign(
        "secret-maker", signing.signature_payload(plain))


def test_model_check_catches_a_misspelt_field():
    """The field check is what makes the lenient models strict: it must see a typo."""
    assert unknown_fields(ws.OrderStatusResponseResult, {"orderId": 1, "cumulativeQuoteQty": "1"}) == [
        "cumulativeQuoteQty"]
    assert unknown_fields(ws.OrderPlaceResponse, {"result": {"fills": [{"tradeID": 1}]}}) == [
        "result[0].fills[0].tradeID"]
    with pytest.raises(Exception):
        ws.OrderStatusResponse.model_validate({"id": "1", "status": 200, "result": {"orderId": "12"}})

