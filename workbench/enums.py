"""Integer enums shared by the engine; plain ints so numba kernels can use them.

EventKind (column ``kind`` of :data:`workbench.types.event_dt`)

=====  ===================  ==================================================================
value  name                 meaning of the row
=====  ===================  ==================================================================
1      SNAPSHOT             one level of a book snapshot, ``qty_lots`` absolute
2      DEPTH                one level of a depth diff, ``qty_lots`` absolute, 0 deletes the level;
                            ``side`` 0 marks a diff that carried no level (kept for the id chain)
3      TRADE                a trade print; ``side`` is the aggressor (BUY or SELL, 0 unknown)
4      BBO                  best bid (``side`` BID) or best offer (``side`` ASK) as quoted by the venue
5      ORDER_ADD            order-level (L3) new limit order, ``id`` is the order id
6      ORDER_CANCEL         partial cancel, ``qty_lots`` is the size removed
7      ORDER_DELETE         full delete of the order, ``qty_lots`` is the size removed
8      ORDER_EXEC           visible execution against a resting order (``side`` = resting side)
9      ORDER_EXEC_HIDDEN    execution against hidden liquidity (book unchanged)
10     CROSS_TRADE          auction / cross trade (book unchanged)
11     STATUS               trading status change, ``id`` holds a :class:`TradingStatus`
=====  ===================  ==================================================================

Side: BID/BUY = 1, ASK/SELL = -1, NONE = 0 (the sign of a position change).

EventFlag bits (column ``flags``): BATCH_END marks the last row of one venue message, after which the book is
consistent; CLEAR asks the book to empty itself before this row (first row of a snapshot); RESYNC marks the first
row after the stream was resynchronised; SUSPICIOUS marks a row the source itself flagged as doubtful (kept, so a
consumer can choose to skip it); GAP marks the row where the book lost sync (it comes with CLEAR: the book is
unknown until the next snapshot).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = ["EventKind", "Side", "EventFlag", "TradingStatus"]


class EventKind(IntEnum):
    SNAPSHOT = 1
    DEPTH = 2
    TRADE = 3
    BBO = 4
    ORDER_ADD = 5
    ORDER_CANCEL = 6
    ORDER_DELETE = 7
    ORDER_EXEC = 8
    ORDER_EXEC_HIDDEN = 9
    CROSS_TRADE = 10
    STATUS = 11


class Side(IntEnum):
    NONE = 0
    BID = 1
    ASK = -1
    BUY = 1
    SELL = -1


class EventFlag(IntFlag):
    NONE = 0
    BATCH_END = 1
    CLEAR = 2
    RESYNC = 4
    SUSPICIOUS = 8
    GAP = 16


class TradingStatus(IntEnum):
    """LOBSTER's type-7 messages: -1 halt, 0 quoting resumes, 1 trading resumes."""

    HALTED = 1
    QUOTING = 2
    TRADING = 3


# Module-level ints: numba folds globals into constants, so kernels read these at no cost.
K_SNAPSHOT = int(EventKind.SNAPSHOT)
K_DEPTH = int(EventKind.DEPTH)
K_TRADE = int(EventKind.TRADE)
K_BBO = int(EventKind.BBO)
K_ORDER_ADD = int(EventKind.ORDER_ADD)
K_ORDER_CANCEL = int(EventKind.ORDER_CANCEL)
K_ORDER_DELETE = int(EventKind.ORDER_DELETE)
K_ORDER_EXEC = int(EventKind.ORDER_EXEC)
K_ORDER_EXEC_HIDDEN = int(EventKind.ORDER_EXEC_HIDDEN)
K_CROSS_TRADE = int(EventKind.CROSS_TRADE)
K_STATUS = int(EventKind.STATUS)
F_BATCH_END = int(EventFlag.BATCH_END)
F_CLEAR = int(EventFlag.CLEAR)
F_RESYNC = int(EventFlag.RESYNC)
F_SUSPICIOUS = int(EventFlag.SUSPICIOUS)
F_GAP = int(EventFlag.GAP)
BID = 1
ASK = -1
