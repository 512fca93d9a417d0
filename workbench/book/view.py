"""A strategy's read-only view of an :class:`~workbench.book.L2Book`, with the top and the best levels cached until
the book moves (the strategy and the risk guard read them several times per update; each read is a kernel call)."""

from __future__ import annotations

from workbench.book.book import L2Book, TopOfBook
from workbench.book.nb import DEPTH_LEVELS

__all__ = ["BOOK_LEVELS", "BookLevelsView"]

BOOK_LEVELS = DEPTH_LEVELS  # levels a side the guard's depth and the strategy's book views read by default


class BookLevelsView:
    """Best bid/ask, mid, top levels and depth of ``book`` (ticks and lots), as a strategy reads them.

    Call :meth:`invalidate` after the book changed; :meth:`set_top` takes a top computed elsewhere (a kernel that
    moved the book and knows its touch) instead of asking the book again.
    """

    __slots__ = ("_book", "_top", "_levels")

    def __init__(self, book: L2Book) -> None:
        self._book = book
        self._top: TopOfBook | None = None
        self._levels = None

    def invalidate(self) -> None:
        self._top = self._levels = None

    def set_top(self, top: TopOfBook) -> None:
        self._top = top

    def top(self) -> TopOfBook:
        if self._top is None:
            self._top = self._book.top()
        return self._top

    def best_bid_ticks(self) -> int | None:
        return self.top().bid_px_ticks

    def best_ask_ticks(self) -> int | None:
        return self.top().ask_px_ticks

    def mid_ticks(self) -> float | None:
        t = self.top()
        if t.bid_px_ticks is None or t.ask_px_ticks is None:
            return None
        return (t.bid_px_ticks + t.ask_px_ticks) / 2

    def _lv(self, n: int):
        if n > BOOK_LEVELS:
            return self._book.levels(n)
        if self._levels is None:
            self._levels = self._book.levels(BOOK_LEVELS)
        return self._levels

    def levels(self, side: int, n: int) -> list[tuple[int, int]]:
        """The best ``n`` non-empty levels of ``side`` (+1 bid, -1 ask) as (px_ticks, qty_lots)."""
        lv = self._lv(n)
        px, qty = (lv[0], lv[1]) if side > 0 else (lv[2], lv[3])
        return [(int(p), int(q)) for p, q in zip(px[:n], qty[:n]) if q > 0]

    def depth_lots(self, side: int, n_levels: int = BOOK_LEVELS) -> int:
        """Lots on the best ``n_levels`` levels of ``side``."""
        lv = self._lv(n_levels)
        # a Python sum of ten ints: numpy's reduction costs microseconds of overhead per call on arrays this short
        return sum((lv[1] if side > 0 else lv[3])[:n_levels].tolist())
