"""The order state machine shared by the backtester and the live executor, keyed by client order id.

States are Binance's (NEW, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED) plus two local ones for what is
in flight: PENDING_NEW (sent, not yet acknowledged) and PENDING_CANCEL (a cancel sent for an open order).

Reports arrive out of order on a real connection (an ``executionReport`` of a fill may overtake the answer to
``order.place``; a cancel may cross a fill), so :meth:`OrderBook.apply` takes *progress*, never regress: filled
size only grows, a terminal state is final, and a report of an earlier state than the one known changes nothing.
Every change that takes effect is returned, so the caller can hand it to the strategy and the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from workbench.exceptions import ConfigError
from workbench.venue.api import OrderType, TimeInForce

__all__ = ["OrderState", "OwnOrder", "OrderBook", "TERMINAL"]


class OrderState(IntEnum):
    PENDING_NEW = 0
    NEW = 1
    PARTIALLY_FILLED = 2
    FILLED = 3
    CANCELED = 4
    REJECTED = 5
    EXPIRED = 6
    PENDING_CANCEL = 7

    @property
    def is_open(self) -> bool:
        """Resting, or possibly resting (in flight): counts against limits and exposure."""
        return self not in TERMINAL

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED})


@dataclass(slots=True)
class OwnOrder:
    """One of our orders, as we know it (integers: ticks and lots; times in ns)."""

    client_order_id: str
    symbol: str
    side: int                     # +1 buy, -1 sell
    type: OrderType
    tif: TimeInForce
    qty_lots: int
    px_ticks: int                 # 0 for MARKET
    state: OrderState = OrderState.PENDING_NEW
    filled_lots: int = 0
    quote_filled: int = 0         # sum of px_ticks * qty_lots of its fills
    fee_units: int = 0            # commissions paid, notional units of the quote asset (negative: rebates)
    order_id: int = 0             # the venue's id once acknowledged
    created_ns: int = 0
    updated_ns: int = 0
    reason: str = ""              # why it was rejected or expired, when known
    tag: str = ""                 # the strategy's own label (e.g. "bid", "exit")
    history: list = field(default_factory=list, repr=False)  # (ts_ns, state) of every change

    @property
    def open_lots(self) -> int:
        return self.qty_lots - self.filled_lots if self.state.is_open else 0

    @property
    def avg_px_ticks(self) -> float:
        return self.quote_filled / self.filled_lots if self.filled_lots else 0.0


_RANK = {
    OrderState.PENDING_NEW: 0, OrderState.NEW: 1, OrderState.PENDING_CANCEL: 2, OrderState.PARTIALLY_FILLED: 2,
    OrderState.FILLED: 9, OrderState.CANCELED: 9, OrderState.REJECTED: 9, OrderState.EXPIRED: 9,
}


class OrderBook:
    """Our orders by client order id: what was sent, what the venue said, what filled.

    ``prefix``: client order ids are ``{prefix}{n}`` (Binance allows ``^[a-zA-Z0-9-_]{1,36}$``); give each run its
    own prefix so ids of a restarted engine never collide with those of the run before.
    """

    def __init__(self, prefix: str = "wb") -> None:
        if not prefix or len(prefix) > 20 or not all(c.isalnum() or c in "-_" for c in prefix):
            raise ConfigError(f"client order id prefix must be 1-20 characters of [a-zA-Z0-9-_], got {prefix!r}")
        self.prefix = prefix
        self._n = 0
        self.orders: dict[str, OwnOrder] = {}
        self._open: dict[str, OwnOrder] = {}

    def new_id(self) -> str:
        self._n += 1
        return f"{self.prefix}{self._n}"

    def submit(self, symbol: str, side: int, type: OrderType, qty_lots: int, px_ticks: int, tif: TimeInForce,
               ts_ns: int, *, client_order_id: str | None = None, tag: str = "") -> OwnOrder:
        """Record an order about to be sent (PENDING_NEW)."""
        coid = client_order_id or self.new_id()
        if coid in self.orders:
            raise ConfigError(f"client order id {coid!r} already used")
        o = OwnOrder(coid, symbol, int(side), type, tif, int(qty_lots), int(px_ticks), created_ns=ts_ns,
                     updated_ns=ts_ns, tag=tag)
        o.history.append((ts_ns, o.state))
        self.orders[coid] = o
        self._open[coid] = o
        return o

    def restore(self, orders: list[OwnOrder] | tuple[OwnOrder, ...]) -> int:
        """Take back orders of an earlier run (from the journal after a crash), as they were last known; returns
        how many. Terminal orders are kept for lookups only; open ones (in flight included) are open again, to be
        reconciled with the venue. An id already here raises :class:`ConfigError`; ids of this book's own prefix
        are not handed out again (the counter moves past the highest restored one)."""
        for o in orders:
            if o.client_order_id in self.orders:
                raise ConfigError(f"client order id {o.client_order_id!r} already used")
        for o in orders:
            self.orders[o.client_order_id] = o
            if o.state.is_open:
                self._open[o.client_order_id] = o
            tail = o.client_order_id[len(self.prefix):]
            if o.client_order_id.startswith(self.prefix) and tail.isdigit():
                self._n = max(self._n, int(tail))
        return len(orders)

    def get(self, client_order_id: str) -> OwnOrder | None:
        return self.orders.get(client_order_id)

    def open_orders(self, symbol: str | None = None) -> list[OwnOrder]:
        """Orders not yet terminal (in flight included), oldest first."""
        return [o for o in self._open.values() if symbol is None or o.symbol == symbol]

    def cancel_sent(self, client_order_id: str, ts_ns: int) -> OwnOrder | None:
        """Mark a cancel in flight; None (nothing to do) if the order is unknown or already closed."""
        o = self._open.get(client_order_id)
        if o is None or o.state is OrderState.PENDING_CANCEL:
            return None
        self._set(o, OrderState.PENDING_CANCEL, ts_ns)
        return o

    def cancel_rejected(self, client_order_id: str, ts_ns: int) -> OwnOrder | None:
        """The venue refused a cancel: the order is what it was before (it may have filled meanwhile)."""
        o = self._open.get(client_order_id)
        if o is None or o.state is not OrderState.PENDING_CANCEL:
            return None
        back = OrderState.PARTIALLY_FILLED if o.filled_lots else (
            OrderState.NEW if o.order_id else OrderState.PENDING_NEW)
        self._set(o, back, ts_ns)
        return o

    def apply(self, client_order_id: str, state: OrderState, ts_ns: int, *, filled_lots: int | None = None,
              quote_filled: int | None = None, fee_units: int = 0, order_id: int = 0,
              reason: str = "") -> OwnOrder | None:
        """Take a report of the venue (an acknowledgement, an execution report, a status query); returns the
        order if anything changed, else None. Unknown ids return None (not ours, or from an earlier run)."""
        o = self.orders.get(client_order_id)
        if o is None:
            return None
        changed = False
        if order_id and not o.order_id:
            o.order_id = order_id
            changed = True
        if filled_lots is not None and filled_lots > o.filled_lots:
            o.filled_lots = int(filled_lots)
            if quote_filled is not None:
                o.quote_filled = int(quote_filled)
            changed = True
        if fee_units:
            o.fee_units += int(fee_units)
            changed = True
        if reason and not o.reason:
            o.reason = reason
        cur = o.state
        if not cur.is_terminal:
            new = state
            if new is OrderState.NEW and o.filled_lots:
                new = OrderState.PARTIALLY_FILLED
            # progress only: a late NEW after a fill, or a fill while a cancel is in flight, keeps the state
            if new.is_terminal or _RANK[new] > _RANK[cur]:
                self._set(o, new, ts_ns)
                changed = True
        if changed:
            o.updated_ns = max(o.updated_ns, ts_ns)
            return o
        return None

    def _set(self, o: OwnOrder, state: OrderState, ts_ns: int) -> None:
        o.state = state
        o.updated_ns = max(o.updated_ns, ts_ns)
        o.history.append((ts_ns, state))
        if state.is_terminal:
            self._open.pop(o.client_order_id, None)
