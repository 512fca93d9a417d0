"""The strategy's side of a backtest: the recording as the trader receives it, one feed latency after the exchange.

:class:`LocalFeed` holds one symbol's recorded rows (book and trade kinds only: book tickers and status rows are
not a feed the strategy reads) with the local time each row arrives at, and the local :class:`L2Book` they build.
A message (the rows up to a ``BATCH_END``) arrives as a whole, at its last row's exchange time plus one draw of
the feed latency, never before the message ahead of it (one connection keeps its order). With
``from_recording`` the arrival is the recording's own receive stamp, shifted so the fastest message of the
recording took 0 ns (see :func:`workbench.venue.latency.feed_latency_samples`).
"""

from __future__ import annotations

import numpy as np

from workbench.book.book import L2Book
from workbench.enums import (
    F_BATCH_END,
    F_GAP,
    K_BBO,
    K_CROSS_TRADE,
    K_DEPTH,
    K_ORDER_EXEC_HIDDEN,
    K_STATUS,
    K_TRADE,
)
from workbench.venue.latency import Latency

__all__ = ["LocalFeed"]

_NOT_FEED = np.array([K_BBO, K_STATUS], np.uint8)
_TRADE_KINDS = np.array([K_TRADE, K_ORDER_EXEC_HIDDEN, K_CROSS_TRADE], np.uint8)


def arrivals_ns(events: np.ndarray, last_rows: np.ndarray, feed, from_recording: bool) -> np.ndarray:
    """Local arrival (ns) of each feed message, given its last row: the recording's local times shifted so that the
    fastest message took 0 ns (``from_recording``), else the exchange time plus a draw of ``feed`` (None: no delay);
    never earlier than the message before."""
    if from_recording:
        kind = events["kind"]
        m = (kind == K_DEPTH) | (kind == K_TRADE)
        offset = int((events["ts_local_ns"][m] - events["ts_exch_ns"][m]).min()) if m.any() else 0
        arrive = events["ts_local_ns"][last_rows] - offset
    else:
        draws = feed.draw_many_ns(len(last_rows)) if feed is not None else np.zeros(len(last_rows), np.int64)
        arrive = events["ts_exch_ns"][last_rows] + draws
    return np.maximum.accumulate(arrive.astype(np.int64)) if len(arrive) else arrive.astype(np.int64)


class LocalFeed:
    """One symbol's feed as the strategy sees it: rows, their local arrival times, the local book."""

    def __init__(self, events: np.ndarray, feed: Latency | None, *, from_recording: bool = False,
                 book_max_levels: int = 1 << 22, book: L2Book | None = None) -> None:
        ev = events[~np.isin(events["kind"], _NOT_FEED)]
        self.rows = ev
        n = len(ev)
        end = (ev["flags"] & (F_BATCH_END | F_GAP)) != 0
        if n:
            end[-1] = True
        ends = np.flatnonzero(end)
        starts = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else np.zeros(0, np.int64)
        arrive = arrivals_ns(ev, ends, feed, from_recording)
        self.msg_start = starts.astype(np.int64)
        self.msg_end = (ends + 1).astype(np.int64)  # exclusive
        self.msg_arrive_ns = arrive
        self.msg_is_trade = np.isin(ev["kind"][starts], _TRADE_KINDS) if len(starts) else np.zeros(0, bool)
        self.book = book if book is not None else L2Book(max_levels=book_max_levels)  # the local book
        self.next_msg = 0

    @property
    def n_messages(self) -> int:
        return len(self.msg_arrive_ns)

    def next_arrival_ns(self) -> int | None:
        k = self.next_msg
        return int(self.msg_arrive_ns[k]) if k < len(self.msg_arrive_ns) else None

    def apply_next(self) -> np.ndarray:
        """Apply the next message to the local book; returns its rows."""
        k = self.next_msg
        rows = self.rows[self.msg_start[k]:self.msg_end[k]]
        self.next_msg = k + 1
        if not self.msg_is_trade[k]:
            self.book.apply(rows)
        return rows

    def apply_until(self, t_ns: int) -> int:
        """Apply, in one call of the book, every message arriving by ``t_ns``; returns how many."""
        k = self.next_msg
        j = int(np.searchsorted(self.msg_arrive_ns, t_ns, side="right"))
        if j <= k:
            return 0
        rows = self.rows[self.msg_start[k]:self.msg_end[j - 1]]
        self.next_msg = j
        self.book.apply(rows)  # trade rows leave a level-2 book unchanged
        return j - k
