"""L2 order book: a thin Python facade over the kernels of :mod:`workbench.book.nb`.

The facade owns the arrays of a dense price window and moves or widens it when an event falls outside, so the book
works for any price range with bounded memory: the window is at most ``max_levels`` ticks wide and follows the
touch; a level behind the touch farther than half of that (a bid at a quarter of the price, say, which real spot
books have), or one that does not fit a full-width window, is kept exactly in a sparse overflow map instead. Overflow levels are part of :meth:`L2Book.side_levels`
and of :meth:`L2Book.top`; the top-N, depth and crossed-book kernels read the window, which holds the touch of any
uncrossed book.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.book import nb
from workbench.enums import (
    F_BATCH_END,
    K_DEPTH,
    K_ORDER_ADD,
    K_ORDER_CANCEL,
    K_ORDER_DELETE,
    K_ORDER_EXEC,
    K_SNAPSHOT,
)
from workbench.exceptions import ConfigError

__all__ = ["L2Book", "TopOfBook", "BookRecord"]


@dataclass(frozen=True, slots=True)
class TopOfBook:
    """Best bid and ask in ticks and lots; ``None`` prices for an empty side (with size 0)."""

    bid_px_ticks: int | None
    bid_qty_lots: int
    ask_px_ticks: int | None
    ask_qty_lots: int

    @property
    def crossed(self) -> bool:
        return (
            self.bid_px_ticks is not None
            and self.ask_px_ticks is not None
            and self.bid_px_ticks >= self.ask_px_ticks
        )


@dataclass(frozen=True, slots=True)
class BookRecord:
    """The top ``n`` levels after each batch end of a replay.

    ``event_ix[k]`` is the index (in the events passed to :meth:`L2Book.replay`) of the k-th batch end;
    ``levels[k]`` is int64[4, n]: bid px, bid qty, ask px, ask qty, best first; empty slots hold
    ``nb.EMPTY_BID_PX`` / ``nb.EMPTY_ASK_PX`` and size 0.
    """

    event_ix: np.ndarray
    levels: np.ndarray

    @property
    def bid_px(self) -> np.ndarray:
        return self.levels[:, 0, 0]

    @property
    def bid_qty(self) -> np.ndarray:
        return self.levels[:, 1, 0]

    @property
    def ask_px(self) -> np.ndarray:
        return self.levels[:, 2, 0]

    @property
    def ask_qty(self) -> np.ndarray:
        return self.levels[:, 3, 0]


class L2Book:
    """Aggregated (price-level) order book in integer ticks and lots.

    Parameters
    ----------
    initial_levels : width of the first price window, in ticks (it grows on demand).
    max_levels : the widest dense window, in ticks (default 2**22: 32 MiB a side); levels farther than half of it
        from the touch are kept in the overflow maps (``far_levels`` counts their updates).
    """

    def __init__(self, *, initial_levels: int = 4096, max_levels: int = 1 << 22) -> None:
        if initial_levels < 2 or max_levels < initial_levels:
            raise ConfigError("need 2 <= initial_levels <= max_levels")
        self.max_levels = int(max_levels)
        self._initial = int(initial_levels)
        self.bid = np.zeros(0, np.int64)
        self.ask = np.zeros(0, np.int64)
        self.st = np.zeros(nb.ST_SIZE, np.int64)
        self.st[nb.ST_BEST_BID] = -1
        self.st[nb.ST_BEST_ASK] = -1
        self.far_levels = 0  # updates applied to the overflow maps
        self._far_bid: dict[int, int] = {}
        self._far_ask: dict[int, int] = {}
        self._no_ix = np.zeros(0, np.int64)
        self._no_lv = np.zeros((0, 4, 1), np.int64)

    # -- applying events -----------------------------------------------------------------------------------------
    def apply(self, events: np.ndarray, start: int = 0, *, stop_on_crossed: bool = False) -> int:
        """Apply ``events[start:]``. Returns the number of events consumed.

        With ``stop_on_crossed`` it returns early, just after the batch end that left the book crossed (the
        caller decides what to do: resync, report); otherwise crossings are only counted (``n_crossed``).
        """
        return self._run(events, start, stop_on_crossed, self._no_ix, self._no_lv)

    def replay(self, events: np.ndarray, n_levels: int = 1) -> BookRecord:
        """Apply all ``events`` and record the top ``n_levels`` after every batch end (BATCH_END flag)."""
        n_out = int(np.count_nonzero(events["flags"] & F_BATCH_END))
        out_ix = np.empty(n_out, np.int64)
        out_lv = np.empty((n_out, 4, max(1, int(n_levels))), np.int64)
        self.st[nb.ST_N_OUT] = 0
        i = 0
        while i < len(events) and self.st[nb.ST_N_OUT] < n_out:
            i = self._run(events, i, False, out_ix, out_lv)
        if i < len(events):  # trailing events after the last batch end
            self._run(events, i, False, self._no_ix, self._no_lv)
        k = int(self.st[nb.ST_N_OUT])
        return BookRecord(out_ix[:k], out_lv[:k])

    def _run(self, events, start, stop_on_crossed, out_ix, out_lv) -> int:
        kind, side, px, qty, flags = (events[c] for c in ("kind", "side", "px_ticks", "qty_lots", "flags"))
        i = start
        while True:
            clears = self.st[nb.ST_CLEARS]
            status, i = nb.apply_events_nb(
                kind, side, px, qty, flags, i, self.bid, self.ask, self.st, stop_on_crossed, out_ix, out_lv
            )
            if self.st[nb.ST_CLEARS] != clears:
                # the kernel emptied the window after any overflow level was stored: those go too
                self._far_bid.clear()
                self._far_ask.clear()
            if status == nb.STATUS_OUT_OF_RANGE:
                k, s, p, q = int(kind[i]), int(side[i]), int(px[i]), int(qty[i])
                adds = q > 0 and k in (K_DEPTH, K_SNAPSHOT, K_ORDER_ADD)
                if not adds or self._is_deep(s, p) or (self._behind_touch(s, p) and not self._can_grow_to(p)):
                    self._far_apply(k, s, p, q)
                    self._skip_one(events, i, out_ix, out_lv)
                    i += 1
                    continue
                if k == K_ORDER_ADD:
                    self._uncross_far(s, p)
                if not self._grow_to(p):
                    self._recentre(p)
                continue
            if status == nb.STATUS_CROSSED:
                return i + 1
            return i

    def _skip_one(self, events: np.ndarray, i: int, out_ix, out_lv) -> None:
        # The event went to the overflow map, but its flags (BATCH_END: record, check) still apply.
        row = events[i : i + 1].copy()
        row["side"] = 0
        n0 = int(self.st[nb.ST_N_OUT])
        self._run(row, 0, False, out_ix, out_lv)
        if self.st[nb.ST_N_OUT] > n0:
            out_ix[n0] = i

    def _touch(self) -> int | None:
        """A price at the touch (mid of the window's best prices), or None for an empty window."""
        bb, ba, base = (int(self.st[k]) for k in (nb.ST_BEST_BID, nb.ST_BEST_ASK, nb.ST_BASE))
        if bb >= 0 and ba >= 0:
            return base + (bb + ba) // 2
        if bb >= 0 or ba >= 0:
            return base + max(bb, ba)
        return None

    def _is_deep(self, side: int, px_ticks: int) -> bool:
        """A level more than half a window behind the touch on its own side: it goes to the overflow map.

        A price at or better than the touch is never deep: the window moves to it, so the window always holds the
        touch of an uncrossed book.
        """
        ref = self._touch()
        if ref is None:
            return False
        half = self.max_levels // 2 - 1
        return px_ticks < ref - half if side > 0 else px_ticks > ref + half

    def _far_apply(self, kind: int, side: int, px_ticks: int, qty_lots: int) -> None:
        far = self._far_bid if side > 0 else self._far_ask
        if kind in (K_DEPTH, K_SNAPSHOT):
            q = qty_lots
        elif kind == K_ORDER_ADD:
            q = far.get(px_ticks, 0) + qty_lots
        elif kind in (K_ORDER_CANCEL, K_ORDER_DELETE, K_ORDER_EXEC):
            q = far.get(px_ticks, 0) - qty_lots
            if q < 0 and qty_lots > 0:
                self.st[nb.ST_CLAMPED] += 1
                q = 0
        else:  # pragma: no cover - the kernel only stops on book-changing kinds
            return
        if q == 0 and px_ticks not in far:
            return  # deleting a level the book never held
        self.far_levels += 1
        if q > 0:
            far[px_ticks] = q
        else:
            far.pop(px_ticks, None)
        self.st[nb.ST_HAS_FAR] = 1 if (self._far_bid or self._far_ask) else 0

    def _uncross_far(self, side: int, px_ticks: int) -> None:
        """The phantom rule of the kernel (an added order cannot rest through the opposite side) for overflow levels."""
        far = self._far_ask if side > 0 else self._far_bid
        gone = [p for p in far if (p <= px_ticks if side > 0 else p >= px_ticks)]
        for p in gone:
            del far[p]
        if gone:
            self.st[nb.ST_UNCROSSED] += len(gone)
            self.st[nb.ST_ASK_STALE if side > 0 else nb.ST_BID_STALE] = 1
            self.st[nb.ST_HAS_FAR] = 1 if (self._far_bid or self._far_ask) else 0

    def _behind_touch(self, side: int, px_ticks: int) -> bool:
        """Only the touch moves a full-width window: a level behind it that does not fit goes to overflow (levels
        far out on both sides would otherwise pull the window back and forth)."""
        ref = self._touch()
        return ref is not None and (px_ticks < ref if side > 0 else px_ticks > ref)

    def _can_grow_to(self, px_ticks: int) -> bool:
        base, cap = int(self.st[nb.ST_BASE]), self.bid.shape[0]
        return max(base + cap - 1, px_ticks) - min(base, px_ticks) + 1 <= self.max_levels

    def _grow_to(self, px_ticks: int) -> bool:
        """Widen the window to hold ``px_ticks``; False if that would exceed ``max_levels``."""
        cap = self.bid.shape[0]
        base = int(self.st[nb.ST_BASE])
        if cap == 0:
            self._set_window(px_ticks - self._initial // 2, self._initial)
            return True
        lo = min(base, px_ticks)
        hi = max(base + cap - 1, px_ticks)
        need = hi - lo + 1
        if need > self.max_levels:
            return False
        new_cap = min(max(2 * cap, need + need // 2), self.max_levels)
        # centre the new window on the prices held, so a trending price does not regrow at every step
        self._set_window(lo - (new_cap - need) // 2, new_cap)
        return True

    def _recentre(self, px_ticks: int) -> None:
        """Lay a full-width window centred between the touch and ``px_ticks``."""
        ref = self._touch()
        near = ref is not None and abs(px_ticks - ref) < self.max_levels // 2
        centre = (ref + px_ticks) // 2 if near else px_ticks
        self._set_window(centre - self.max_levels // 2, self.max_levels)

    def _set_window(self, new_base: int, new_cap: int) -> None:
        """Re-lay the window at [new_base, new_base + new_cap): levels leaving it go to the overflow maps, overflow
        levels inside it come back."""
        old_base, old_cap = int(self.st[nb.ST_BASE]), self.bid.shape[0]
        lo, hi = new_base, new_base + new_cap
        # the part of the old window that stays is copied as a block; only the rest is looked at level by level
        keep_lo, keep_hi = max(lo, old_base), min(hi, old_base + old_cap)
        bid = np.zeros(new_cap, np.int64)
        ask = np.zeros(new_cap, np.int64)
        for arr, new, far in ((self.bid, bid, self._far_bid), (self.ask, ask, self._far_ask)):
            if keep_lo < keep_hi:
                a, b = keep_lo - old_base, keep_hi - old_base
                new[keep_lo - lo : keep_hi - lo] = arr[a:b]
                parts = ((arr[:a], old_base), (arr[b:], keep_hi))
            else:
                parts = ((arr, old_base),)
            for part, off in parts:
                j = np.flatnonzero(part) if len(part) else ()
                if len(j):  # levels leaving the window
                    far.update(zip((j + off).tolist(), part[j].tolist()))
                    self.far_levels += len(j)
            if far:
                for pp in [pp for pp in far if lo <= pp < hi]:
                    new[pp - lo] = far.pop(pp)
        self.bid, self.ask = bid, ask
        self.st[nb.ST_BASE] = new_base
        self.st[nb.ST_HAS_FAR] = 1 if (self._far_bid or self._far_ask) else 0
        nb.window_state_nb(bid, ask, self.st)

    def assign(self, other: "L2Book") -> None:
        """Take a copy of ``other``'s levels, window, overflow levels and counters."""
        self.max_levels, self._initial = other.max_levels, other._initial
        self.bid, self.ask = other.bid.copy(), other.ask.copy()
        self.st[:] = other.st
        self._far_bid, self._far_ask = dict(other._far_bid), dict(other._far_ask)
        self.far_levels = other.far_levels

    def clear(self) -> None:
        """Empty the book (the window is kept)."""
        self._far_bid.clear()
        self._far_ask.clear()
        self.st[nb.ST_HAS_FAR] = 0
        self.bid[:] = 0
        self.ask[:] = 0
        self.st[nb.ST_N_BID] = 0
        self.st[nb.ST_N_ASK] = 0
        self.st[nb.ST_BEST_BID] = -1
        self.st[nb.ST_BEST_ASK] = -1
        self.st[nb.ST_BID_STALE] = 0
        self.st[nb.ST_ASK_STALE] = 0

    # -- reading ---------------------------------------------------------------------------------------------------
    def top(self) -> TopOfBook:
        """Best bid and ask over the window and the overflow maps."""
        if self.bid.shape[0] == 0:
            return TopOfBook(None, 0, None, 0)
        bpx, bq, apx, aq = nb.best_nb(self.bid, self.ask, self.st)
        if self._far_bid:
            fp = max(self._far_bid)
            if not bq or fp > bpx:
                bpx, bq = fp, self._far_bid[fp]
        if self._far_ask:
            fp = min(self._far_ask)
            if not aq or fp < apx:
                apx, aq = fp, self._far_ask[fp]
        return TopOfBook(int(bpx) if bq else None, int(bq), int(apx) if aq else None, int(aq))

    def levels(self, n: int) -> np.ndarray:
        """int64[4, n]: bid px, bid qty, ask px, ask qty of the top ``n`` levels (empty slots: EMPTY_*_PX, 0)."""
        out = np.empty((4, n), np.int64)
        if self.bid.shape[0] == 0:
            out[0] = nb.EMPTY_BID_PX
            out[2] = nb.EMPTY_ASK_PX
            out[1] = out[3] = 0
            return out
        nb.top_levels_nb(self.bid, self.ask, self.st, out)
        return out

    def depth_within(self, k_ticks: int) -> tuple[int, int]:
        """Resting lots within ``k_ticks`` of the best bid and of the best ask (inclusive)."""
        if self.bid.shape[0] == 0:
            return 0, 0
        b, a = nb.depth_within_nb(self.bid, self.ask, self.st, int(k_ticks))
        return int(b), int(a)

    def side_levels(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """All non-empty levels of one side (1 bid, -1 ask), overflow included, as (px_ticks, qty_lots), best first."""
        arr, far = (self.bid, self._far_bid) if side > 0 else (self.ask, self._far_ask)
        j = np.flatnonzero(arr)
        px = np.concatenate([j + self.st[nb.ST_BASE], np.fromiter(far.keys(), np.int64, len(far))])
        qty = np.concatenate([arr[j], np.fromiter(far.values(), np.int64, len(far))])
        order = np.argsort(-px if side > 0 else px, kind="stable")
        return px[order], qty[order]

    # -- for kernels that apply rows to this book's arrays themselves ----------------------------------------------
    def overflow_levels(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """The levels of one side kept outside the dense window, as (px_ticks, qty_lots), best first."""
        far = self._far_bid if side > 0 else self._far_ask
        px = np.fromiter(far.keys(), np.int64, len(far))
        qty = np.fromiter(far.values(), np.int64, len(far))
        order = np.argsort(-px if side > 0 else px, kind="stable")
        return px[order], qty[order]

    # A kernel that applies rows to this book's arrays itself and keeps the overflow levels in arrays of its own
    # (the backtester's fast path) tells the facade what it did with these two, in order, so that the facade's
    # maps stay the book's (``st`` is the kernel's to keep).
    def clear_overflow(self) -> None:
        """The kernel applied a CLEAR row (``st[ST_CLEARS]`` moved): the overflow levels go, as in :meth:`apply`."""
        self._far_bid.clear()
        self._far_ask.clear()

    def set_overflow(self, side: int, px_ticks: int, qty_lots: int) -> None:
        """The kernel set an overflow level (0 deletes it), as :meth:`apply` would have for a row it kept there."""
        far = self._far_bid if side > 0 else self._far_ask
        if qty_lots > 0:
            far[px_ticks] = qty_lots
        else:
            far.pop(px_ticks, None)
        self.far_levels += 1

    @property
    def crossed(self) -> bool:
        return self.top().crossed

    @property
    def n_crossed(self) -> int:
        """Batch ends seen with a crossed book."""
        return int(self.st[nb.ST_CROSSED])

    @property
    def n_clamped(self) -> int:
        """Order-level deltas that removed more size than the book held."""
        return int(self.st[nb.ST_CLAMPED])

    @property
    def n_uncrossed(self) -> int:
        """Opposite levels removed because an order-level add went through them (see :mod:`workbench.book.nb`)."""
        return int(self.st[nb.ST_UNCROSSED])

    @property
    def stale(self) -> tuple[bool, bool]:
        """(bid, ask): whether that side's best level may be out of date (see :mod:`workbench.book.nb`)."""
        return bool(self.st[nb.ST_BID_STALE]), bool(self.st[nb.ST_ASK_STALE])

    def __repr__(self) -> str:
        t = self.top()
        return (
            f"L2Book(bid={t.bid_px_ticks}x{t.bid_qty_lots}, ask={t.ask_px_ticks}x{t.ask_qty_lots}, "
            f"window={self.bid.shape[0]}, overflow={len(self._far_bid) + len(self._far_ask)})"
        )
