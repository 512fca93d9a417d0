"""The simulated venue's sans-I/O contract: requests in, views and events out, time passed in.

Everything the Binance-compatible server (and, later, the backtester) needs from a venue is here, so that the
matching engine (:mod:`workbench.venue.matching`, synthetic market), the replay venue (:mod:`workbench.venue.replay`,
recorded market) and the protocol layer can be built and tested apart.

Units: prices in integer ticks and sizes in integer lots of the symbol's :class:`~workbench.instrument.Instrument`;
quote amounts (notional, commissions, quote balances) in integer *notional units* of tick x lot (1e-10 USDT for
spot BTCUSDT), so that a fill's notional is exactly ``px_ticks * qty_lots``; fee rates in parts per million, and a
commission is that notional times the rate rounded *up* to a whole unit (:func:`commission_units`: the venue never
undercharges a fee nor overpays a rebate). Times in int64 ns. Expected outcomes (a rejection, an unknown order) are
values, never exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from workbench.instrument import Instrument

__all__ = [
    "OrderType",
    "TimeInForce",
    "OrderStatus",
    "ErrorCode",
    "SymbolSpec",
    "FeeSchedule",
    "OrderRequest",
    "OrderView",
    "Fill",
    "Rejection",
    "PlaceResult",
    "CancelResult",
    "ExecutionReport",
    "TradePrint",
    "LevelChange",
    "DepthSnapshot",
    "Venue",
    "commission_units",
]

_PPM = 1_000_000


def commission_units(px_ticks: int, qty_lots: int, fee_ppm: int) -> int:
    """``ceil(px_ticks * qty_lots * fee_ppm / 1e6)`` in notional units, exact and without int64 overflow when
    written the same way in a kernel: the notional is split into millions and a remainder."""
    n = px_ticks * qty_lots
    hi, lo = divmod(n, _PPM)
    return hi * fee_ppm + -((-lo * fee_ppm) // _PPM)


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2
    LIMIT_MAKER = 3  # post-only: rejected if it would take


class TimeInForce(IntEnum):
    GTC = 1
    IOC = 2
    FOK = 3


class OrderStatus(IntEnum):
    NEW = 1
    PARTIALLY_FILLED = 2
    FILLED = 3
    CANCELED = 4
    REJECTED = 5
    EXPIRED = 6  # IOC/FOK/MARKET remainder, or the taker side of a self-trade (STP EXPIRE_TAKER)

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class ErrorCode(IntEnum):
    """Binance's codes for what a venue can refuse."""

    UNKNOWN = -1000
    DISCONNECTED = -1001
    UNAUTHORIZED = -1002
    TOO_MANY_REQUESTS = -1003
    UNEXPECTED_RESP = -1006          # "execution status unknown"
    TIMEOUT = -1007
    INVALID_MESSAGE = -1013          # filter failure
    INVALID_TIMESTAMP = -1021        # outside recvWindow
    INVALID_SIGNATURE = -1022
    TOO_MANY_ORDERS = -1015
    ILLEGAL_CHARS = -1100
    TOO_MANY_PARAMETERS = -1101
    MANDATORY_PARAM_EMPTY_OR_MALFORMED = -1102
    UNKNOWN_PARAM = -1103
    BAD_SYMBOL = -1121
    INVALID_JSON = -1135             # errors.md: unparsable JSON
    NEW_ORDER_REJECTED = -2010
    CANCEL_REJECTED = -2011
    NO_SUCH_ORDER = -2013
    BAD_API_KEY_FMT = -2014
    REJECTED_MBX_KEY = -2015


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Commission rates in parts per million of notional; a negative maker rate is a rebate."""

    maker_ppm: int = 100   # 1 bp
    taker_ppm: int = 100


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """A tradable symbol: increments and the filters orders must pass (Binance's exchangeInfo)."""

    instrument: Instrument
    base_asset: str
    quote_asset: str
    min_qty_lots: int = 1
    max_qty_lots: int = 9_000_000_000_000
    min_notional_ticks_lots: int = 0  # px_ticks * qty_lots at least this (NOTIONAL filter), 0 = no filter

    @property
    def symbol(self) -> str:
        return self.instrument.symbol


@dataclass(frozen=True, slots=True)
class OrderRequest:
    account: int
    symbol: str
    side: int                 # +1 BUY, -1 SELL
    type: OrderType
    qty_lots: int
    px_ticks: int = 0         # LIMIT / LIMIT_MAKER only
    tif: TimeInForce = TimeInForce.GTC
    client_order_id: str = ""  # the venue makes one when empty


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as the venue knows it now."""

    order_id: int
    client_order_id: str
    account: int
    symbol: str
    side: int
    type: OrderType
    tif: TimeInForce
    px_ticks: int
    qty_lots: int
    filled_lots: int
    quote_filled: int          # sum of px_ticks * qty_lots of its fills
    status: OrderStatus
    created_ns: int
    updated_ns: int


@dataclass(frozen=True, slots=True)
class Fill:
    trade_id: int
    order_id: int
    account: int
    side: int
    px_ticks: int
    qty_lots: int
    is_maker: bool
    commission: int           # notional units of the quote asset, negative for a rebate
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Rejection:
    code: ErrorCode
    message: str              # Binance's wording where there is one, e.g. "Filter failure: PRICE_FILTER"


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """What ``place`` did: the order after matching (None if rejected), its fills, or the rejection."""

    order: OrderView | None
    fills: tuple[Fill, ...] = ()
    rejection: Rejection | None = None


@dataclass(frozen=True, slots=True)
class CancelResult:
    order: OrderView | None
    rejection: Rejection | None = None


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """One change of one order (Binance ``executionReport``): execution type NEW, TRADE, CANCELED, REJECTED,
    EXPIRED. ``fill`` is set for TRADE."""

    exec_type: str
    order: OrderView
    fill: Fill | None
    ts_ns: int


@dataclass(frozen=True, slots=True)
class TradePrint:
    symbol: str
    trade_id: int
    px_ticks: int
    qty_lots: int
    buyer_is_maker: bool
    ts_ns: int


@dataclass(frozen=True, slots=True)
class LevelChange:
    """A level of the public book got a new total size (0 deletes it); ``update_id`` is the per-symbol counter shared
    with depth snapshots and book tickers. ``first_update_id``: the first id of the message the change came in, when
    that is not ``update_id`` (a replayed Binance diff's ``U``: the ids between were used by the real exchange, and
    a client checks ``U == previous u + 1``)."""

    symbol: str
    update_id: int
    side: int
    px_ticks: int
    qty_lots: int
    ts_ns: int
    first_update_id: int | None = None


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    symbol: str
    last_update_id: int
    bids: list[tuple[int, int]] = field(default_factory=list)  # (px_ticks, qty_lots), best first
    asks: list[tuple[int, int]] = field(default_factory=list)


class Venue(Protocol):
    """What a simulated exchange offers its server. All methods are synchronous and take the time."""

    symbols: dict[str, SymbolSpec]

    def place(self, req: OrderRequest, now_ns: int) -> PlaceResult: ...

    def cancel(
        self, account: int, symbol: str, now_ns: int, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> CancelResult: ...

    def cancel_all(self, account: int, symbol: str, now_ns: int) -> list[OrderView]: ...

    def order(
        self, account: int, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> OrderView | None: ...

    def open_orders(self, account: int, symbol: str | None = None) -> list[OrderView]: ...

    def fees_of(self, account: int) -> FeeSchedule:
        """The commission rates of ``account``."""
        ...

    def balances(self, account: int) -> dict[str, tuple[int, int]]:
        """asset -> (free, locked) in lots (base asset) or notional units (quote asset)."""
        ...

    def depth(self, symbol: str, limit: int) -> DepthSnapshot: ...

    def advance(self, now_ns: int) -> None:
        """Let the market (synthetic flow or the recording) run up to ``now_ns``."""
        ...

    def poll(self) -> list[ExecutionReport | TradePrint | LevelChange]:
        """Events since the last poll, in the order they happened (execution reports of every account)."""
        ...
