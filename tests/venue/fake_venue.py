"""A small, deterministic :class:`workbench.venue.api.Venue` in plain Python, for testing the layers above it.

Price-time priority over the resting orders of every account; LIMIT (GTC/IOC/FOK), MARKET and LIMIT_MAKER;
maker/taker commissions in the quote asset; balances locked while an order rests. Every change is reported by
:meth:`poll` in order: execution reports (NEW, TRADE, CANCELED, EXPIRED), trade prints and level changes.
Not a model of anything: no latency, no queue model, no self-trade prevention.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from workbench.instrument import Instrument
from workbench.venue.api import (
    CancelResult,
    DepthSnapshot,
    ErrorCode,
    ExecutionReport,
    FeeSchedule,
    Fill,
    LevelChange,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderView,
    PlaceResult,
    Rejection,
    SymbolSpec,
    TimeInForce,
    TradePrint,
    commission_units,
)

BTCUSDT = SymbolSpec(Instrument("BTCUSDT", tick_size="0.01", lot_size="0.00001"), "BTC", "USDT",
                     min_qty_lots=1, max_qty_lots=900_000_000, min_notional_ticks_lots=50_000_000)  # 5 USDT in 1e-7
ETHUSDT = SymbolSpec(Instrument("ETHUSDT", tick_size="0.01", lot_size="0.00001"), "ETH", "USDT")
ETHBTC = SymbolSpec(Instrument("ETHBTC", tick_size="0.00001", lot_size="0.0001"), "ETH", "BTC")


@dataclass(slots=True)
class _Order:
    view: OrderView

    @property
    def remaining(self) -> int:
        return self.view.qty_lots - self.view.filled_lots


class FakeVenue:
    """An in-memory venue. ``deposit`` funds an account; amounts in lots (base) or notional units (quote)."""

    def __init__(self, symbols=(BTCUSDT,), fees: FeeSchedule = FeeSchedule(maker_ppm=-50, taker_ppm=700)):
        self.symbols = {s.symbol: s for s in symbols}
        self.fees = fees
        self._orders: dict[int, _Order] = {}
        self._book: dict[str, list[int]] = {s: [] for s in self.symbols}  # resting order ids, time order
        self._balances: dict[int, dict[str, list[int]]] = {}
        self._events: list = []
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._update_ids = {s: itertools.count(1) for s in self.symbols}
        self._last_update = {s: 0 for s in self.symbols}
        self.now_ns = 0

    # -- funding and helpers -----------------------------------------------------------------------------------
    def deposit(self, account: int, asset: str, amount: int) -> None:
        self._bal(account, asset)[0] += amount

    def _bal(self, account: int, asset: str) -> list[int]:
        return self._balances.setdefault(account, {}).setdefault(asset, [0, 0])

    def _level_qty(self, symbol: str, side: int, px: int) -> int:
        return sum(self._orders[i].remaining for i in self._book[symbol]
                   if self._orders[i].view.side == side and self._orders[i].view.px_ticks == px)

    def _level_change(self, symbol: str, side: int, px: int, ts_ns: int) -> None:
        uid = next(self._update_ids[symbol])
        self._last_update[symbol] = uid
        self._events.append(LevelChange(symbol, uid, side, px, self._level_qty(symbol, side, px), ts_ns))

    def _report(self, exec_type: str, order: _Order, ts_ns: int, fill: Fill | None = None) -> None:
        self._events.append(ExecutionReport(exec_type, order.view, fill, ts_ns))

    # -- Venue -------------------------------------------------------------------------------------------------
    def place(self, req: OrderRequest, now_ns: int) -> PlaceResult:
        spec = self.symbols.get(req.symbol)
        if spec is None:
            return PlaceResult(None, (), Rejection(ErrorCode.BAD_SYMBOL, "Invalid symbol."))
        cid = req.client_order_id or f"fake{next(self._order_ids) + 10**6:018d}"
        if any(o.view.client_order_id == cid and o.view.status.is_open and o.view.account == req.account
               for o in self._orders.values()):
            return PlaceResult(None, (), Rejection(ErrorCode.NEW_ORDER_REJECTED, "Duplicate order sent."))
        against = sorted(
            (i for i in self._book[req.symbol] if self._orders[i].view.side == -req.side
             and (req.type == OrderType.MARKET or (self._orders[i].view.px_ticks - req.px_ticks) * req.side <= 0)),
            key=lambda i: (self._orders[i].view.px_ticks * req.side, i),
        )
        if req.type == OrderType.LIMIT_MAKER and against:
            return PlaceResult(None, (), Rejection(ErrorCode.NEW_ORDER_REJECTED,
                                                   "Order would immediately match and take."))
        if req.type != OrderType.MARKET:
            need, asset = ((req.px_ticks * req.qty_lots, spec.quote_asset) if req.side > 0
                           else (req.qty_lots, spec.base_asset))
            bal = self._bal(req.account, asset)
            if bal[0] < need:
                return PlaceResult(None, (), Rejection(ErrorCode.NEW_ORDER_REJECTED,
                                                       "Account has insufficient balance for requested action."))
            bal[0] -= need
            bal[1] += need
        oid = next(self._order_ids)
        order = _Order(OrderView(oid, cid, req.account, req.symbol, req.side, req.type, req.tif, req.px_ticks,
                                 req.qty_lots, 0, 0, OrderStatus.NEW, now_ns, now_ns))
        self._orders[oid] = order
        self._report("NEW", order, now_ns)
        available = sum(self._orders[i].remaining for i in against)
        fills: list[Fill] = []
        if not (req.tif == TimeInForce.FOK and available < req.qty_lots):
            for i in against:
                if order.remaining == 0:
                    break
                fills.append(self._match(spec, order, self._orders[i], now_ns))
        if order.remaining and (req.type == OrderType.MARKET or req.tif != TimeInForce.GTC):
            self._finish(spec, order, OrderStatus.EXPIRED, "EXPIRED", now_ns)
        elif order.remaining:
            self._book[req.symbol].append(oid)
            self._level_change(req.symbol, req.side, req.px_ticks, now_ns)
        return PlaceResult(order.view, tuple(fills))

    def _match(self, spec: SymbolSpec, taker: _Order, maker: _Order, ts_ns: int) -> Fill:
        qty = min(taker.remaining, maker.remaining)
        px = maker.view.px_ticks
        trade_id = next(self._trade_ids)
        fills = {}
        for o, is_maker in ((maker, True), (taker, False)):
            v = o.view
            fee = commission_units(px, qty, self.fees.maker_ppm if is_maker else self.fees.taker_ppm)
            base, quote = self._bal(v.account, spec.base_asset), self._bal(v.account, spec.quote_asset)
            if v.side > 0:
                if v.type != OrderType.MARKET:  # release what this part locked at the order's own price
                    quote[1] -= v.px_ticks * qty
                    quote[0] += v.px_ticks * qty
                quote[0] -= px * qty + fee
                base[0] += qty
            else:
                base[1 if v.type != OrderType.MARKET else 0] -= qty  # a resting sell locked its size
                quote[0] += px * qty - fee
            filled = v.filled_lots + qty
            o.view = replace(v, filled_lots=filled, quote_filled=v.quote_filled + px * qty,
                             status=OrderStatus.FILLED if filled == v.qty_lots else OrderStatus.PARTIALLY_FILLED,
                             updated_ns=ts_ns)
            fills[is_maker] = Fill(trade_id, v.order_id, v.account, v.side, px, qty, is_maker, fee, ts_ns)
            self._report("TRADE", o, ts_ns, fills[is_maker])
        self._events.append(TradePrint(spec.symbol, trade_id, px, qty, maker.view.side > 0, ts_ns))
        if maker.remaining == 0:
            self._book[spec.symbol].remove(maker.view.order_id)
        self._level_change(spec.symbol, maker.view.side, px, ts_ns)
        return fills[False]

    def _finish(self, spec: SymbolSpec, order: _Order, status: OrderStatus, exec_type: str, ts_ns: int) -> None:
        v = order.view
        if v.type != OrderType.MARKET:
            if v.side > 0:
                bal, amount = self._bal(v.account, spec.quote_asset), v.px_ticks * order.remaining
            else:
                bal, amount = self._bal(v.account, spec.base_asset), order.remaining
            bal[1] -= amount
            bal[0] += amount
        order.view = replace(v, status=status, updated_ns=ts_ns)
        self._report(exec_type, order, ts_ns)
        if v.order_id in self._book[v.symbol]:
            self._book[v.symbol].remove(v.order_id)
            self._level_change(v.symbol, v.side, v.px_ticks, ts_ns)

    def _find(self, account, symbol, order_id=None, client_order_id=None) -> _Order | None:
        if order_id is not None:
            o = self._orders.get(order_id)
            return o if o is not None and o.view.account == account and o.view.symbol == symbol else None
        found = [o for o in self._orders.values() if o.view.account == account and o.view.symbol == symbol
                 and o.view.client_order_id == client_order_id]
        return found[-1] if found else None

    def cancel(self, account, symbol, now_ns, *, order_id=None, client_order_id=None) -> CancelResult:
        o = self._find(account, symbol, order_id, client_order_id)
        if o is None or not o.view.status.is_open:
            return CancelResult(None, Rejection(ErrorCode.CANCEL_REJECTED, "Unknown order sent."))
        self._finish(self.symbols[symbol], o, OrderStatus.CANCELED, "CANCELED", now_ns)
        return CancelResult(o.view)

    def cancel_all(self, account, symbol, now_ns) -> list[OrderView]:
        out = []
        for oid in list(self._book.get(symbol, [])):
            o = self._orders[oid]
            if o.view.account == account:
                self._finish(self.symbols[symbol], o, OrderStatus.CANCELED, "CANCELED", now_ns)
                out.append(o.view)
        return out

    def order(self, account, symbol, *, order_id=None, client_order_id=None) -> OrderView | None:
        o = self._find(account, symbol, order_id, client_order_id)
        return None if o is None else o.view

    def open_orders(self, account, symbol=None) -> list[OrderView]:
        return [o.view for o in self._orders.values() if o.view.account == account and o.view.status.is_open
                and (symbol is None or o.view.symbol == symbol)]

    def balances(self, account) -> dict[str, tuple[int, int]]:
        return {a: (f, lk) for a, (f, lk) in sorted(self._balances.get(account, {}).items())}

    def depth(self, symbol, limit) -> DepthSnapshot:
        levels: dict[tuple[int, int], int] = {}
        for oid in self._book[symbol]:
            v = self._orders[oid].view
            levels[(v.side, v.px_ticks)] = levels.get((v.side, v.px_ticks), 0) + self._orders[oid].remaining
        bids = sorted(((p, q) for (s, p), q in levels.items() if s > 0), reverse=True)[:limit]
        asks = sorted((p, q) for (s, p), q in levels.items() if s < 0)[:limit]
        return DepthSnapshot(symbol, self._last_update[symbol], bids, asks)

    def advance(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def poll(self) -> list:
        events, self._events = self._events, []
        return events


# -- a signing WebSocket API client over a Protocol, for the protocol tests -------------------------------------

T0_MS = 1_700_000_040_000          # 2023-11-14T22:14:00Z, on a 10 s and a 1 min boundary
T0_NS = T0_MS * 1_000_000
KEYS = {"key-maker-0001": ("secret-maker", 1), "key-taker-0002": ("secret-taker", 2)}


class ApiClient:
    """Sends requests to :meth:`Protocol.handle_ws_api` on one session and decodes the answers."""

    def __init__(self, protocol, api_key: str = "key-maker-0001", *, now_ns: int = T0_NS, session=None):
        import json

        from workbench.venue import signing

        self._json, self._signing = json, signing
        self.protocol = protocol
        self.api_key = api_key
        self.secret = KEYS[api_key][0] if api_key in KEYS else "unknown-secret"
        self.now_ns = now_ns
        self.session = session if session is not None else protocol.open_session(now_ns)
        self._ids = itertools.count(1)

    def signed_params(self, params: dict | None = None, *, timestamp_ms: int | None = None) -> dict:
        p = dict(params or {})
        p["apiKey"] = self.api_key
        p.setdefault("timestamp", self.now_ns // 1_000_000 if timestamp_ms is None else timestamp_ms)
        p["signature"] = self._signing.sign(self.secret, self._signing.signature_payload(p))
        return p

    def send_text(self, text: str) -> dict:
        frames = self.protocol.handle_ws_api(self.session, text, self.now_ns)
        assert len(frames) == 1 and isinstance(frames[0], str)
        return self._json.loads(frames[0])

    def call(self, method: str, params: dict | None = None, *, signed: bool = False, rid=...) -> dict:
        rid = f"req-{next(self._ids)}" if rid is ... else rid
        params = self.signed_params(params) if signed else (params or {})
        return self.send_text(self._json.dumps({"id": rid, "method": method, "params": params}))

    def ok(self, method: str, params: dict | None = None, *, signed: bool = False):
        resp = self.call(method, params, signed=signed)
        assert resp["status"] == 200, resp
        return resp["result"]


def make_protocol(config=None, *, symbols=(BTCUSDT,)):
    """A Protocol over a funded FakeVenue (accounts 1 and 2: 10 BTC, 1,000,000 USDT, with ETHUSDT 100 ETH)."""
    from workbench.venue.protocol import Protocol

    venue = FakeVenue(symbols)
    for account in (1, 2):
        venue.deposit(account, "BTC", 10 * 100_000)                    # lots of 0.00001
        venue.deposit(account, "USDT", 1_000_000 * 100 * 100_000)      # notional units of 1e-7 USDT
        if "ETHUSDT" in venue.symbols:
            venue.deposit(account, "ETH", 100 * 100_000)
    return Protocol(venue, keys=KEYS, config=config), venue
