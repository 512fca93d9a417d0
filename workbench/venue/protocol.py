"""The Binance Spot protocol surface of the simulated venue, sans-I/O: text and requests in, text out.

Like the protocol core of ``websockets``, nothing here touches a socket, a thread, an event loop or the wall clock:
the server hands over each received frame or HTTP request with the time, and sends what comes back. Three
surfaces, each a pure function of its input, the venue and a small per-connection state:

- **WebSocket API** (``/ws-api/v3``): :meth:`Protocol.open_session` when a connection opens,
  :meth:`Protocol.handle_ws_api` for every text frame (returns the frames to send back on that connection),
  :meth:`Protocol.render_user_events` for what :meth:`Venue.poll` reported (returns, per connection, the
  ``{"subscriptionId", "event"}`` frames of the accounts it subscribed to), :meth:`Protocol.close_session`
  when it closes.
- **REST** (``/api/v3/...``): :meth:`Protocol.handle_rest` returns ``(status, headers, body)``.
- **Market streams** (``/ws/<stream>``, ``/stream?streams=a/b``): :func:`stream_session` makes a
  :class:`StreamSession` from the request target, :meth:`StreamSession.handle_control` answers SUBSCRIBE,
  UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY and GET_PROPERTY, :meth:`StreamSession.frame` wraps a payload
  for that connection (raw or combined), and the builders :func:`depth_update`, :func:`trade_event`,
  :func:`book_ticker`, :func:`depth_levels` render venue events as Binance payloads.

Conventions. Messages are Binance's, field for field, checked against Binance's documentation and the pydantic
models of the official SDK (``binance-sdk-spot``). Decimals are rendered exactly with at least 8 decimal places
(``"61837.63000000"``); a value finer than that keeps its extra digits rather than being rounded (quote amounts
are integers of tick x lot, e.g. 1e-10 USDT). Times in messages are epoch milliseconds (``now_ns // 1_000_000``).
Wrong input is answered as Binance answers it (a status, a code and a message) and leaves the connection usable;
nothing a client sends raises. Secrets never appear in a repr, a message or an exception.

Faults come from :class:`Faults` (``protocol.faults``): answer a method with an error, or execute it and answer
"execution status unknown" (5xx), as the venue server's fault switches ask.

Where this differs from Binance, knowingly:

- Only LIMIT, MARKET and LIMIT_MAKER orders (others: Binance's "... orders are not supported for this symbol.");
  no ``quoteOrderQty``, iceberg, stop or peg parameters. ``strategyId``/``strategyType`` are accepted, not echoed.
- ``selfTradePreventionMode`` is validated but every order reports ``config.stp_mode``.
- Commissions are charged in the quote asset (Binance charges a buyer in the base asset).
- The unfilled order count (ORDERS) counts every accepted order; Binance lets fills decrement it.
- HMAC keys only: ``session.logon`` and ``userDataStream.subscribe`` (Ed25519 session auth) answer -1020;
  clients use ``userDataStream.subscribe.signature``. A second subscription of the same account on one
  connection, or one beyond the per-connection limits, is answered 400/-1020 (Binance's code for these is not
  documented). An unknown method is answered 400/-1020 "This operation is not supported." (also undocumented).
- Unparsable JSON is answered ``{"id": null, "status": 400, "error": {"code": -1135, "msg": "Invalid JSON
  Request"}}`` (-1135 INVALID_JSON, errors.md). The -1135 answer to a bad ``id`` is Binance's, as reported from
  the live API; the ``'params'`` and ``'method'`` answers follow its wording.
- Signatures are accepted in the plain and in the percent-encoded spelling (see :mod:`workbench.venue.signing`).
- Every response carries ``rateLimits`` (unless ``returnRateLimits`` is false), also ``session.*`` and
  ``userDataStream.*``, whose documented examples show none: the official SDK reads ``rateLimits`` from every
  response and fails without it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import parse_qsl, urlsplit

import orjson

from workbench.exceptions import ConfigError
from workbench.instrument import Instrument, int_to_decimal
from workbench.venue import signing
from workbench.venue.api import (
    CancelResult,
    DepthSnapshot,
    ExecutionReport,
    FeeSchedule,
    Fill,
    LevelChange,
    OrderRequest,
    OrderType,
    OrderView,
    SymbolSpec,
    TimeInForce,
    TradePrint,
    Venue,
)
from workbench.venue.ratelimit import Limit, LimitTable

__all__ = [
    "Protocol",
    "ProtocolConfig",
    "ApiSession",
    "Faults",
    "RestResponse",
    "StreamName",
    "StreamSession",
    "parse_stream",
    "stream_session",
    "depth_update",
    "depth_update_json",
    "trade_event",
    "book_ticker",
    "depth_levels",
    "combined",
    "server_shutdown",
    "dumps",
    "format_decimal",
]

_MS = 1_000_000  # ns per ms


def dumps(obj) -> str:
    """Compact JSON text of a message (orjson keeps insertion order, so fields stay in Binance's order)."""
    return orjson.dumps(obj).decode()


# -- decimals --------------------------------------------------------------------------------------------------


def format_decimal(value: int, digits: int, units: int = 1, min_places: int = 8) -> str:
    """Exact decimal text of ``value * units / 10**digits`` with at least ``min_places`` decimals.

    ``format_decimal(6183763, 2) == "61837.63000000"``; digits beyond ``min_places`` are kept only while nonzero
    (``format_decimal(7630763542, 10) == "0.7630763542"``): never rounded.
    """
    s = int_to_decimal(value, digits, units)
    if digits == 0:
        return f"{s}.{'0' * min_places}"
    if digits < min_places:
        return s + "0" * (min_places - digits)
    if digits > min_places:
        head, frac = s.split(".")
        frac = frac[:min_places] + frac[min_places:].rstrip("0")
        return f"{head}.{frac}"
    return s


class _Scale:
    """Renders integers of one increment as Binance decimals; the texts of recent values are remembered (a book's
    prices and sizes recur all day, and formatting was half the cost of a depth message)."""

    __slots__ = ("digits", "units", "_memo")

    _MEMO_MAX = 1 << 16

    def __init__(self, digits: int, units: int) -> None:
        self.digits = digits
        self.units = units
        self._memo: dict[int, str] = {}

    @classmethod
    def of(cls, increment: str) -> "_Scale":
        d = Decimal(increment).normalize()
        digits = max(0, -int(d.as_tuple().exponent))
        return cls(digits, int(d.scaleb(digits)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Scale) and (self.digits, self.units) == (other.digits, other.units)

    def __hash__(self) -> int:
        return hash((self.digits, self.units))

    def __repr__(self) -> str:
        return f"_Scale(digits={self.digits}, units={self.units})"

    def text(self, value: int) -> str:
        t = self._memo.get(value)
        if t is None:
            t = format_decimal(value, self.digits, self.units)
            if len(self._memo) >= self._MEMO_MAX:
                self._memo.clear()
            self._memo[value] = t
        return t


@lru_cache(maxsize=256)
def _scales(instrument: Instrument) -> tuple[_Scale, _Scale, _Scale]:
    """(price, size, quote) scales; a quote amount is an integer of tick x lot."""
    px, qty = _Scale.of(instrument.tick_size), _Scale.of(instrument.lot_size)
    return px, qty, _Scale(px.digits + qty.digits, px.units * qty.units)


def _side(side: int) -> str:
    return "BUY" if side > 0 else "SELL"


def _ms(ns: int) -> int:
    return ns // _MS


# -- market data builders (pure) -------------------------------------------------------------------------------


def depth_update(instrument: Instrument, changes: Sequence[LevelChange], event_ns: int) -> dict:
    """A ``depthUpdate`` (diff depth stream) of one batch of level changes of one symbol.

    ``U``/``u`` are the first and last update ids of the batch; a level changed twice in the batch appears once
    with its last size (absolute sizes; ``"0.00000000"`` deletes the level).
    """
    return orjson.loads(depth_update_json(instrument, changes, event_ns))


def depth_update_json(instrument: Instrument, changes: Sequence[LevelChange], event_ns: int) -> str:
    """:func:`depth_update` as JSON text, assembled directly (the hot path of the diff depth streams)."""
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    first = last = changes[0].update_id
    for ch in changes:
        (bids if ch.side > 0 else asks)[ch.px_ticks] = ch.qty_lots
        u = ch.update_id
        lo = u if ch.first_update_id is None else ch.first_update_id  # a replayed diff's U
        if lo < first:
            first = lo
        if u > last:
            last = u
    return depth_diff_json(instrument, first, last, bids, asks, event_ns)


def depth_diff_json(instrument: Instrument, first: int, last: int, bids: Mapping[int, int], asks: Mapping[int, int],
                    event_ns: int) -> str:
    """A ``depthUpdate`` of changes already conflated: update ids ``first``..``last``, ``{px_ticks: qty_lots}`` per
    side in the order the levels first changed (what :func:`depth_update_json` makes of the changes)."""
    px, qty, _ = _scales(instrument)
    pt, qt = px.text, qty.text
    b = ",".join(f'["{pt(p)}","{qt(q)}"]' for p, q in bids.items())
    a = ",".join(f'["{pt(p)}","{qt(q)}"]' for p, q in asks.items())
    return (f'{{"e":"depthUpdate","E":{event_ns // _MS},"s":{_symbol_json(instrument)},"U":{first},"u":{last},'
            f'"b":[{b}],"a":[{a}]}}')


def depth_updates_json(instrument: Instrument, update_ids: Sequence[int], sides: Sequence[int],
                       pxs: Sequence[int], qtys: Sequence[int], event_ns: int) -> list[str]:
    """One ``depthUpdate`` per run of consecutive changes sharing an update id, in one pass: the same texts as
    :func:`depth_update_json` of each run (changes given as columns: update id, side, px_ticks, qty_lots)."""
    px, qty, _ = _scales(instrument)
    pt, qt = px.text, qty.text
    pm, qm = px._memo, qty._memo
    head = f'{{"e":"depthUpdate","E":{event_ns // _MS},"s":{_symbol_json(instrument)},"U":'
    out: list[str] = []
    append = out.append
    n = len(update_ids)
    i = 0
    while i < n:
        u = update_ids[i]
        j = i + 1
        if j < n and update_ids[j] == u:  # several changes under one id: conflate them
            while j < n and update_ids[j] == u:
                j += 1
            bids: dict[int, int] = {}
            asks: dict[int, int] = {}
            for k in range(i, j):
                (bids if sides[k] > 0 else asks)[pxs[k]] = qtys[k]
            append(depth_diff_json(instrument, u, u, bids, asks, event_ns))
        else:
            p, q = pxs[i], qtys[i]
            level = f'["{pm.get(p) or pt(p)}","{qm.get(q) or qt(q)}"]'
            if sides[i] > 0:
                append(f'{head}{u},"u":{u},"b":[{level}],"a":[]}}')
            else:
                append(f'{head}{u},"u":{u},"b":[],"a":[{level}]}}')
        i = j
    return out


@lru_cache(maxsize=256)
def _symbol_json(instrument: Instrument) -> str:
    return orjson.dumps(instrument.symbol).decode()


def trade_event(instrument: Instrument, trade: TradePrint, event_ns: int) -> dict:
    """A ``trade`` stream event (``m``: the buyer was the maker)."""
    px, qty, _ = _scales(instrument)
    return {
        "e": "trade",
        "E": _ms(event_ns),
        "s": instrument.symbol,
        "t": trade.trade_id,
        "p": px.text(trade.px_ticks),
        "q": qty.text(trade.qty_lots),
        "T": _ms(trade.ts_ns),
        "m": trade.buyer_is_maker,
        "M": True,
    }


def book_ticker(instrument: Instrument, update_id: int, bid: tuple[int, int], ask: tuple[int, int]) -> dict:
    """A ``bookTicker`` event; ``bid``/``ask`` are ``(px_ticks, qty_lots)`` (``(0, 0)`` for an empty side)."""
    px, qty, _ = _scales(instrument)
    return {
        "u": update_id,
        "s": instrument.symbol,
        "b": px.text(bid[0]),
        "B": qty.text(bid[1]),
        "a": px.text(ask[0]),
        "A": qty.text(ask[1]),
    }


def depth_levels(instrument: Instrument, snapshot: DepthSnapshot, limit: int | None = None) -> dict:
    """``{"lastUpdateId", "bids", "asks"}``: the REST/WS-API ``depth`` result and the partial depth stream payload
    (``<sym>@depth<levels>``), best levels first, at most ``limit`` per side."""
    px, qty, _ = _scales(instrument)
    bids = snapshot.bids if limit is None else snapshot.bids[:limit]
    asks = snapshot.asks if limit is None else snapshot.asks[:limit]
    return {
        "lastUpdateId": snapshot.last_update_id,
        "bids": [[px.text(p), qty.text(q)] for p, q in bids],
        "asks": [[px.text(p), qty.text(q)] for p, q in asks],
    }


def combined(stream: str, payload: str) -> str:
    """The combined-stream wrapper ``{"stream": ..., "data": ...}`` around an already serialized payload."""
    return f'{{"stream":{orjson.dumps(stream).decode()},"data":{payload}}}'


def server_shutdown(now_ns: int) -> str:
    """The WebSocket API's ``serverShutdown`` event (clients reconnect on it; the SDK does)."""
    return dumps({"event": {"e": "serverShutdown", "E": _ms(now_ns)}})


# -- market stream connections --------------------------------------------------------------------------------

_STREAM_RE = re.compile(r"^([a-z0-9]{1,20})@(trade|bookTicker|depth(5|10|20)?(?:@(100|1000)ms)?)$")
_STREAM_ID_RE = re.compile(r"^[a-zA-Z0-9-]{1,36}$")  # the official SDK sends UUIDs
_STREAM_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class StreamName:
    """A parsed market stream name.

    ``kind`` is ``"trade"``, ``"bookTicker"``, ``"depth"`` (diff depth) or ``"partialDepth"`` (``levels`` 5, 10 or
    20); ``interval_ms`` is the push interval of depth streams (1000 unless ``@100ms``), 0 for real-time streams.
    """

    name: str
    symbol: str  # upper case, as in the venue
    kind: str
    levels: int = 0
    interval_ms: int = 0


def parse_stream(name: str) -> StreamName | None:
    """``"btcusdt@depth@100ms"`` -> StreamName, None if not a stream this venue serves (names are lower case)."""
    m = _STREAM_RE.match(name) if isinstance(name, str) else None
    if m is None:
        return None
    sym, body, levels, speed = m.group(1), m.group(2), m.group(3), m.group(4)
    if body in ("trade", "bookTicker"):
        return StreamName(name, sym.upper(), body)
    interval = int(speed) if speed else 1000
    if levels:
        return StreamName(name, sym.upper(), "partialDepth", int(levels), interval)
    return StreamName(name, sym.upper(), "depth", 0, interval)


class StreamSession:
    """The state of one market-stream connection: its streams (at most ``max_streams``) and the combined flag."""

    __slots__ = ("combined", "max_streams", "_streams")

    def __init__(self, streams: Iterable[StreamName] = (), *, combined: bool = False, max_streams: int = 1024):
        self.combined = combined
        self.max_streams = max_streams
        self._streams: dict[str, StreamName] = {s.name: s for s in streams}

    def __repr__(self) -> str:
        return f"StreamSession(combined={self.combined}, streams={list(self._streams)})"

    @property
    def streams(self) -> list[StreamName]:
        return list(self._streams.values())

    def wants(self, stream: str) -> bool:
        return stream in self._streams

    def frame(self, stream: str, payload: str) -> str | None:
        """The text frame carrying ``payload`` of ``stream`` on this connection, None if not subscribed."""
        if stream not in self._streams:
            return None
        return combined(stream, payload) if self.combined else payload

    def frames(self, stream: str, payloads: list[str]) -> list[str] | None:
        """:meth:`frame` of each payload (the list itself on a raw connection), None if not subscribed."""
        if stream not in self._streams:
            return None
        return [combined(stream, p) for p in payloads] if self.combined else payloads

    def handle_control(self, text: str) -> list[str]:
        """Answer one text frame received on a market-stream connection (Binance's live subscribing)."""
        try:
            req = signing.loads(text)
        except ValueError as exc:
            line, col = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
            return [self._error(None, 3, f"Invalid JSON: expected value at line {line} column {col}")]
        if not isinstance(req, dict):
            return [self._error(None, 3, "Invalid JSON: expected value at line 1 column 1")]
        rid = req.get("id")
        if "id" not in req or not _stream_id_ok(rid):
            return [self._error(None, 2, "Invalid request: request ID must be an unsigned integer")]
        method = req.get("method")
        if "method" not in req:
            return [self._error(rid, 2, f"Invalid request: missing field `method` at line 1 column {len(text)}")]
        if method not in _STREAM_METHODS:
            col = text.find(orjson.dumps(method).decode()) + len(orjson.dumps(method))
            expected = ", ".join(f"`{m}`" for m in _STREAM_METHODS)
            return [self._error(rid, 2, f"Invalid request: unknown variant `{method}`, expected one of {expected} "
                                        f"at line 1 column {max(col, 1)}")]
        params = req.get("params", [])
        if not isinstance(params, list):
            return [self._error(rid, 2, "Invalid request: invalid type: expected a sequence")]
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            names = []
            for p in params:
                s = parse_stream(p)
                if s is None:
                    return [self._error(rid, 2, "Invalid request: invalid stream")]
                names.append(s)
            if method == "SUBSCRIBE":
                new = {s.name: s for s in names if s.name not in self._streams}
                if len(self._streams) + len(new) > self.max_streams:
                    return [self._error(rid, 2, f"Invalid request: too many streams; limit is {self.max_streams}")]
                self._streams.update(new)
            else:
                for s in names:
                    self._streams.pop(s.name, None)
            return [dumps({"result": None, "id": rid})]
        if method == "LIST_SUBSCRIPTIONS":
            if params:
                return [self._error(rid, 2, "Invalid request: too many parameters")]
            return [dumps({"result": list(self._streams), "id": rid})]
        # SET_PROPERTY / GET_PROPERTY: the only property is "combined"
        if not params or not isinstance(params[0], str):
            return [self._error(rid, 2, "Invalid request: property name must be a string")]
        if params[0] != "combined":
            return [self._error(rid, 0, "Unknown property")]
        if method == "GET_PROPERTY":
            if len(params) != 1:
                return [self._error(rid, 2, "Invalid request: too many parameters")]
            return [dumps({"result": self.combined, "id": rid})]
        if len(params) != 2:
            return [self._error(rid, 2, "Invalid request: too many parameters")]
        if not isinstance(params[1], bool):
            return [self._error(rid, 1, "Invalid value type: expected Boolean")]
        self.combined = params[1]
        return [dumps({"result": None, "id": rid})]

    @staticmethod
    def _error(rid, code: int, msg: str) -> str:
        return dumps({"error": {"code": code, "msg": msg}, "id": rid})


def _stream_id_ok(rid) -> bool:
    if rid is None:
        return True
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return _INT64[0] <= rid <= _INT64[1]
    return isinstance(rid, str) and not isinstance(rid, signing.RawNumber) and bool(_STREAM_ID_RE.match(rid))


def stream_session(target: str, *, max_streams: int = 1024) -> StreamSession | None:
    """The :class:`StreamSession` of a market-stream request target, None if the target is not one.

    ``/ws`` and ``/ws/<stream>[/<stream>...]`` are raw streams, ``/stream?streams=<a>/<b>`` combined ones.
    """
    parts = urlsplit(target)
    path = parts.path.rstrip("/")
    if path == "/ws" or path.startswith("/ws/"):
        names, is_combined = [n for n in path[4:].split("/") if n], False
    elif path == "/stream":
        q = dict(parse_qsl(parts.query, keep_blank_values=True))
        names, is_combined = [n for n in q.get("streams", "").split("/") if n], True
    else:
        return None
    parsed = [parse_stream(n) for n in names]
    if any(p is None for p in parsed) or len(parsed) > max_streams:
        return None
    return StreamSession(parsed, combined=is_combined, max_streams=max_streams)


# -- configuration, faults, sessions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolConfig:
    """Limits and advertised values of the Binance surface. Defaults are Binance's documented figures.

    Rate limits: ``request_weight_per_minute`` per client address; ``orders_per_10s`` and ``orders_per_day`` per
    account (the unfilled order count; it is not decremented by fills here). ``raw_requests_per_5min`` and
    ``connections_per_5min`` are advertised in ``exchangeInfo`` only. ``recv_window_*_ms``: the signed-request
    time window (default 5000, at most 60000, timestamps at most ``future_tolerance_ms`` ahead).
    ``connect_weight``: request weight of opening a WebSocket API connection. ``stp_mode``: the
    selfTradePreventionMode reported for every order. ``max_price``: PRICE_FILTER maxPrice (decimal string).
    ``max_notional``: NOTIONAL maxNotional (decimal string, advertised only). Subscriptions: at most
    ``max_subscriptions`` active and ``max_lifetime_subscriptions`` ever per connection. ``trade_history``: fills
    kept per keyed account for ``myTrades`` (the oldest go first).
    """

    request_weight_per_minute: int = 6000
    orders_per_10s: int = 50
    orders_per_day: int = 160_000
    raw_requests_per_5min: int = 61_000
    connections_per_5min: int = 300
    default_recv_window_ms: int = 5000
    max_recv_window_ms: int = 60_000
    future_tolerance_ms: int = 1000
    connect_weight: int = 2
    stp_mode: str = "NONE"
    max_price: str = "1000000"
    max_notional: str = "9000000"
    max_subscriptions: int = 1000
    max_lifetime_subscriptions: int = 65535
    trade_history: int = 100_000


#: Binance's wording for the codes a fault or a venue rejection may carry without a message of its own.
_MESSAGES = {
    -1000: "An unknown error occurred while processing the request.",
    -1001: "Internal error; unable to process your request. Please try again.",
    -1002: "You are not authorized to execute this request.",
    -1003: "Too many requests queued.",
    -1006: "An unexpected response was received from the message bus. Execution status unknown.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
    -1008: "Server is currently overloaded with other requests. Please try again in a few minutes.",
    -1013: "The request is rejected by the API.",
    -1015: "Too many new orders.",
    -1016: "This service is no longer available.",
    -1020: "This operation is not supported.",
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -1022: "Signature for this request is not valid.",
    -1121: "Invalid symbol.",
    -2010: "NEW_ORDER_REJECTED",
    -2011: "Unknown order sent.",
    -2013: "Order does not exist.",
    -2014: "API-key format invalid.",
    -2015: "Invalid API-key, IP, or permissions for action.",
}


def _status_of(code: int) -> int:
    """The HTTP-like status Binance pairs with an error code."""
    if code in (-1003, -1015):
        return 429
    if code in (-1002, -2014, -2015):
        return 401
    if code in (-1006, -1007, -1008):
        return 503
    if code in (-1000, -1001):
        return 500
    return 400


@dataclass(slots=True)
class _Fault:
    code: int
    msg: str
    status: int
    remaining: int | None  # None: until cleared
    unknown: bool          # execute the request, then answer with this error


class Faults:
    """Fault switches consulted on every request, keyed by WebSocket API method (``"order.place"``) or REST path
    (``"/api/v3/depth"``).

    - :meth:`fail`: answer the next ``times`` requests with an error; the request is *not* executed.
    - :meth:`unknown_status`: execute the next ``times`` requests, then answer "execution status unknown"
      (status 5xx, code -1006 or -1007): the order may be live although the client was told nothing.
    """

    def __init__(self) -> None:
        self._faults: dict[str, _Fault] = {}

    def __repr__(self) -> str:
        return f"Faults({sorted(self._faults)})"

    def __bool__(self) -> bool:
        return bool(self._faults)

    def fail(self, method: str, code: int, msg: str | None = None, *, status: int | None = None,
             times: int | None = 1) -> None:
        """Answer ``method`` with ``code`` (Binance's message and status for it unless given); ``times=None``:
        until cleared."""
        self._faults[method] = _Fault(code, msg or _MESSAGES.get(code, _MESSAGES[-1000]),
                                      status or _status_of(code), times, False)

    def unknown_status(self, method: str = "order.place", *, code: int = -1006, msg: str | None = None,
                       status: int = 503, times: int | None = 1) -> None:
        """Execute ``method``, then answer ``code`` (-1006 UNEXPECTED_RESP or -1007 TIMEOUT) with a 5xx status."""
        self._faults[method] = _Fault(code, msg or _MESSAGES.get(code, _MESSAGES[-1006]), status, times, True)

    def clear(self, method: str | None = None) -> None:
        if method is None:
            self._faults.clear()
        else:
            self._faults.pop(method, None)

    def take(self, method: str) -> _Fault | None:
        """The fault for this request, if any (counts it down)."""
        f = self._faults.get(method)
        if f is None:
            return None
        if f.remaining is not None:
            f.remaining -= 1
            if f.remaining <= 0:
                del self._faults[method]
        return f


class ApiSession:
    """The state of one WebSocket API connection (bounded: its user data subscriptions only)."""

    __slots__ = ("id", "client", "connected_ns", "return_rate_limits", "_subs", "_lifetime_subs", "closed")

    def __init__(self, sid: int, client: str, connected_ns: int, return_rate_limits: bool) -> None:
        self.id = sid
        self.client = client
        self.connected_ns = connected_ns
        self.return_rate_limits = return_rate_limits
        self._subs: dict[int, int] = {}  # subscriptionId -> account
        self._lifetime_subs = 0
        self.closed = False

    def __repr__(self) -> str:
        return f"ApiSession(id={self.id}, client={self.client!r}, subscriptions={sorted(self._subs)})"

    @property
    def subscriptions(self) -> dict[int, int]:
        """subscriptionId -> account of the active user data stream subscriptions."""
        return dict(self._subs)


class _Key:
    __slots__ = ("secret", "account", "_inner", "_outer")

    def __init__(self, secret: str, account: int) -> None:
        self.secret = secret
        self.account = account
        # HMAC-SHA256 (RFC 2104) with the keyed inner and outer hash states made once: a signature then costs two
        # hash copies instead of a key schedule (hmac.digest redoes it on every call)
        k = secret.encode()
        if len(k) > 64:
            k = hashlib.sha256(k).digest()
        k = k.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))

    def hmac_hex(self, payload: bytes) -> str:
        """``signing.sign(secret, payload)`` for an encoded payload."""
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:
        return f"_Key(account={self.account}, secret=<redacted>)"


class RestResponse(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _ApiError(Exception):
    """An answer other than success; internal control flow of the handlers, never raised to callers."""

    def __init__(self, status: int, code: int, msg: str, data: dict | None = None) -> None:
        super().__init__(code, msg)
        self.status, self.code, self.msg, self.data = status, code, msg, data


def _err(code: int, msg: str | None = None, status: int | None = None, data: dict | None = None) -> _ApiError:
    return _ApiError(status or _status_of(code), code, msg or _MESSAGES.get(code, ""), data)


# -- parameter reading -----------------------------------------------------------------------------------------

_DECIMAL_LEGAL = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_DECIMAL_RE = re.compile(_DECIMAL_LEGAL)
_INT_LEGAL = r"^[0-9]{1,20}$"
_INT_RE = re.compile(_INT_LEGAL)
_RECV_WINDOW_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,3})?$")
_CLIENT_ID_LEGAL = r"^[a-zA-Z0-9-_]{1,36}$"
_CLIENT_ID_RE = re.compile(_CLIENT_ID_LEGAL)
_SYMBOL_LEGAL = r"^[A-Z0-9-_.]{1,20}$"
_SYMBOL_RE = re.compile(_SYMBOL_LEGAL)
_TYPE_RE = re.compile(r"^[A-Z_]{1,20}$")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _plain_signature_ok(key: _Key, params: Mapping[str, object], signature: str) -> bool:
    """Whether ``signature`` signs the plain payload of ``params`` (the first spelling ``signing.verify`` tries, and
    the one clients send): one-shot HMAC, the payload built inline. False sends the caller to ``signing.verify``."""
    if not isinstance(signature, str):
        return False
    text_of = signing.param_text
    payload = "&".join([f"{k}={v if v.__class__ is str else text_of(v)}" for k in sorted(params) if k != "signature"
                        for v in (params[k],)])
    return hmac.compare_digest(key.hmac_hex(payload.encode()).encode(), signature.lower().encode())


def _mandatory(name: str) -> _ApiError:
    return _err(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _illegal(name: str, legal: str) -> _ApiError:
    return _err(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


class _Params:
    """Typed reads of request parameters, remembering which were read (Binance rejects unread ones, -1104)."""

    __slots__ = ("raw", "read")

    def __init__(self, raw: Mapping) -> None:
        self.raw = raw
        self.read: set[str] = set()

    def _get(self, name: str, required: bool):
        self.read.add(name)
        v = self.raw.get(name)
        if v is None or v == "":
            if required:
                raise _mandatory(name)
            return None
        return v

    def has(self, name: str) -> bool:
        v = self.raw.get(name)
        return v is not None and v != ""

    def string(self, name: str, *, required: bool = False, regex=None, legal: str = "") -> str | None:
        v = self._get(name, required)
        if v is None:
            return None
        if not isinstance(v, str) or isinstance(v, signing.RawNumber) or (regex is not None and not regex.match(v)):
            raise _illegal(name, legal)
        return v

    def decimal(self, name: str, *, required: bool = False) -> str | None:
        v = self._get(name, required)
        if v is None:
            return None
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            v = str(v)
        if not isinstance(v, str) or not _DECIMAL_RE.match(v):
            raise _illegal(name, _DECIMAL_LEGAL)
        return v

    def integer(self, name: str, *, required: bool = False) -> int | None:
        v = self._get(name, required)
        if v is None:
            return None
        if isinstance(v, bool):
            raise _illegal(name, _INT_LEGAL)
        if isinstance(v, int):
            if v < 0:
                raise _illegal(name, _INT_LEGAL)
            return v
        if isinstance(v, str) and not isinstance(v, signing.RawNumber) and _INT_RE.match(v):
            return int(v)
        raise _illegal(name, _INT_LEGAL)

    def boolean(self, name: str) -> bool | None:
        v = self._get(name, False)
        if v is None:
            return None
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise _illegal(name, "true, false")

    def enum(self, name: str, values: Sequence[str], *, required: bool = False, code: int = -1100,
             msg: str | None = None) -> str | None:
        v = self._get(name, required)
        if v is None:
            return None
        if not isinstance(v, str) or v not in values:
            if code == -1100:
                raise _illegal(name, ", ".join(values))
            raise _err(code, msg)
        return v

    def symbol(self, *, required: bool = True) -> str | None:
        return self.string("symbol", required=required, regex=_SYMBOL_RE, legal=_SYMBOL_LEGAL)

    def finish(self) -> None:
        """-1104 if a parameter was sent that no read asked for."""
        sent = len(self.raw)
        unread = [k for k in self.raw if k not in self.read]
        if unread:
            raise _err(-1104, f"Not all sent parameters were read; read '{sent - len(unread)}' parameter(s) but "
                              f"was sent '{sent}'.")


# -- the protocol ----------------------------------------------------------------------------------------------

_ID_MSG = "Invalid 'id' in JSON request; expected an integer, a string matching '^[a-zA-Z0-9-_]{1,36}$', or null."
_ID_RE = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
_ORDER_TYPES = ("LIMIT", "MARKET", "LIMIT_MAKER")
_UNSUPPORTED_TYPES = {
    "STOP_LOSS": "Stop loss orders are not supported for this symbol.",
    "STOP_LOSS_LIMIT": "Stop loss limit orders are not supported for this symbol.",
    "TAKE_PROFIT": "Take profit orders are not supported for this symbol.",
    "TAKE_PROFIT_LIMIT": "Take profit limit orders are not supported for this symbol.",
}
_TIFS = ("GTC", "IOC", "FOK")
_ORDER_TYPE_OF = {t.name: t for t in OrderType}  # OrderType[name] without the enum machinery
_TIF_OF = {t.name: t for t in TimeInForce}
_RESP_TYPES = ("ACK", "RESULT", "FULL")
_STP_MODES = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT")
_MAX_CANCEL_IDS = 65536
_MEMO_MAX = 1 << 16


def _remember(memo: dict, key, value) -> None:
    """``memo[key] = value`` in a memo bounded by ``_MEMO_MAX`` entries (emptied when full)."""
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[key] = value


@dataclass(frozen=True, slots=True)
class _SymbolFormat:
    spec: SymbolSpec
    px: _Scale
    qty: _Scale
    quote: _Scale
    max_px_ticks: int


class _Ctx:
    """One request being handled."""

    __slots__ = ("session", "now_ns", "venue_ns", "order_windows")

    def __init__(self, session: ApiSession, now_ns: int, venue_ns: int) -> None:
        self.session, self.now_ns, self.venue_ns = session, now_ns, venue_ns
        self.order_windows = None  # the ORDERS windows, once an order.place counted against them


class Protocol:
    """Binance Spot messages in front of a :class:`~workbench.venue.api.Venue`.

    Parameters
    ----------
    venue : the sans-I/O venue; its ``symbols`` are read once, here.
    keys : API key -> ``(secret, account)``, or an iterable of objects with ``key``, ``secret`` and ``account``
        (:class:`workbench.venue.keys.ApiKey`). Secrets are kept out of reprs and messages.
    config : limits and advertised values (:class:`ProtocolConfig`).
    faults : fault switches (a new :class:`Faults` if omitted), also reachable as ``protocol.faults``.
    """

    def __init__(self, venue: Venue, *, keys: Mapping[str, tuple[str, int]] | Iterable,
                 config: ProtocolConfig | None = None, faults: Faults | None = None) -> None:
        self.venue = venue
        self.config = cfg = config or ProtocolConfig()
        self.faults = faults if faults is not None else Faults()
        if isinstance(keys, Mapping):
            self._keys = {k: _Key(secret, int(account)) for k, (secret, account) in keys.items()}
        else:
            self._keys = {k.key: _Key(k.secret, int(k.account)) for k in keys}
        self._symbols: dict[str, _SymbolFormat] = {}
        self._asset_scales: dict[str, _Scale] = {}
        for name, spec in venue.symbols.items():
            px, qty, quote = _scales(spec.instrument)
            try:
                max_px = spec.instrument.px_to_ticks(cfg.max_price)
            except ValueError as exc:
                raise ConfigError(f"max_price {cfg.max_price!r} is not a whole number of ticks of {name}") from exc
            self._symbols[name] = _SymbolFormat(spec, px, qty, quote, max_px)
            for asset, scale in ((spec.base_asset, qty), (spec.quote_asset, quote)):
                if self._asset_scales.setdefault(asset, scale) != scale:
                    raise ConfigError(f"asset {asset} has two different units across symbols; the venue's balances "
                                      f"would be ambiguous")
        w = Limit("REQUEST_WEIGHT", "MINUTE", 1, cfg.request_weight_per_minute)
        o10 = Limit("ORDERS", "SECOND", 10, cfg.orders_per_10s)
        oday = Limit("ORDERS", "DAY", 1, cfg.orders_per_day)
        self._weight = LimitTable((w,))
        self._orders = LimitTable((o10, oday))
        self._rest_limits = [w.info(), o10.info(), oday.info(),
                             Limit("RAW_REQUESTS", "MINUTE", 5, cfg.raw_requests_per_5min).info()]
        self._ws_limits = [w.info(), o10.info(), oday.info(),
                           Limit("CONNECTIONS", "MINUTE", 5, cfg.connections_per_5min).info()]
        self._session_ids = itertools.count(1)
        # one JSON decoder for every request (json.loads with options builds a decoder per call); its hook notes a
        # duplicate key in any object of the request being decoded
        self._dup_keys: list[bool] = []
        dup_keys = self._dup_keys

        def pairs(items):
            d = dict(items)
            if len(d) != len(items):
                dup_keys.append(True)
            return d

        self._decoder = json.JSONDecoder(parse_float=signing.RawNumber, parse_constant=_reject_constant,
                                         object_pairs_hook=pairs)
        self._limit_info: dict[int, tuple[Limit, dict]] = {}  # id(limit) -> (limit, its exchangeInfo entry)
        self._units: dict[str, tuple[dict[str, int], dict[str, int]]] = {}  # symbol -> (price, size) memos
        self._subscribers: dict[int, dict[ApiSession, int]] = {}  # account -> session -> subscriptionId
        self._cancel_ids: dict[tuple[int, int], str] = {}        # (account, orderId) -> clientOrderId of the cancel
        self._cancel_seq = itertools.count(1)
        self._exec_ids = itertools.count(1)
        # each keyed account's fills (myTrades), oldest first, bounded: (symbol, Fill, side, orderId)
        self._trades: dict[int, deque] = {k.account: deque(maxlen=cfg.trade_history) for k in self._keys.values()}
        self._methods = {
            "ping": (self._ping, lambda p: 1),
            "time": (self._time, lambda p: 1),
            "exchangeInfo": (self._ws_exchange_info, lambda p: 20),
            "depth": (self._ws_depth, lambda p: _depth_weight(p.get("limit"))),
            "order.place": (self._order_place, lambda p: 1),
            "order.test": (self._order_test, lambda p: 1),
            "order.cancel": (self._order_cancel, lambda p: 1),
            "openOrders.cancelAll": (self._cancel_all, lambda p: 1),
            "order.status": (self._order_status, lambda p: 4),
            "openOrders.status": (self._open_orders, lambda p: 6 if p.get("symbol") else 80),
            "account.status": (self._account_status, lambda p: 20),
            "account.rateLimits.orders": (self._order_limits, lambda p: 40),
            "myTrades": (self._my_trades, lambda p: 5 if p.get("orderId") is not None else 20),
            "userDataStream.subscribe.signature": (self._subscribe, lambda p: 2),
            "userDataStream.subscribe": (self._not_supported, lambda p: 2),
            "userDataStream.unsubscribe": (self._unsubscribe, lambda p: 2),
            "session.logon": (self._not_supported, lambda p: 2),
            "session.status": (self._session_status, lambda p: 2),
            "session.logout": (self._session_status, lambda p: 2),
            "session.subscriptions": (self._session_subscriptions, lambda p: 2),
        }

    def __repr__(self) -> str:
        return (f"Protocol(symbols={sorted(self._symbols)}, keys={len(self._keys)}, "
                f"subscribed_accounts={sorted(self._subscribers)}, faults={self.faults!r})")

    # -- connections ----------------------------------------------------------------------------------------

    def open_session(self, now_ns: int, *, client: str = "127.0.0.1", return_rate_limits: bool = True) -> ApiSession:
        """A new WebSocket API connection from ``client`` (its address: request weight is counted per address).

        ``return_rate_limits=False`` is the ``?returnRateLimits=false`` of the connection URL. Opening costs
        ``config.connect_weight`` (2, as on Binance).
        """
        self._weight.windows(client, now_ns)[0].add(self.config.connect_weight, now_ns)
        return ApiSession(next(self._session_ids), client, now_ns, return_rate_limits)

    def close_session(self, session: ApiSession) -> None:
        """Forget a closed connection (its subscriptions end). Idempotent."""
        for sub_id, account in session._subs.items():
            subs = self._subscribers.get(account)
            if subs is not None:
                subs.pop(session, None)
                if not subs:
                    del self._subscribers[account]
        session._subs.clear()
        session.closed = True

    # -- WebSocket API --------------------------------------------------------------------------------------

    def handle_ws_api(self, session: ApiSession, text: str | bytes, now_ns: int, *,
                      venue_ns: int | None = None) -> list[str]:
        """Answer one text frame of a WebSocket API connection; returns the frames to send on it (one).

        ``now_ns`` is the server's wall clock (message times, ``recvWindow``, rate limits); ``venue_ns`` is the
        venue's time at which the request reaches the matching engine (a replay's recording time), ``now_ns`` if
        omitted.
        """
        dup = self._dup_keys
        dup.clear()
        try:
            req = self._loads(text)
        except (ValueError, RecursionError):
            return [self._error_frame(None, _err(-1135, "Invalid JSON Request"))]
        if not isinstance(req, dict):
            return [self._error_frame(None, _err(-1135, "Invalid JSON Request"))]
        rid = req.get("id")
        if "id" not in req or not _id_ok(rid):
            return [self._error_frame(None, _err(-1135, _ID_MSG))]
        method = req.get("method")
        if not isinstance(method, str) or isinstance(method, signing.RawNumber):
            return [self._error_frame(rid, _err(-1135, "Invalid 'method' in JSON request; expected a string."))]
        if method.startswith("v3/"):
            method = method[3:]
        raw = req.get("params", {})
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            return [self._error_frame(rid, _err(-1135, "Invalid 'params' in JSON request; expected an object."))]
        entry = self._methods.get(method)
        if entry is None:
            return [self._error_frame(rid, _err(-1020))]
        handler, weight_of = entry
        ctx = _Ctx(session, now_ns, now_ns if venue_ns is None else venue_ns)
        p = _Params(raw)
        try:
            show = p.boolean("returnRateLimits")
        except _ApiError:
            show = None
        show = session.return_rate_limits if show is None else show
        weight = self._weight.windows(session.client, now_ns)[0]
        weight.add(weight_of(raw), now_ns)
        try:
            if weight.count > weight.limit.limit:
                raise self._too_much_weight(weight, now_ns)
            if dup:
                raise _err(-1101, "Duplicate values for a parameter detected.")
            fault = self.faults.take(method) if self.faults else None
            if fault is not None and not fault.unknown:
                raise _ApiError(fault.status, fault.code, fault.msg)
            result = handler(ctx, p)
            if fault is not None:  # executed; the client is told its status is unknown
                raise _ApiError(fault.status, fault.code, fault.msg)
        except _ApiError as e:
            return [self._error_frame(rid, e, self._rate_limits(ctx, weight) if show else None)]
        msg = {"id": rid, "status": 200, "result": result}
        if show:
            msg["rateLimits"] = self._rate_limits(ctx, weight)
        return [dumps(msg)]

    def _loads(self, text: str | bytes):
        """``signing.loads(text, object_pairs_hook=...)`` (the same checks as ``json.loads``), with the decoder built
        once."""
        if isinstance(text, str):
            if text.startswith("\ufeff"):
                raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        else:
            if not isinstance(text, (bytes, bytearray)):
                raise TypeError(f"the JSON object must be str, bytes or bytearray, not {text.__class__.__name__}")
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        return self._decoder.decode(text)

    @staticmethod
    def _error_frame(rid, e: _ApiError, rate_limits: list | None = None) -> str:
        error = {"code": e.code, "msg": e.msg}
        if e.data:
            error["data"] = e.data
        msg = {"id": rid, "status": e.status, "error": error}
        if rate_limits is not None:
            msg["rateLimits"] = rate_limits
        return dumps(msg)

    def _rate_limits(self, ctx: _Ctx, weight) -> list[dict]:
        out = [self._entry(w) for w in ctx.order_windows] if ctx.order_windows else []
        out.append(self._entry(weight))
        return out

    def _entry(self, window) -> dict:
        """``window.entry()``, from the limit's entry made once."""
        limit = window.limit
        cached = self._limit_info.get(id(limit))
        if cached is None or cached[0] is not limit:
            cached = self._limit_info[id(limit)] = (limit, limit.info())
        return {**cached[1], "count": window.count}

    def _too_much_weight(self, window, now_ns: int) -> _ApiError:
        lim = window.limit
        return _err(-1003, f"Too much request weight used; current limit is {lim.limit} request weight per "
                           f"{lim.describe()}. Please use WebSocket Streams for live updates to avoid polling the API.",
                    429, {"serverTime": _ms(now_ns), "retryAfter": _ms(window.reset_ns())})

    # -- authentication -------------------------------------------------------------------------------------

    def _signed(self, ctx: _Ctx, p: _Params) -> int:
        """Read and check apiKey, timestamp, recvWindow and signature after all other parameters; the account."""
        api_key = p.string("apiKey", required=True)
        ts = p.integer("timestamp", required=True)
        rw = p._get("recvWindow", False)
        signature = p.string("signature", required=True)
        p.finish()
        key = self._keys.get(api_key)
        if key is None:
            raise _err(-2015)
        cfg = self.config
        if rw is None:
            rw_us = cfg.default_recv_window_ms * 1000
        else:
            text = str(rw) if isinstance(rw, int) and not isinstance(rw, bool) else rw
            m = _RECV_WINDOW_RE.match(text) if isinstance(text, str) else None
            if m is None:
                raise _illegal("recvWindow", r"^([0-9]{1,20})(\.[0-9]{1,3})?$")
            rw_us = int(m.group(1)) * 1000 + int((m.group(2) or ".")[1:].ljust(3, "0"))
            if rw_us > cfg.max_recv_window_ms * 1000:
                raise _err(-1102, f"'recvWindow' contains unexpected value. Cannot be greater than "
                                  f"'{cfg.max_recv_window_ms}'.")
        ts_us = ts if ts >= 10**14 else ts * 1000  # milliseconds or microseconds, as Binance accepts
        now_us = ctx.now_ns // 1000
        if ts_us >= now_us + cfg.future_tolerance_ms * 1000:
            raise _err(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now_us - ts_us > rw_us:
            raise _err(-1021)
        if not (_plain_signature_ok(key, p.raw, signature) or signing.verify(key.secret, p.raw, signature)):
            raise _err(-1022)
        return key.account

    # -- methods --------------------------------------------------------------------------------------------

    def _ping(self, ctx, p):
        p.finish()
        return {}

    def _time(self, ctx, p):
        p.finish()
        return {"serverTime": _ms(ctx.now_ns)}

    def _not_supported(self, ctx, p):
        # session.logon / userDataStream.subscribe need Ed25519 session authentication; this venue issues HMAC
        # keys, so clients use userDataStream.subscribe.signature and sign every request.
        raise _err(-1020)

    def _session_status(self, ctx, p):
        p.finish()
        s = ctx.session
        return {"apiKey": None, "authorizedSince": None, "connectedSince": _ms(s.connected_ns),
                "returnRateLimits": s.return_rate_limits, "serverTime": _ms(ctx.now_ns),
                "userDataStream": bool(s._subs)}

    def _session_subscriptions(self, ctx, p):
        p.finish()
        return [{"subscriptionId": sid} for sid in ctx.session._subs]

    def _ws_exchange_info(self, ctx, p):
        symbol = p.symbol(required=False)
        symbols = p._get("symbols", False)
        p._get("permissions", False)
        p.boolean("showPermissionSets")
        p._get("symbolStatus", False)
        p.finish()
        return self._exchange_info(ctx.now_ns, symbol, symbols, self._ws_limits)

    def _exchange_info(self, now_ns: int, symbol, symbols, rate_limits) -> dict:
        if symbol is not None and symbols is not None:
            raise _err(-1128, "Combination of optional parameters invalid.")
        names = list(self._symbols)
        if symbol is not None:
            names = [symbol]
        elif symbols is not None:
            if isinstance(symbols, str):
                try:
                    symbols = orjson.loads(symbols)
                except orjson.JSONDecodeError:
                    raise _err(-1100, "Illegal characters found in parameter 'symbols'; legal range is "
                                      "'^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.") from None
            if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                raise _illegal("symbols", '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$')
            names = symbols
        for n in names:
            if n not in self._symbols:
                raise _err(-1121)
        return {"timezone": "UTC", "serverTime": _ms(now_ns), "rateLimits": rate_limits, "exchangeFilters": [],
                "symbols": [self._symbol_info(self._symbols[n]) for n in names]}

    def _symbol_info(self, f: _SymbolFormat) -> dict:
        spec = f.spec
        return {
            "symbol": spec.symbol,
            "status": "TRADING",
            "baseAsset": spec.base_asset,
            "baseAssetPrecision": max(8, f.qty.digits),
            "quoteAsset": spec.quote_asset,
            "quotePrecision": max(8, f.quote.digits),
            "quoteAssetPrecision": max(8, f.quote.digits),
            "baseCommissionPrecision": max(8, f.qty.digits),
            "quoteCommissionPrecision": max(8, f.quote.digits),
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": False,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "pegInstructionsAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": f.px.text(1), "maxPrice": f.px.text(f.max_px_ticks),
                 "tickSize": f.px.text(1)},
                {"filterType": "LOT_SIZE", "minQty": f.qty.text(spec.min_qty_lots),
                 "maxQty": f.qty.text(spec.max_qty_lots), "stepSize": f.qty.text(1)},
                {"filterType": "NOTIONAL", "minNotional": f.quote.text(spec.min_notional_ticks_lots),
                 "applyMinToMarket": True, "maxNotional": format_decimal(*_decimal_parts(self.config.max_notional)),
                 "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": self.config.stp_mode,
            "allowedSelfTradePreventionModes": list(_STP_MODES),
        }

    def _ws_depth(self, ctx, p):
        symbol = p.symbol()
        limit = p.integer("limit")
        p.finish()
        return self._depth(symbol, limit)

    def _depth(self, symbol: str, limit: int | None) -> dict:
        f = self._symbols.get(symbol)
        if f is None:
            raise _err(-1121)
        limit = 100 if limit is None else limit
        if limit < 1:
            raise _illegal("limit", "1-5000")
        limit = min(limit, 5000)  # Binance truncates larger limits to 5000
        return depth_levels(f.spec.instrument, self.venue.depth(symbol, limit), limit)

    # orders ------------------------------------------------------------------------------------------------

    def _parse_order(self, p: _Params):
        symbol = p.symbol()
        side = p.enum("side", ("BUY", "SELL"), required=True, code=-1117, msg="Invalid side.")
        raw_type = p.string("type", required=True, regex=_TYPE_RE, legal="ENUM")
        if raw_type in _UNSUPPORTED_TYPES:
            raise _err(-2010, _UNSUPPORTED_TYPES[raw_type])
        if raw_type not in _ORDER_TYPES:
            raise _err(-1116, "Invalid orderType.")
        tif = p.enum("timeInForce", _TIFS, code=-1115, msg="Invalid timeInForce.")
        price = p.decimal("price")
        quantity = p.decimal("quantity")
        if p.has("quoteOrderQty"):
            p.decimal("quoteOrderQty")
            raise _err(-1013, "Quote order qty market orders are not support for this symbol.")
        if p.has("icebergQty"):
            p.decimal("icebergQty")
            raise _err(-2010, "Iceberg orders are not supported for this symbol.")
        for name in ("stopPrice", "trailingDelta"):
            if p.has(name):
                raise _err(-1106, f"Parameter '{name}' sent when not required.")
        client_id = p.string("newClientOrderId", regex=_CLIENT_ID_RE, legal=_CLIENT_ID_LEGAL)
        resp = p.enum("newOrderRespType", _RESP_TYPES)
        p.enum("selfTradePreventionMode", _STP_MODES)
        p.integer("strategyId")   # accepted, not echoed
        p.integer("strategyType")
        if raw_type == "LIMIT":
            if tif is None:
                raise _mandatory("timeInForce")
        elif tif is not None:
            raise _err(-1106, "Parameter 'timeInForce' sent when not required.")
        if raw_type in ("LIMIT", "LIMIT_MAKER"):
            if price is None:
                raise _mandatory("price")
        elif price is not None:
            raise _err(-1106, "Parameter 'price' sent when not required.")
        if quantity is None:
            raise _mandatory("quantity")
        if resp is None:
            resp = "FULL" if raw_type in ("LIMIT", "MARKET") else "ACK"
        return symbol, side, raw_type, tif, price, quantity, client_id, resp

    def _order_request(self, account: int, parsed) -> tuple[OrderRequest, _SymbolFormat]:
        symbol, side, type_, tif, price, quantity, client_id, _ = parsed
        f = self._symbols.get(symbol)
        if f is None:
            raise _err(-1121)
        inst, spec = f.spec.instrument, f.spec
        memo = self._units.get(symbol)
        if memo is None:
            memo = self._units[symbol] = ({}, {})
        px_memo, qty_memo = memo  # decimal text -> ticks / lots (clients send the same prices and sizes again)
        px_ticks = 0
        if price is not None:
            px_ticks = px_memo.get(price)
            if px_ticks is None:
                try:
                    px_ticks = inst.px_to_ticks(price)
                except ValueError:
                    raise _err(-1013, "Filter failure: PRICE_FILTER") from None
                _remember(px_memo, price, px_ticks)
            if not 0 < px_ticks <= f.max_px_ticks:
                raise _err(-1013, "Filter failure: PRICE_FILTER")
        qty_lots = qty_memo.get(quantity)
        if qty_lots is None:
            try:
                qty_lots = inst.qty_to_lots(quantity)
            except ValueError:
                raise _err(-1013, "Filter failure: LOT_SIZE") from None
            _remember(qty_memo, quantity, qty_lots)
        if not spec.min_qty_lots <= qty_lots <= spec.max_qty_lots or qty_lots <= 0:
            raise _err(-1013, "Filter failure: LOT_SIZE")
        if price is not None and px_ticks * qty_lots < spec.min_notional_ticks_lots:
            raise _err(-1013, "Filter failure: NOTIONAL")
        req = OrderRequest(account, symbol, 1 if side == "BUY" else -1, _ORDER_TYPE_OF[type_], qty_lots, px_ticks,
                           _TIF_OF[tif] if tif else TimeInForce.GTC, client_id or "")
        return req, f

    def _order_place(self, ctx, p):
        parsed = self._parse_order(p)
        account = self._signed(ctx, p)
        req, f = self._order_request(account, parsed)
        windows = self._orders.windows(account, ctx.now_ns)
        ctx.order_windows = windows
        for w in windows:
            if w.peek(ctx.now_ns) + 1 > w.limit.limit:
                raise _err(-1015, f"Too many new orders; current limit is {w.limit.limit} orders per "
                                  f"{w.limit.describe()}.", 429,
                           {"serverTime": _ms(ctx.now_ns), "retryAfter": _ms(w.reset_ns())})
        for w in windows:
            w.add(1, ctx.now_ns)
        res = self.venue.place(req, ctx.venue_ns)
        if res.rejection is not None or res.order is None:
            rej = res.rejection
            code = int(rej.code) if rej else -2010
            raise _err(code, rej.message if rej else None)
        return self._place_result(f, res.order, res.fills, parsed[-1])

    def _order_test(self, ctx, p):
        parsed = self._parse_order(p)
        p.boolean("computeCommissionRates")
        account = self._signed(ctx, p)
        self._order_request(account, parsed)
        return {}

    def _place_result(self, f: _SymbolFormat, o: OrderView, fills: Sequence[Fill], resp: str) -> dict:
        out = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_order_id,
               "transactTime": _ms(o.created_ns)}
        if resp == "ACK":
            return out
        out.update(_order_state(f, o))
        out["workingTime"] = _ms(o.created_ns)
        out["selfTradePreventionMode"] = self.config.stp_mode
        if resp == "FULL":
            out["fills"] = [{"price": f.px.text(x.px_ticks), "qty": f.qty.text(x.qty_lots),
                             "commission": f.quote.text(x.commission), "commissionAsset": f.spec.quote_asset,
                             "tradeId": x.trade_id} for x in fills]
        return out

    def _order_info(self, f: _SymbolFormat, o: OrderView) -> dict:
        """An order as ``order.status`` / ``openOrders.status`` render it."""
        return {
            "symbol": o.symbol,
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": o.client_order_id,
            "price": f.px.text(o.px_ticks),
            "origQty": f.qty.text(o.qty_lots),
            "executedQty": f.qty.text(o.filled_lots),
            "cummulativeQuoteQty": f.quote.text(o.quote_filled),
            "status": o.status.name,
            "timeInForce": _tif_name(o),
            "type": o.type.name,
            "side": _side(o.side),
            "stopPrice": f.px.text(0),
            "icebergQty": f.qty.text(0),
            "time": _ms(o.created_ns),
            "updateTime": _ms(o.updated_ns),
            "isWorking": True,
            "workingTime": _ms(o.created_ns),
            "origQuoteOrderQty": f.quote.text(0),
            "selfTradePreventionMode": self.config.stp_mode,
        }

    def _cancel_info(self, f: _SymbolFormat, o: OrderView, cancel_id: str, now_ns: int) -> dict:
        """A cancellation report (``order.cancel``, ``openOrders.cancelAll``)."""
        return {
            "symbol": o.symbol,
            "origClientOrderId": o.client_order_id,
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": cancel_id,
            "transactTime": _ms(now_ns),
            **_order_state(f, o),
            "selfTradePreventionMode": self.config.stp_mode,
        }

    def _order_ref(self, p: _Params):
        order_id = p.integer("orderId")
        client_id = p.string("origClientOrderId", regex=_CLIENT_ID_RE, legal=_CLIENT_ID_LEGAL)
        if order_id is None and client_id is None:
            raise _err(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        return order_id, client_id

    def _lookup(self, account: int, symbol: str, order_id, client_id) -> OrderView | None:
        """Binance's rule: by orderId first, then the origClientOrderId must match that order."""
        if order_id is not None:
            o = self.venue.order(account, symbol, order_id=order_id)
            if o is not None and client_id is not None and o.client_order_id != client_id:
                return None
            return o
        return self.venue.order(account, symbol, client_order_id=client_id)

    def _symbol_format(self, symbol: str) -> _SymbolFormat:
        f = self._symbols.get(symbol)
        if f is None:
            raise _err(-1121)
        return f

    def _order_cancel(self, ctx, p):
        symbol = p.symbol()
        order_id, client_id = self._order_ref(p)
        new_id = p.string("newClientOrderId", regex=_CLIENT_ID_RE, legal=_CLIENT_ID_LEGAL)
        restriction = p._get("cancelRestrictions", False)
        if restriction is not None and restriction not in ("ONLY_NEW", "ONLY_PARTIALLY_FILLED"):
            raise _err(-1145, "Invalid cancelRestrictions")
        account = self._signed(ctx, p)
        f = self._symbol_format(symbol)
        if client_id is not None or restriction is not None:
            o = self._lookup(account, symbol, order_id, client_id)
            if o is None:
                raise _err(-2011, "Unknown order sent.")
            if restriction is not None and o.status.name != restriction[5:]:
                raise _err(-2011, "Order was not canceled due to cancel restrictions.")
            order_id = o.order_id
        res: CancelResult = self.venue.cancel(account, symbol, ctx.venue_ns, order_id=order_id)
        if res.rejection is not None or res.order is None:
            rej = res.rejection
            raise _err(int(rej.code) if rej else -2011, rej.message if rej else "Unknown order sent.")
        cancel_id = new_id or self._new_cancel_id()
        self._remember_cancel(account, res.order.order_id, cancel_id)
        return self._cancel_info(f, res.order, cancel_id, ctx.now_ns)

    def _cancel_all(self, ctx, p):
        symbol = p.symbol()
        account = self._signed(ctx, p)
        f = self._symbol_format(symbol)
        orders = self.venue.cancel_all(account, symbol, ctx.venue_ns)
        if not orders:
            raise _err(-2011, "Unknown order sent.")
        out = []
        for o in orders:
            cancel_id = self._new_cancel_id()
            self._remember_cancel(account, o.order_id, cancel_id)
            out.append(self._cancel_info(f, o, cancel_id, ctx.now_ns))
        return out

    def _order_status(self, ctx, p):
        symbol = p.symbol()
        order_id, client_id = self._order_ref(p)
        account = self._signed(ctx, p)
        f = self._symbol_format(symbol)
        o = self._lookup(account, symbol, order_id, client_id)
        if o is None:
            raise _err(-2013, "Order does not exist.")
        return self._order_info(f, o)

    def _open_orders(self, ctx, p):
        symbol = p.symbol(required=False)
        account = self._signed(ctx, p)
        if symbol is not None:
            self._symbol_format(symbol)
        return [self._order_info(self._symbols[o.symbol], o) for o in self.venue.open_orders(account, symbol)]

    def _account_status(self, ctx, p):
        omit_zero = p.boolean("omitZeroBalances")
        account = self._signed(ctx, p)
        fees = self._fees(account)
        rate = _Scale(6, 1)  # parts per million
        balances = []
        for asset, (free, locked) in self.venue.balances(account).items():
            if omit_zero and not free and not locked:
                continue
            scale = self._asset_scales.get(asset, _Scale(8, 1))
            balances.append({"asset": asset, "free": scale.text(free), "locked": scale.text(locked)})
        return {
            "makerCommission": fees.maker_ppm // 100,
            "takerCommission": fees.taker_ppm // 100,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": rate.text(fees.maker_ppm), "taker": rate.text(fees.taker_ppm),
                                "buyer": rate.text(0), "seller": rate.text(0)},
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": _ms(ctx.now_ns),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": account,
        }

    def _fees(self, account: int) -> FeeSchedule:
        """The account's fee rates: ``venue.fees_of(account)`` if the venue has it, else ``venue.fees`` (one
        schedule or ``{account: schedule}``), else the default schedule."""
        fees_of = getattr(self.venue, "fees_of", None)
        if callable(fees_of):
            return fees_of(account)
        fees = getattr(self.venue, "fees", None)
        if isinstance(fees, Mapping):
            fees = fees.get(account)
        return fees if isinstance(fees, FeeSchedule) else FeeSchedule()

    def _my_trades(self, ctx, p):
        """``myTrades``: the account's fills of one symbol, oldest first; ``orderId`` (one order's), ``fromId``
        (trade ids from this one on), ``startTime``/``endTime`` (ms), ``limit`` (default 500, at most 1000). Kept
        for the last ``ProtocolConfig.trade_history`` fills of each account."""
        symbol = p.symbol()
        order_id = p.integer("orderId")
        from_id = p.integer("fromId")
        start, end = p.integer("startTime"), p.integer("endTime")
        limit = p.integer("limit")
        account = self._signed(ctx, p)
        f = self._symbol_format(symbol)
        limit = 500 if limit is None else limit
        if not 1 <= limit <= 1000:
            raise _err(-1100, "Illegal characters found in parameter 'limit'; legal range is '1-1000'.")
        out = []
        for sym, fill, side, oid in self._trades.get(account, ()):
            if sym != symbol or (order_id is not None and oid != order_id):
                continue
            if (from_id is not None and fill.trade_id < from_id) or (start is not None and _ms(fill.ts_ns) < start) \
                    or (end is not None and _ms(fill.ts_ns) > end):
                continue
            out.append({"symbol": sym, "id": fill.trade_id, "orderId": oid, "orderListId": -1,
                        "price": f.px.text(fill.px_ticks), "qty": f.qty.text(fill.qty_lots),
                        "quoteQty": f.quote.text(fill.px_ticks * fill.qty_lots),
                        "commission": f.quote.text(fill.commission), "commissionAsset": f.spec.quote_asset,
                        "time": _ms(fill.ts_ns), "isBuyer": side > 0, "isMaker": fill.is_maker, "isBestMatch": True})
            if len(out) >= limit:
                break
        return out

    @property
    def keeps_trades(self) -> bool:
        """Whether execution reports must reach :meth:`render_user_events` even with nobody subscribed (they
        feed ``myTrades``)."""
        return bool(self._trades)

    def _order_limits(self, ctx, p):
        account = self._signed(ctx, p)
        windows = self._orders.windows(account, ctx.now_ns)
        for w in windows:
            w.peek(ctx.now_ns)  # roll a window that has ended
        return [w.entry() for w in windows]

    # user data stream --------------------------------------------------------------------------------------

    def _subscribe(self, ctx, p):
        account = self._signed(ctx, p)
        s: ApiSession = ctx.session
        cfg = self.config
        if account in s._subs.values():
            raise _err(-1020, "This operation is not supported.")  # one subscription per account per connection
        if len(s._subs) >= cfg.max_subscriptions or s._lifetime_subs >= cfg.max_lifetime_subscriptions:
            raise _err(-1020, "This operation is not supported.")
        sub_id = s._lifetime_subs
        s._lifetime_subs += 1
        s._subs[sub_id] = account
        self._subscribers.setdefault(account, {})[s] = sub_id
        return {"subscriptionId": sub_id}

    def _unsubscribe(self, ctx, p):
        sub_id = p.integer("subscriptionId")
        p.finish()
        s: ApiSession = ctx.session
        ids = list(s._subs) if sub_id is None else [sub_id] if sub_id in s._subs else []
        for i in ids:
            account = s._subs.pop(i)
            subs = self._subscribers.get(account)
            if subs is not None:
                subs.pop(s, None)
                if not subs:
                    del self._subscribers[account]
        return {}

    def _new_cancel_id(self) -> str:
        return f"cxl{next(self._cancel_seq):019d}"

    def _remember_cancel(self, account: int, order_id: int, cancel_id: str) -> None:
        if len(self._cancel_ids) >= _MAX_CANCEL_IDS:
            del self._cancel_ids[next(iter(self._cancel_ids))]
        self._cancel_ids[(account, order_id)] = cancel_id

    @property
    def has_user_subscribers(self) -> bool:
        """Whether any connection subscribed to an account's user data stream."""
        return bool(self._subscribers)

    def skip_user_events(self, canceled: Iterable[tuple[int, int]]) -> None:
        """What :meth:`render_user_events` does with reports while no connection subscribed to any account (it
        renders nothing): the cancel id of each canceled order, ``(account, orderId)`` in order, is used up. A
        server may call this instead of building the reports."""
        for key in canceled:
            self._cancel_ids.pop(key, None) or self._new_cancel_id()

    def render_user_events(self, events: Iterable[object], now_ns: int) -> dict[ApiSession, list[str]]:
        """User data stream frames for what :meth:`Venue.poll` returned, per subscribed connection.

        Each :class:`ExecutionReport` of a subscribed account becomes ``{"subscriptionId", "event":
        executionReport}``; after an account's reports, one ``outboundAccountPosition`` carries the balances of the
        assets of the symbols they touched. Other events (trades, level changes) are ignored here.
        """
        out: dict[ApiSession, list[str]] = {}
        touched: dict[int, tuple[set[str], int]] = {}
        for ev in events:
            if not isinstance(ev, ExecutionReport):
                continue
            account = ev.order.account
            if ev.fill is not None:
                kept = self._trades.get(account)
                if kept is not None:
                    kept.append((ev.order.symbol, ev.fill, ev.order.side, ev.order.order_id))
            cancel_id = None
            if ev.exec_type == "CANCELED":
                cancel_id = self._cancel_ids.pop((account, ev.order.order_id), None) or self._new_cancel_id()
            subs = self._subscribers.get(account)
            if not subs:
                continue
            f = self._symbols.get(ev.order.symbol)
            if f is None:
                continue
            body = self._execution_report(f, ev, cancel_id)
            for session, sub_id in subs.items():
                out.setdefault(session, []).append(_user_frame(sub_id, body))
            assets, _ = touched.get(account, (set(), 0))
            assets.update((f.spec.base_asset, f.spec.quote_asset))
            touched[account] = (assets, ev.ts_ns)
        for account, (assets, ts_ns) in touched.items():
            balances = self.venue.balances(account)
            body = dumps({
                "e": "outboundAccountPosition",
                "E": _ms(ts_ns),
                "u": _ms(ts_ns),
                "B": [{"a": a, "f": self._asset_scales[a].text(balances.get(a, (0, 0))[0]),
                       "l": self._asset_scales[a].text(balances.get(a, (0, 0))[1])} for a in sorted(assets)],
            })
            for session, sub_id in self._subscribers.get(account, {}).items():
                out.setdefault(session, []).append(_user_frame(sub_id, body))
        return out

    def _execution_report(self, f: _SymbolFormat, ev: ExecutionReport, cancel_id: str | None) -> str:
        o, fill = ev.order, ev.fill
        ms = _ms(ev.ts_ns)
        px, qty, quote = f.px, f.qty, f.quote
        msg = {
            "e": "executionReport",
            "E": ms,
            "s": o.symbol,
            "c": cancel_id if cancel_id is not None else o.client_order_id,
            "S": _side(o.side),
            "o": o.type.name,
            "f": _tif_name(o),
            "q": qty.text(o.qty_lots),
            "p": px.text(o.px_ticks),
            "P": px.text(0),
            "F": qty.text(0),
            "g": -1,
            "C": o.client_order_id if cancel_id is not None else "",
            "x": ev.exec_type,
            "X": o.status.name,
            "r": "NONE",
            "i": o.order_id,
            "l": qty.text(fill.qty_lots if fill else 0),
            "z": qty.text(o.filled_lots),
            "L": px.text(fill.px_ticks if fill else 0),
            "n": quote.text(fill.commission) if fill else "0",
            "N": f.spec.quote_asset if fill else None,
            "T": ms,
            "t": fill.trade_id if fill else -1,
            "I": next(self._exec_ids),
            "w": o.status.is_open,
            "m": fill.is_maker if fill else False,
            "M": False,
            "O": _ms(o.created_ns),
            "Z": quote.text(o.quote_filled),
            "Y": quote.text(fill.px_ticks * fill.qty_lots if fill else 0),
            "Q": quote.text(0),
            "W": _ms(o.created_ns),
            "V": self.config.stp_mode,
        }
        if o.type == OrderType.MARKET:
            del msg["W"]  # only for orders that were placed on the book
        return dumps(msg)

    # -- REST -----------------------------------------------------------------------------------------------

    def handle_rest(self, method: str, path: str, query: str, headers: Mapping[str, str] | None, now_ns: int, *,
                    client: str = "127.0.0.1") -> RestResponse:
        """Answer one REST request: ``GET /api/v3/{ping,time,exchangeInfo,depth}``; anything else is 404/405.

        ``query`` is the raw query string (percent-encoded); ``headers`` are not consulted (no signed endpoints
        here). Every answer carries ``x-mbx-used-weight`` and ``x-mbx-used-weight-1m``; a 429 also
        ``Retry-After`` (seconds). Request weight is shared with the WebSocket API connections of ``client``.
        """
        routes = {"/api/v3/ping": 1, "/api/v3/time": 1, "/api/v3/exchangeInfo": 20, "/api/v3/depth": None}
        path = path.rstrip("/") or "/"
        if path not in routes:
            return RestResponse(404, [("Content-Type", "text/plain; charset=utf-8")], b"Not Found")
        if method.upper() != "GET":
            return RestResponse(405, [("Content-Type", "text/plain; charset=utf-8"), ("Allow", "GET")],
                                b"Method Not Allowed")
        pairs = parse_qsl(query or "", keep_blank_values=True)
        raw = dict(pairs)
        window = self._weight.windows(client, now_ns)[0]
        weight = routes[path] if routes[path] is not None else _depth_weight(raw.get("limit"))
        window.add(weight, now_ns)
        extra: list[tuple[str, str]] = []
        try:
            if window.count > window.limit.limit:
                e = self._too_much_weight(window, now_ns)
                extra.append(("Retry-After", str(max(1, -(-(window.reset_ns() - now_ns) // 1_000_000_000)))))
                raise _ApiError(e.status, e.code, e.msg)
            if len(raw) != len(pairs):
                raise _err(-1101, "Duplicate values for a parameter detected.")
            fault = self.faults.take(path) if self.faults else None
            if fault is not None and not fault.unknown:
                raise _ApiError(fault.status, fault.code, fault.msg)
            p = _Params(raw)
            if path == "/api/v3/ping":
                p.finish()
                body = {}
            elif path == "/api/v3/time":
                p.finish()
                body = {"serverTime": _ms(now_ns)}
            elif path == "/api/v3/exchangeInfo":
                symbol = p.symbol(required=False)
                symbols = p._get("symbols", False)
                p._get("permissions", False)
                p.boolean("showPermissionSets")
                p._get("symbolStatus", False)
                p.finish()
                body = self._exchange_info(now_ns, symbol, symbols, self._rest_limits)
            else:
                symbol = p.symbol()
                limit = p.integer("limit")
                p.finish()
                body = self._depth(symbol, limit)
            if fault is not None:
                raise _ApiError(fault.status, fault.code, fault.msg)
            status, payload = 200, orjson.dumps(body)
        except _ApiError as e:
            status, payload = e.status, orjson.dumps({"code": e.code, "msg": e.msg})
        used = str(window.count)
        hdrs = [("Content-Type", "application/json;charset=UTF-8"), ("x-mbx-used-weight", used),
                ("x-mbx-used-weight-1m", used), *extra]
        return RestResponse(status, hdrs, payload)

    def handle_stream_control(self, session: StreamSession, text: str) -> list[str]:
        """Answer a text frame on a market-stream connection (see :meth:`StreamSession.handle_control`)."""
        return session.handle_control(text)


def _user_frame(sub_id: int, event_json: str) -> str:
    return f'{{"subscriptionId":{sub_id},"event":{event_json}}}'


def _order_state(f, o: OrderView) -> dict:
    """The fields an order.place result and a cancellation report share, in Binance's order."""
    return {
        "price": f.px.text(o.px_ticks),
        "origQty": f.qty.text(o.qty_lots),
        "executedQty": f.qty.text(o.filled_lots),
        "origQuoteOrderQty": f.quote.text(0),
        "cummulativeQuoteQty": f.quote.text(o.quote_filled),
        "status": o.status.name,
        "timeInForce": _tif_name(o),
        "type": o.type.name,
        "side": _side(o.side),
    }


def _tif_name(o: OrderView) -> str:
    # Binance reports GTC for MARKET and LIMIT_MAKER orders
    return "GTC" if o.type != OrderType.LIMIT else o.tif.name


def _id_ok(rid) -> bool:
    if rid is None:
        return True
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return _INT64[0] <= rid <= _INT64[1]
    return isinstance(rid, str) and not isinstance(rid, signing.RawNumber) and bool(_ID_RE.match(rid))


def _depth_weight(limit) -> int:
    """Binance's depth weight by limit (1-100: 5, 101-500: 25, 501-1000: 50, 1001-5000: 250)."""
    try:
        n = 100 if limit is None or limit == "" else int(limit)
    except (TypeError, ValueError):
        n = 100
    n = min(max(n, 1), 5000)
    return 5 if n <= 100 else 25 if n <= 500 else 50 if n <= 1000 else 250


def _decimal_parts(text: str) -> tuple[int, int]:
    s = _Scale.of(text)
    return int(Decimal(text).scaleb(s.digits)), s.digits
