"""The executor: orders over Binance's WebSocket API, tracked by the order state machine shared with backtests.

One connection to ``ws-api/v3`` carries signed requests (HMAC-SHA256 over the sorted parameters, ``timestamp`` and
``recvWindow``) and the user-data subscription whose ``executionReport`` events move our orders
(:class:`~workbench.strategy.orders.OrderBook`: progress only, so a report that overtakes the answer to
``order.place`` is fine). Every answer's ``rateLimits`` is kept in :attr:`Executor.rate_usage` for the risk guard's
90 % monitor, the order counts as of now: the venue's last count plus the orders sent since (the venue counts an
order when it takes it, its answer comes later), read with ``account.rateLimits.orders`` on each connect.

Faults: an answer with an error code rejects the order with Binance's message (-1021 timestamp outside the
window, -1015 / 429 too many orders, filter failures, ...); an answer that says the execution status is unknown
(-1006, -1007, HTTP 5xx) or no answer within ``request_timeout_s`` leaves the order PENDING and asks
``order.status`` for it; after a reconnect, ``openOrders.status`` and ``order.status`` reconcile every order not
yet final. A refused user-data subscription ends :meth:`Executor.run` (a bad key does not get better), except
-1021: that is the clock, reported as status ``clock`` (the engine checks and corrects it) and retried with backoff.
Secrets are only used to sign: never in a repr, a log line or a message other than the signature.

Transport: ``picows`` where it is installed (a C websocket client: it frames and masks a request in C and writes
it to the socket in the same call, where ``websockets`` spends ~17 us of Python), else ``websockets``;
``ExecutorConfig.transport`` chooses. Either is reached through one small interface, :class:`Connection`
(``send_text``, ``close``, ``is_open``): the keep-warm dry connection, the tests and the benchmark use it too.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from workbench.exceptions import ConfigError
from workbench.instrument import Instrument
from workbench.strategy.orders import OrderBook, OrderState, OwnOrder
from workbench.venue.api import OrderType, TimeInForce
from workbench.venue.signing import signature_payload

try:  # the fast transport (optional: websockets is the fallback)
    import picows
except ImportError:  # pragma: no cover - depends on the installation
    picows = None

__all__ = ["Connection", "Credentials", "ExecutorConfig", "Executor"]

log = logging.getLogger("workbench.executor")

_UNKNOWN = {-1006, -1007}
_STATE = {s.name: s for s in OrderState}
_TYPE_NAME = {t: t.name for t in OrderType}  # an enum's .name is a slow property (and the enums' values overlap:
_TIF_NAME = {t: t.name for t in TimeInForce}  # one table each)
# Binance's rate-limit intervals (rateLimits' "interval"), ns
_INTERVAL_NS = {"SECOND": 1_000_000_000, "MINUTE": 60_000_000_000, "HOUR": 3_600_000_000_000,
                "DAY": 86_400_000_000_000}
_PRICED, _UNPRICED = ("newClientOrderId", "price", "quantity"), ("newClientOrderId", "quantity")  # order.place's


@dataclass(frozen=True)
class Credentials:
    """An API key and its secret; the secret never appears in a repr."""

    api_key: str
    api_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(api_key={self.api_key[:6]}...)"

    @classmethod
    def from_env(cls, prefix: str = "WORKBENCH") -> "Credentials":
        """From ``<PREFIX>_API_KEY`` and ``<PREFIX>_API_SECRET``."""
        key, secret = os.environ.get(f"{prefix}_API_KEY"), os.environ.get(f"{prefix}_API_SECRET")
        if not key or not secret:
            raise ConfigError(f"set {prefix}_API_KEY and {prefix}_API_SECRET")
        return cls(key, secret)

    @classmethod
    def from_keys_file(cls, path: str | Path) -> tuple["Credentials", dict[str, str]]:
        """From the keys file ``workbench venue`` writes; also returns its URLs (``rest``, ``stream``, ``ws_api``)."""
        from workbench.venue.keys import read_keys_file

        key, urls = read_keys_file(path)
        return cls(key.key, key.secret), urls


@dataclass(frozen=True, kw_only=True)
class ExecutorConfig:
    ws_api_url: str
    recv_window_ms: int = 5000
    request_timeout_s: float = 5.0
    reconnect_min_s: float = 0.05
    reconnect_max_s: float = 5.0
    jitter: float = 0.25
    max_reconnects: int | None = None
    transport: str = "auto"            # "picows", "websockets", or "auto": picows where installed

    def __post_init__(self) -> None:
        if self.transport not in ("auto", "picows", "websockets"):
            raise ConfigError("transport must be 'auto', 'picows' or 'websockets'")
        if self.transport == "picows" and picows is None:
            raise ConfigError("transport='picows' but picows is not installed (pip install picows)")


class Executor:
    """Send and track orders of ``orders`` (an :class:`OrderBook`) on the venue of ``config``.

    ``on_order(order)`` runs on every state change, ``on_fill(order, px_ticks, qty_lots, fee_units, is_maker,
    trade_id)`` on every fill, ``on_status(what, detail)`` on faults and recoveries; all on the event loop.
    ``clock``: wall time in ns (the ``timestamp`` of signed requests).
    """

    def __init__(self, config: ExecutorConfig, credentials: Credentials, instruments: Mapping[str, Instrument],
                 orders: OrderBook, *, on_order: Callable[[OwnOrder], None] | None = None,
                 on_fill: Callable[..., None] | None = None, on_status: Callable[[str, str], None] | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self._cred = credentials
        self.instruments = dict(instruments)
        self.orders = orders
        self.on_order = on_order or (lambda o: None)
        self.on_fill = on_fill or (lambda *a: None)
        self.on_status = on_status or (lambda what, detail: None)
        self.clock = clock
        self.stats: Counter = Counter()
        self.rate_usage: dict[str, tuple[int, int]] = {}
        self.ready = asyncio.Event()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._places: set[int] = set()  # ids of order.place requests not answered yet (counted as orders already)
        self._windows: dict[str, tuple[int, int]] = {}  # ORDERS limit -> (its interval, the window read), ns
        self._conn: Connection | None = None
        self._stop = False
        self._seen_trades: set[tuple[str, int]] = set()
        self._mac = _hmac_states(credentials.api_secret.encode())  # keyed once, copied per request
        self._templates: dict[tuple, tuple[str, str]] = {}  # see _templated

    def __repr__(self) -> str:
        return f"Executor({self.config.ws_api_url}, {self._cred!r})"

    # -- connection ---------------------------------------------------------------------------------------------------
    @property
    def transport(self) -> str:
        """The websocket client in use: "picows" or "websockets"."""
        t = self.config.transport
        return ("picows" if picows is not None else "websockets") if t == "auto" else t

    @property
    def connection(self) -> Connection | None:
        """The order connection while one is up (open or closing), else None."""
        return self._conn

    async def run(self) -> None:
        """Connect, subscribe to user data, reconcile, serve requests; reconnect after faults until :meth:`stop`."""
        cfg = self.config
        backoff, attempts = cfg.reconnect_min_s, 0
        errors: tuple = (OSError, ConnectionClosed, asyncio.TimeoutError, websockets.InvalidHandshake)
        if picows is not None:
            errors += (picows.WSError,)
        connect = self._connect_picows if self.transport == "picows" else self._connect_websockets
        while not self._stop:
            try:
                async with connect(cfg.ws_api_url) as conn:
                    self._conn = conn
                    if self._stop:  # stopped while connecting: closed on the way out
                        break
                    r = await self._request("userDataStream.subscribe.signature", {}, signed=True)
                    if "error" in r:
                        e = r["error"]
                        if e.get("code") == -1021:  # our clock, not our key: retried once the clock is checked
                            self.on_status("clock", f"user data subscription refused: -1021 {e.get('msg')}")
                            raise ConnectionError("timestamp outside recvWindow")
                        raise ConfigError(f"user data subscription refused: {e.get('code')} {e.get('msg')}")
                    if attempts:
                        self.stats["reconnects"] += 1
                        self.on_status("reconnected", cfg.ws_api_url)
                    await self.reconcile()
                    await self._order_counts()
                    backoff = cfg.reconnect_min_s
                    self.ready.set()
                    await conn.wait_closed()
            except ConfigError as exc:  # refused (bad key, clock outside recvWindow): retrying would not help
                self.stats["refused"] += 1
                self.on_status("refused", str(exc))
                break
            except errors as exc:
                if self._stop:
                    break
                self.stats["disconnects"] += 1
                self.on_status("disconnected", f"{type(exc).__name__}: {exc}")
            finally:
                self.ready.clear()
                self._conn = None
                self._fail_pending()
            attempts += 1
            if self._stop or (cfg.max_reconnects is not None and attempts > cfg.max_reconnects):
                break
            await asyncio.sleep(backoff * (1 + random.uniform(-cfg.jitter, cfg.jitter)))
            backoff = min(backoff * 2, cfg.reconnect_max_s)

    async def stop(self) -> None:
        """Close the connection (a closing handshake); :meth:`run` returns."""
        self._stop = True
        if self._conn is not None:
            await self._conn.close()

    async def _order_counts(self) -> None:
        """The account's order counts now (``account.rateLimits.orders``): the 90 % monitor knows them before the
        first order's answer. A venue that refuses the request leaves them to the answers."""
        try:  # briefly: a venue that ignores the method must not hold up every connect
            r = await asyncio.wait_for(self._request("account.rateLimits.orders", {}, signed=True), 1.0)
        except asyncio.TimeoutError:
            return
        if isinstance(r.get("result"), list):
            self._rate_limits(r["result"])

    def _fail_pending(self) -> None:
        for f in self._pending.values():
            if not f.done():
                f.set_exception(ConnectionError("disconnected"))
        self._pending.clear()
        self._places.clear()

    def _rate_limits(self, entries) -> None:
        """Binance ``rateLimits`` entries into :attr:`rate_usage`; an ORDERS count plus the orders sent and not yet
        answered (the venue counted each when it took it; their answers, with the counts, are on the way)."""
        usage, extra, now = self.rate_usage, len(self._places), self.clock()
        for rl in entries:
            if not isinstance(rl, dict):
                continue
            kind = rl.get("rateLimitType")
            try:
                count, limit = int(rl.get("count", 0)), int(rl.get("limit", 0))
                num = int(rl.get("intervalNum", 1))
            except (TypeError, ValueError):
                continue
            name = f"{kind}:{num}{rl.get('interval')}"
            if kind == "ORDERS":
                count += extra
                unit = _INTERVAL_NS.get(rl.get("interval"))
                if unit and num > 0:
                    span = unit * num
                    self._windows[name] = (span, now - now % span)
            usage[name] = (count, limit)

    def roll_rate_windows(self, now_ns: int | None = None) -> None:
        """Start the ORDERS counts afresh where their window has ended since they were read (Binance's windows are
        fixed, aligned to the interval): an order refused or throttled gets no answer with counts, so without this a
        count at the limit would stay there, and the guard's monitor with it. What is in flight counts in the new
        window."""
        now = self.clock() if now_ns is None else now_ns
        usage = self.rate_usage
        for name, (span, start) in list(self._windows.items()):
            if now - start >= span:
                self._windows[name] = (span, now - now % span)
                usage[name] = (len(self._places), usage[name][1])

    def _count_order(self, rid: int) -> None:
        """An order.place just written: counted in the ORDERS limits at once (the venue counts it on arrival)."""
        if self._windows:
            self.roll_rate_windows()
        self._places.add(rid)
        usage = self.rate_usage
        for name, (count, limit) in usage.items():
            if name[:7] == "ORDERS:":
                usage[name] = (count + 1, limit)

    @contextlib.asynccontextmanager
    async def _connect_websockets(self, url: str) -> AsyncIterator[Connection]:
        async with websockets.connect(url, compression=None, max_queue=1024, open_timeout=10) as ws:
            conn = _WebsocketsConnection(ws)
            reader = conn.reader = asyncio.create_task(self._read(ws))
            try:
                yield conn
            finally:
                reader.cancel()

    async def _read(self, ws) -> None:
        async for text in ws:
            self.handle_message(text)

    @contextlib.asynccontextmanager
    async def _connect_picows(self, url: str) -> AsyncIterator[Connection]:
        """A picows connection whose listener hands each message to :meth:`handle_message` as it is read; an
        exception there closes the connection and is raised here, on the way out (a websockets reader task raises it
        the same way). The pending requests fail as soon as the socket is gone."""
        closed = asyncio.get_running_loop().create_future()
        transport, listener = await asyncio.wait_for(picows.ws_connect(
            lambda: _PicowsListener(self.handle_message, self._fail_pending, closed), url,
            websocket_handshake_timeout=10, enable_auto_pong=True, enable_auto_ping=True, auto_ping_idle_timeout=20,
            auto_ping_reply_timeout=20, max_frame_size=1 << 24), 10)
        conn = _PicowsConnection(transport, listener)
        try:
            yield conn
        finally:
            await conn.close()
            if listener.error is not None:  # the handler's own fault: not the connection's
                raise listener.error

    def handle_message(self, text: str | bytes) -> None:
        """One frame from the venue: an answer (to its waiting request) or a user-data event."""
        try:
            msg = orjson.loads(text)
        except ValueError:
            self.stats["malformed"] += 1
            return
        places = self._places
        if places:
            places.discard(msg.get("id"))
        if "rateLimits" in msg:
            self._rate_limits(msg["rateLimits"])
        ev = msg.get("event")
        if isinstance(ev, dict):
            if ev.get("e") == "executionReport":
                self._on_report(ev)
            elif ev.get("e") == "serverShutdown":
                self.stats["server_shutdown"] += 1
                self.on_status("server_shutdown", "the venue asks clients to reconnect")
                if self._conn is not None:
                    asyncio.ensure_future(self._conn.close())
            return
        f = self._pending.pop(msg.get("id"), None)
        if f is not None and not f.done():
            f.set_result(msg)

    def _frame(self, method: str, params: dict, signed: bool) -> tuple[int, bytes]:
        """A request's id and its frame (signed: ``apiKey``, ``timestamp``, ``recvWindow``, ``signature``)."""
        p = dict(params)
        if signed:
            p["apiKey"] = self._cred.api_key
            p["timestamp"] = self.clock() // 1_000_000
            p["recvWindow"] = self.config.recv_window_ms
            if all(type(v) is str or type(v) is int for v in p.values()):  # what orders carry: the text is the value
                payload = "&".join([f"{k}={p[k]}" for k in sorted(p)])
            else:
                payload = signature_payload(p)
            inner, outer = self._mac[0].copy(), self._mac[1].copy()
            inner.update(payload.encode())
            outer.update(inner.digest())
            p["signature"] = outer.hexdigest()
        rid = next(self._ids)
        return rid, orjson.dumps({"id": rid, "method": method, "params": p})

    def _templated(self, key: tuple, method: str, fixed: dict, names: tuple[str, ...], values: tuple):
        """A signed request's id and frame, as :meth:`_frame` makes them (the same parameters, the same signature)
        but from format strings made once per ``key``: the order path's requests differ only in a few ``names``
        (str values, and ``timestamp``), so the sorted payload and the JSON are filled in, not built. ``values``
        are those of ``names`` in name order, the timestamp last; ``fixed`` holds the rest but the credentials (it
        may hold ``names`` too: ``values`` are used for them). A value that would need escaping takes
        :meth:`_frame`."""
        j = "".join(values)  # checked at once: a character is in one of them iff it is in their concatenation
        if '"' in j or "\\" in j or "%" in j or not j.isprintable():
            return self._frame(method, {**fixed, **dict(zip(names, values))}, True)
        t = self._templates.get(key)
        if t is None:
            t = self._templates[key] = self._make_template(method, fixed, names)
        payload_fmt, frame_fmt = t
        ts = self.clock() // 1_000_000
        inner, outer = self._mac[0].copy(), self._mac[1].copy()
        inner.update((payload_fmt % (*values, ts)).encode())
        outer.update(inner.digest())
        rid = next(self._ids)
        return rid, (frame_fmt % (rid, *values, ts, outer.hexdigest())).encode()

    def _make_template(self, method: str, fixed: dict, names: tuple[str, ...]) -> tuple[str, str]:
        p = dict(fixed, apiKey=self._cred.api_key, recvWindow=self.config.recv_window_ms)
        var = set(names) | {"timestamp"}
        pay, js = [], []
        for k in sorted(p.keys() | var):
            if k in var:
                pay.append(f"{k}=%s")
                js.append(f'"{k}":%d' if k == "timestamp" else f'"{k}":"%s"')
            else:
                pay.append(f"{k}={p[k]}".replace("%", "%%"))
                js.append(f"{orjson.dumps(k).decode()}:{orjson.dumps(p[k]).decode()}".replace("%", "%%"))
        if list(names) != sorted(names) or names[-1] > "timestamp":  # values are passed in name order
            raise ValueError(f"templated names must be sorted and sort before timestamp: {names}")
        head = '{"id":%d,"method":' + orjson.dumps(method).decode().replace("%", "%%") + ',"params":{'
        return "&".join(pay), head + ",".join(js) + ',"signature":"%s"}}'

    def _send_now(self, method: str, params: dict, *, signed: bool, built: tuple | None = None):
        """Write a request to the socket now, from synchronous code (a strategy's callback): no task, no loop
        iteration between the decision and the frame. Returns its id and the future of its answer (the answer is
        awaited by :meth:`_answer_of`). Raises ConnectionError when the connection cannot take it now. ``built``:
        its id and frame, already made."""
        conn = self._conn
        if conn is None:
            raise ConnectionError("not connected")
        rid, frame = built if built is not None else self._frame(method, params, signed)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            conn.send_text(frame)
        except Exception:
            self._pending.pop(rid, None)
            raise
        return rid, fut

    async def _answer_of(self, rid: int, fut: asyncio.Future) -> dict:
        try:
            return await asyncio.wait_for(fut, self.config.request_timeout_s)
        finally:
            self._pending.pop(rid, None)
            self._places.discard(rid)  # not answered in time: no longer counted as in flight

    async def _request(self, method: str, params: dict, *, signed: bool) -> dict:
        return await self._answer_of(*self._send_now(method, params, signed=signed))

    # -- orders ---------------------------------------------------------------------------------------------------------
    def submit(self, o: OwnOrder) -> None:
        """Send ``o`` now (its frame is on the socket when this returns) and apply the answer when it comes; for
        synchronous callers on the loop (a strategy's decision). Same outcome as ``await place(o)``."""
        asyncio.get_running_loop().create_task(self._placed(o, self._place_now(o)))

    async def place(self, o: OwnOrder) -> None:
        """Send ``o`` (recorded PENDING_NEW in the order book) and apply the answer."""
        await self._placed(o, self._place_now(o))

    def _place_now(self, o: OwnOrder):
        """Write ``o``'s ``order.place``; returns what :meth:`_placed` takes (id and future, or the error)."""
        try:
            sent = self._send_now("order.place", None, signed=True, built=self._place_frame(o))
        except ConnectionError as exc:
            sent = exc
        else:
            self._count_order(sent[0])
        self.stats["orders_sent"] += 1
        return sent

    def _place_frame(self, o: OwnOrder) -> tuple[int, bytes]:
        """``order.place`` of ``o``: :meth:`_place_params`, framed from the template of its symbol, side, type and
        time in force (the order's id, price and quantity filled in)."""
        p = self._place_params(o)
        if "price" in p:
            names, values = _PRICED, (p["newClientOrderId"], p["price"], p["quantity"])
        else:
            names, values = _UNPRICED, (p["newClientOrderId"], p["quantity"])
        return self._templated((o.symbol, o.side, o.type, o.tif), "order.place", p, names, values)

    async def _placed(self, o: OwnOrder, sent) -> None:
        try:
            if isinstance(sent, Exception):
                raise sent
            r = await self._answer_of(*sent)
        except (asyncio.TimeoutError, ConnectionError) as exc:
            self._unknown(o, f"no answer: {type(exc).__name__}")
            return
        self._answer(o, r)

    def _place_params(self, o: OwnOrder) -> dict:
        ins = self.instruments[o.symbol]
        params = {"symbol": o.symbol, "side": "BUY" if o.side > 0 else "SELL", "type": _TYPE_NAME[o.type],
                  "quantity": ins.lots_to_str(o.qty_lots), "newClientOrderId": o.client_order_id,
                  "newOrderRespType": "RESULT"}
        if o.type != OrderType.MARKET:
            params["price"] = ins.ticks_to_str(o.px_ticks)
        if o.type == OrderType.LIMIT:
            params["timeInForce"] = _TIF_NAME[o.tif]
        return params

    def submit_cancel(self, client_order_id: str) -> None:
        """:meth:`cancel`, its frame sent now (see :meth:`submit`)."""
        o, sent = self._cancel_now(client_order_id)
        if o is not None:
            asyncio.get_running_loop().create_task(self._cancelled(o, client_order_id, sent))

    def _cancel_now(self, client_order_id: str):
        """Mark the cancel in flight and write its ``order.cancel``; returns (the order or None if there is nothing
        to cancel, what :meth:`_cancelled` takes)."""
        o = self.orders.cancel_sent(client_order_id, self.clock())
        if o is None:
            return None, None
        try:
            built = self._templated((o.symbol, "cancel"), "order.cancel", {"symbol": o.symbol},
                                    ("origClientOrderId",), (client_order_id,))
            sent = self._send_now("order.cancel", None, signed=True, built=built)
        except ConnectionError as exc:
            sent = exc
        self._notify(o)
        return o, sent

    async def cancel(self, client_order_id: str) -> None:
        o = self.orders.cancel_sent(client_order_id, self.clock())
        if o is None:
            return
        self._notify(o)
        try:
            sent = self._send_now("order.cancel", {"symbol": o.symbol, "origClientOrderId": client_order_id},
                                  signed=True)
        except ConnectionError as exc:
            sent = exc
        await self._cancelled(o, client_order_id, sent)

    async def _cancelled(self, o: OwnOrder, client_order_id: str, sent) -> None:
        try:
            if isinstance(sent, Exception):
                raise sent
            r = await self._answer_of(*sent)
        except (asyncio.TimeoutError, ConnectionError) as exc:
            self._unknown(o, f"cancel without answer: {type(exc).__name__}")
            return
        if "error" in r:
            if self.orders.cancel_rejected(client_order_id, self.clock()) is not None:
                self._notify(o)
            if r["error"].get("code") in _UNKNOWN or r.get("status", 200) >= 500:
                self._unknown(o, r["error"].get("msg", ""))
            return
        self._apply_view(r["result"], "ack")

    async def cancel_all(self, symbol: str) -> int:
        """``openOrders.cancelAll`` for ``symbol``; returns how many the venue cancelled."""
        try:
            r = await self._request("openOrders.cancelAll", {"symbol": symbol}, signed=True)
        except (asyncio.TimeoutError, ConnectionError):
            return 0
        if "error" in r:
            return 0
        for view in r["result"]:
            self._apply_view(view, "ack")
        return len(r["result"])

    async def venue_open_orders(self, symbol: str) -> list[dict] | None:
        """``openOrders.status`` for ``symbol``: the venue's own list (None if it could not be asked)."""
        try:
            r = await self._request("openOrders.status", {"symbol": symbol}, signed=True)
        except (asyncio.TimeoutError, ConnectionError):
            return None
        return None if "error" in r else list(r["result"])

    async def account_balances(self) -> dict[str, Decimal] | None:
        """``account.status``: free + locked of each asset, as exact decimals (None if it could not be asked)."""
        try:
            r = await self._request("account.status", {}, signed=True)
        except (asyncio.TimeoutError, ConnectionError):
            return None
        if "error" in r:
            return None
        return {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in r["result"].get("balances", [])}

    async def my_trades(self, symbol: str, order_id: int) -> list[tuple[int, int, int, bool, int]] | None:
        """The venue's own list of the fills of one order (``myTrades``), as ``(px_ticks, qty_lots, fee_units,
        is_maker, trade_id)``, oldest first; None if it could not be asked. For fills whose reports were missed
        (the engine was down)."""
        ins = self.instruments[symbol]
        try:
            r = await self._request("myTrades", {"symbol": symbol, "orderId": int(order_id)}, signed=True)
        except (asyncio.TimeoutError, ConnectionError):
            return None
        if "error" in r:
            return None
        return [(ins.px_to_ticks(t["price"]), ins.qty_to_lots(t["qty"]), _units(ins, t["commission"]),
                 bool(t["isMaker"]), int(t["id"])) for t in r["result"]]

    async def reconcile(self) -> int:
        """Ask the venue for every order not final here (``order.status``); returns how many changed."""
        changed = 0
        for o in list(self.orders.open_orders()):
            self.stats["status_queries"] += 1
            try:
                r = await self._request("order.status", {"symbol": o.symbol, "origClientOrderId": o.client_order_id},
                                        signed=True)
            except (asyncio.TimeoutError, ConnectionError):
                continue
            if "error" in r:
                if r["error"].get("code") == -2013 and o.state is OrderState.PENDING_NEW:
                    # the venue never saw it: it was not placed
                    if self.orders.apply(o.client_order_id, OrderState.REJECTED, self.clock(),
                                         reason="not found on the venue after reconnect") is not None:
                        changed += 1
                        self._notify(o)
                continue
            if self._apply_view(r["result"], "reconcile"):
                changed += 1
        self.stats["reconciled"] += changed
        return changed

    # -- answers and reports ----------------------------------------------------------------------------------------------
    def _answer(self, o: OwnOrder, r: dict) -> None:
        if "error" in r:
            code = r["error"].get("code")
            if code in _UNKNOWN or r.get("status", 200) >= 500:
                self._unknown(o, r["error"].get("msg", ""))
                return
            self.stats["rejected"] += 1
            if self.orders.apply(o.client_order_id, OrderState.REJECTED, self.clock(),
                                 reason=f"{code}: {r['error'].get('msg', '')}") is not None:
                self._notify(o)
            return
        self._apply_view(r["result"], "ack")

    def _unknown(self, o: OwnOrder, why: str) -> None:
        """The venue may or may not have the order: keep it pending and ask."""
        self.stats["unknown_status"] += 1
        self.on_status("unknown_status", f"{o.client_order_id}: {why}")
        asyncio.ensure_future(self._status_later(o))

    async def _status_later(self, o: OwnOrder) -> None:
        await asyncio.sleep(0)
        if self._conn is not None and self._conn.is_open:
            await self.reconcile()

    def _apply_view(self, v: dict, source: str) -> bool:
        coid = v.get("clientOrderId") or v.get("origClientOrderId")
        o = self.orders.get(coid)
        if o is None:
            return False
        ins = self.instruments[o.symbol]
        filled = ins.qty_to_lots(v["executedQty"]) if "executedQty" in v else None
        state = _STATE.get(v.get("status", ""), None)
        if state is None:
            return False
        quote = _units(ins, v["cummulativeQuoteQty"]) if filled and "cummulativeQuoteQty" in v else None
        if self.orders.apply(coid, state, self.clock(), filled_lots=filled, quote_filled=quote,
                             order_id=int(v.get("orderId", 0))) is not None:
            self._notify(o)
            return True
        return False

    def _on_report(self, e: dict) -> None:
        self.stats["reports"] += 1
        coid = e.get("c") if e.get("x") != "CANCELED" else (e.get("C") or e.get("c"))
        o = self.orders.get(coid)
        if o is None:
            self.stats["foreign_reports"] += 1  # not ours (another client of the account, or an earlier run)
            return
        ins = self.instruments[o.symbol]
        now = self.clock()
        fee_units = 0
        fill = None
        if e.get("x") == "TRADE":
            key = (o.symbol, int(e["t"]))
            if key not in self._seen_trades:  # a report seen twice (reconnect) is one fill
                self._seen_trades.add(key)
                px, qty = ins.px_to_ticks(e["L"]), ins.qty_to_lots(e["l"])
                fee_units = _units(ins, e.get("n", "0"))
                fill = (px, qty, fee_units, bool(e.get("m")), int(e["t"]))
        quote = _units(ins, e["Z"]) if "Z" in e else None
        reason = e.get("r", "")
        changed = self.orders.apply(o.client_order_id, _STATE.get(e.get("X"), o.state), now,
                                    filled_lots=ins.qty_to_lots(e["z"]) if "z" in e else None, quote_filled=quote,
                                    fee_units=fee_units, order_id=int(e.get("i", 0)), reason="" if reason in ("", "NONE") else reason)
        if fill is not None:
            self.on_fill(o, *fill)
        if changed is not None:
            self._notify(o)

    def _notify(self, o: OwnOrder) -> None:
        self.on_order(o)


class Connection(abc.ABC):
    """The executor's order connection, whatever websocket client is under it: what the executor, the keep-warm
    dry path, the tests and the benchmark use of it.

    ``send_text(frame)`` writes one request (a JSON text frame, given as UTF-8 bytes) now, from synchronous code:
    framed, masked and handed to the transport before it returns (flow control is left to the transport's buffer:
    order frames are small and few); raises ConnectionError when the connection cannot send (not open, closing).
    ``close()`` (awaitable) closes it with a closing handshake; ``is_open`` says whether ``send_text`` may be
    called; ``wait_closed()`` returns once it is closed cleanly (by either side) and raises when it was lost."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        ...

    @abc.abstractmethod
    def send_text(self, frame: bytes) -> None:
        ...

    @abc.abstractmethod
    async def close(self) -> None:
        ...

    @abc.abstractmethod
    async def wait_closed(self) -> None:
        ...


class _WebsocketsConnection(Connection):
    """A websockets client connection; ``reader`` is the task reading it (see :meth:`Executor._read`)."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.reader: asyncio.Task | None = None

    @property
    def is_open(self) -> bool:
        return self.ws.protocol.state is State.OPEN and self.ws.send_in_progress is None

    def send_text(self, frame: bytes) -> None:
        """As ``await ws.send(text)`` would (websockets' own sans-I/O protocol frames and masks it; the connection
        writes it to the transport), without its coroutine. A fragmented message being sent cannot be
        interleaved: ConnectionError too."""
        ws = self.ws
        if ws.protocol.state is not State.OPEN or ws.send_in_progress is not None:
            raise ConnectionError("the connection cannot send now")
        ws.protocol.send_text(frame)
        ws.send_data()

    async def close(self) -> None:
        await self.ws.close()

    async def wait_closed(self) -> None:
        await self.reader  # ends when the connection does: cleanly, or raising ConnectionClosedError


class _PicowsConnection(Connection):
    """A picows client connection (its ``transport``); ``listener`` is its :class:`_PicowsListener` (None for a
    connection that is never read, as the keep-warm dry one)."""

    def __init__(self, transport, listener=None) -> None:
        self.transport = transport
        self.listener = listener
        self._closing = False  # we began the closing handshake

    @property
    def is_open(self) -> bool:
        tr = self.transport
        return not (tr.is_close_frame_sent or tr.is_disconnected)

    def send_text(self, frame: bytes) -> None:
        """picows frames and masks it in C and writes it to the socket in the same call (to the transport's buffer
        when the socket would block or data is queued already)."""
        tr = self.transport
        if tr.is_close_frame_sent or tr.is_disconnected:  # picows would drop the frame without a word
            raise ConnectionError("the connection cannot send now")
        tr.send(_TEXT, frame)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Send a close frame, wait up to ``timeout_s`` for the venue's, then close the socket."""
        tr = self.transport
        self._closing = True
        if not tr.is_disconnected:
            if not tr.is_close_frame_sent:
                tr.send_close(picows.WSCloseCode.OK)
            if self.listener is not None:  # the venue's close frame makes the listener close the socket
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self.listener.closed), timeout_s)
            tr.disconnect()
        if self.listener is not None:
            await asyncio.shield(self.listener.closed)

    async def wait_closed(self) -> None:
        await asyncio.shield(self.listener.closed)
        code = self.listener.close_code
        if not self._closing and code not in _CLEAN_CLOSE:  # as websockets' ConnectionClosedError
            raise ConnectionError("the connection was lost" if code is None else
                                  f"the venue closed the connection: {int(code)}")


if picows is not None:

    class _PicowsListener(picows.WSListener):
        """Each complete message of a picows connection (fragments reassembled) to ``on_message``, synchronously
        as it is read. An exception there is kept in ``error`` and closes the connection (1011): the executor
        raises it, as it does an exception of its websockets reader. ``on_disconnected()`` runs when the socket is
        closed, then ``closed`` is done."""

        def __init__(self, on_message: Callable[[bytes], None], on_disconnected: Callable[[], None],
                     closed: asyncio.Future) -> None:
            super().__init__()
            self.on_message = on_message
            self.on_disconnected = on_disconnected
            self.closed = closed
            self.close_code = None          # the venue's close frame's code
            self.error: Exception | None = None
            self.part: list[bytes] = []     # a fragmented message being reassembled

        def on_ws_frame(self, transport, frame) -> None:
            t = frame.msg_type
            if t == _TEXT or t == _BINARY:
                if frame.fin:
                    self._deliver(transport, frame.get_payload_as_bytes())
                else:
                    self.part = [frame.get_payload_as_bytes()]
            elif t == _CONTINUATION:
                if self.part:  # (a stray continuation is dropped)
                    self.part.append(frame.get_payload_as_bytes())
                    if frame.fin:
                        text, self.part = b"".join(self.part), []
                        self._deliver(transport, text)
            elif t == _CLOSE:
                code = self.close_code = frame.get_close_code()
                if not transport.is_close_frame_sent:  # the venue's code echoed (none: 1000)
                    transport.send_close(code if code != picows.WSCloseCode.NO_INFO else picows.WSCloseCode.OK)
                transport.disconnect()

        def _deliver(self, transport, text: bytes) -> None:
            try:
                self.on_message(text)
            except Exception as exc:
                self.error = exc
                if not transport.is_close_frame_sent:
                    transport.send_close(picows.WSCloseCode.INTERNAL_ERROR)
                transport.disconnect()

        def on_ws_disconnected(self, transport) -> None:
            self.on_disconnected()
            if not self.closed.done():
                self.closed.set_result(None)

    _TEXT, _BINARY, _CONTINUATION, _CLOSE = (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY,
                                             picows.WSMsgType.CONTINUATION, picows.WSMsgType.CLOSE)
    _CLEAN_CLOSE = (picows.WSCloseCode.OK, picows.WSCloseCode.GOING_AWAY, picows.WSCloseCode.NO_INFO)


def _hmac_states(key: bytes) -> tuple:
    """HMAC-SHA256 of ``key`` (RFC 2104) as its two SHA-256 states, keyed once: the signature of ``m`` is
    ``outer.copy() + (inner.copy() + m).digest()``'s hex digest. Two copies of hashlib's C objects cost less than
    ``hmac.HMAC.copy()`` (a Python object around them)."""
    if len(key) > 64:  # SHA-256's block
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return (hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD)))


_IPAD, _OPAD = bytes(b ^ 0x36 for b in range(256)), bytes(b ^ 0x5C for b in range(256))


def _units(ins: Instrument, amount: str) -> int:
    """A quote amount (decimal text) in notional units of tick x lot, exactly (rounded half-even below a unit)."""
    return int((Decimal(amount) / (Decimal(ins.tick_size) * Decimal(ins.lot_size))).to_integral_value())
