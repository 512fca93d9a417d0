"""Binance HMAC signatures: the documented worked example, byte for byte, and the two payload spellings."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import pytest

from workbench.venue import signing

# Binance WebSocket API documentation, "SIGNED request example (HMAC)"
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PARAMS = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000000",
              "price": "52000.00", "newOrderRespType": "ACK", "recvWindow": 100, "timestamp": 1645423376532,
              "apiKey": DOC_KEY}
DOC_PAYLOAD = ("apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&newOrderRespType=ACK"
               "&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC"
               "&timestamp=1645423376532&type=LIMIT")
DOC_SIGNATURE = "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"


def test_documented_payload_and_signature():
    assert signing.signature_payload(DOC_PARAMS) == DOC_PAYLOAD
    assert signing.sign(DOC_SECRET, DOC_PAYLOAD) == DOC_SIGNATURE
    assert signing.signature_payload({**DOC_PARAMS, "signature": "ignored"}) == DOC_PAYLOAD
    assert signing.verify(DOC_SECRET, {**DOC_PARAMS, "signature": DOC_SIGNATURE}, DOC_SIGNATURE)
    assert signing.verify(DOC_SECRET, DOC_PARAMS, DOC_SIGNATURE.upper())


@pytest.mark.parametrize("change", [{"price": "52000.0"}, {"recvWindow": 101}, {"side": "BUY"}, {"extra": "1"}])
def test_any_change_breaks_the_signature(change):
    assert not signing.verify(DOC_SECRET, {**DOC_PARAMS, **change}, DOC_SIGNATURE)


def test_wrong_secret_and_junk_signatures():
    assert not signing.verify(DOC_SECRET[:-1] + "x", DOC_PARAMS, DOC_SIGNATURE)
    for junk in ("", "zz", DOC_SIGNATURE[:-1], None, 12):
        assert not signing.verify(DOC_SECRET, DOC_PARAMS, junk)


def test_values_are_rendered_as_sent():
    params = json.loads('{"a": true, "b": false, "c": 7, "d": "x"}')
    assert signing.signature_payload(params) == "a=true&b=false&c=7&d=x"
    kept = signing.loads('{"price": 52000.00, "qty": 1e-5, "n": 3}')
    assert kept == {"price": "52000.00", "qty": "1e-5", "n": 3} and isinstance(kept["price"], signing.RawNumber)
    with pytest.raises(ValueError):
        signing.loads('{"x": NaN}')


def test_percent_encoded_payloads_verify_too():
    params = {"apiKey": "k", "timestamp": 1, "note": "a b&c=d/é"}
    plain = signing.signature_payload(params)
    encoded = signing.signature_payload(params, encode=quote_plus)
    assert plain != encoded and "a+b%26c%3Dd%2F%C3%A9" in encoded
    assert signing.verify("s", params, signing.sign("s", plain))
    assert signing.verify("s", params, signing.sign("s", encoded))
    assert not signing.verify("s", params, signing.sign("s", encoded + "x"))
