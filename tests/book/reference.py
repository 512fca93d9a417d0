"""A plain-Python L2 book with the semantics documented in workbench.book.nb, for checking the kernels."""

from __future__ import annotations

from workbench.enums import (
    F_BATCH_END,
    F_CLEAR,
    K_DEPTH,
    K_ORDER_ADD,
    K_ORDER_CANCEL,
    K_ORDER_DELETE,
    K_ORDER_EXEC,
    K_SNAPSHOT,
)


class RefBook:
    def __init__(self):
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.crossed = 0
        self.clamped = 0
        self.uncrossed = 0

    def best(self):
        bb = max(self.bids) if self.bids else None
        ba = min(self.asks) if self.asks else None
        return bb, self.bids.get(bb, 0), ba, self.asks.get(ba, 0)

    def top(self, n):
        b = sorted(self.bids.items(), reverse=True)[:n]
        a = sorted(self.asks.items())[:n]
        return b, a

    def apply_row(self, kind, side, px, qty, flags):
        if flags & F_CLEAR:
            self.bids.clear()
            self.asks.clear()
        if side != 0:
            book = self.bids if side > 0 else self.asks
            if kind in (K_DEPTH, K_SNAPSHOT):
                new = qty
            elif kind == K_ORDER_ADD:
                new = book.get(px, 0) + qty
            elif kind in (K_ORDER_CANCEL, K_ORDER_DELETE, K_ORDER_EXEC):
                new = book.get(px, 0) - qty
                if new < 0:
                    self.clamped += 1
                    new = 0
            else:
                new = None
            if new is not None:
                if new > 0:
                    book[px] = new
                else:
                    book.pop(px, None)
            if kind == K_ORDER_ADD and qty > 0:
                other = self.asks if side > 0 else self.bids
                for p in [p for p in other if (p <= px if side > 0 else p >= px)]:
                    del other[p]
                    self.uncrossed += 1
        if flags & F_BATCH_END:
            bb, _, ba, _ = self.best()
            if bb is not None and ba is not None and bb >= ba:
                self.crossed += 1
