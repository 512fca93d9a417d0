"""Replaying a LOBSTER message file through the L2 book, in the layout of LOBSTER's own order book file.

A level-1 message file holds only the messages that touch the best level of a side. When a message empties the
best level, the file's next order-book row shows the level behind it, which no message ever described: the book
cannot know it. Our book then falls back on the best level it still holds (last seen when it was the best, maybe
changed since) and marks that side *stale*; the side is trusted again when a new order opens a better price (see
:mod:`workbench.book.nb`). :func:`check_level1` measures both things that matter: every message that does not
empty a best level, applied to a book that matched the file before it, must give exactly the file's next row;
and the share of all rows in which the book agrees with the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from workbench.book.book import L2Book
from workbench.data.lobster import LOBSTER_EMPTY_ASK_PX, LOBSTER_EMPTY_BID_PX
from workbench.enums import F_BATCH_END, K_DEPTH, K_ORDER_CANCEL, K_ORDER_DELETE, K_ORDER_EXEC

__all__ = ["level1_rows", "iter_level1_rows", "Level1Check", "check_level1", "transition_rows"]



def level1_rows(book: L2Book, events: np.ndarray) -> np.ndarray:
    """Apply ``events`` (one LOBSTER message each) and return int64[n, 4]: ask px, ask size, bid px, bid size
    after each, in ticks (LOBSTER's price units with the default instrument) and LOBSTER's empty-side values."""
    rec = book.replay(events, 1)
    out = np.empty((len(rec.event_ix), 4), np.int64)
    out[:, 0] = np.where(rec.ask_qty > 0, rec.ask_px, LOBSTER_EMPTY_ASK_PX)
    out[:, 1] = rec.ask_qty
    out[:, 2] = np.where(rec.bid_qty > 0, rec.bid_px, LOBSTER_EMPTY_BID_PX)
    out[:, 3] = rec.bid_qty
    return out


def iter_level1_rows(chunks: Iterable[np.ndarray], book: L2Book | None = None) -> Iterator[np.ndarray]:
    """:func:`level1_rows` over a stream of event chunks, one book carried across them."""
    book = book if book is not None else L2Book()
    for ev in chunks:
        yield level1_rows(book, ev)


@dataclass(frozen=True)
class Level1Check:
    rows: int                 # messages replayed
    rows_in_sync: int         # rows where the free-running book (messages alone) equals the file
    transitions: int          # messages that do not empty a best level, each applied to a book equal to the file
    transitions_exact: int    # ... of which the result is exactly the file's next row
    emptying: int             # messages that empty the best level of their side (the level behind is unknowable)

    @property
    def in_sync_share(self) -> float:
        return self.rows_in_sync / self.rows if self.rows else 1.0

    @property
    def transition_share(self) -> float:
        return self.transitions_exact / self.transitions if self.transitions else 1.0

    def summary(self) -> str:
        return (
            f"rows={self.rows} in_sync={self.rows_in_sync} ({100 * self.in_sync_share:.2f}%) "
            f"checked_transitions={self.transitions} exact={self.transitions_exact} "
            f"({100 * self.transition_share:.3f}%) emptying_messages={self.emptying}"
        )


def _emptying(events: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Messages that remove at least the size ``before`` (rows: ask px, ask size, bid px, bid size) showed at the
    best price of their side: the level behind them is unknowable from a level-1 file."""
    side = events["side"]
    best_px = np.where(side > 0, before[:, 2], before[:, 0])
    best_sz = np.where(side > 0, before[:, 3], before[:, 1])
    removes = np.isin(events["kind"], (K_ORDER_CANCEL, K_ORDER_DELETE, K_ORDER_EXEC))
    return removes & (events["px_ticks"] == best_px) & (events["qty_lots"] >= best_sz)


def transition_rows(events: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """For each message i >= 1: the book set to the file's row i-1, then message i applied, as level-1 rows
    (row 0 of the result is the file's row 0). One replay of a synthetic stream through the book kernel: for each
    message, delete what the previous step left, set the two levels of row i-1, apply the message."""
    n = len(events)
    if n < 2:
        return expected[:n].copy()
    prev = expected[:-1]  # the state each message starts from
    msgs = events[1:]
    m = n - 1
    # rows per step: 3 deletes (the previous step's two levels and its message's price), 2 sets, the message
    ev = np.zeros(6 * m, events.dtype)
    step = ev.reshape(m, 6)
    before_prev = np.vstack([prev[:1], prev[:-1]])
    prev_msg = np.concatenate([msgs[:1], msgs[:-1]])
    for col, (side, pcol) in enumerate(((1, 2), (-1, 0))):
        step[:, col]["kind"] = K_DEPTH
        step[:, col]["side"] = side
        step[:, col]["px_ticks"] = before_prev[:, pcol]
    step[:, 2]["kind"] = K_DEPTH
    step[:, 2]["side"] = prev_msg["side"]
    step[:, 2]["px_ticks"] = prev_msg["px_ticks"]
    for col, (side, pcol, qcol) in zip((3, 4), ((1, 2, 3), (-1, 0, 1))):
        step[:, col]["kind"] = K_DEPTH
        step[:, col]["side"] = np.where(prev[:, qcol] > 0, side, 0)
        step[:, col]["px_ticks"] = prev[:, pcol]
        step[:, col]["qty_lots"] = prev[:, qcol]
    step[:, 5] = msgs
    step[:, 5]["flags"] = F_BATCH_END
    out = level1_rows(L2Book(), ev)
    return np.vstack([expected[:1], out])


def check_level1(ours: np.ndarray, expected: np.ndarray, events: np.ndarray) -> Level1Check:
    """Compare a free-running replay (:func:`level1_rows`) and the one-message transitions with the file's rows.

    ``events[i]`` is message i, ``ours[i]`` and ``expected[i]`` the book after it (ask px, ask size, bid px, bid
    size). ``transitions``: messages i >= 1 that do not empty a best level (:func:`_emptying`), each applied to a
    book equal to the file's row i-1 (:func:`transition_rows`); ``transitions_exact`` of them give row i exactly.
    """
    n = len(events)
    if not (len(ours) == len(expected) == n):
        raise ValueError(f"lengths differ: {len(ours)} replayed rows, {len(expected)} file rows, {n} messages")
    if n == 0:
        return Level1Check(0, 0, 0, 0, 0)
    same = np.all(ours == expected, axis=1)
    empties = _emptying(events[1:], expected[:-1])
    step = np.all(transition_rows(events, expected)[1:] == expected[1:], axis=1)
    return Level1Check(
        rows=n,
        rows_in_sync=int(same.sum()),
        transitions=int((~empties).sum()),
        transitions_exact=int((step & ~empties).sum()),
        emptying=int(empties.sum()),
    )

