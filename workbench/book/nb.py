"""Numba kernels of the price-indexed L2 book.

The book is two int64 arrays of resting size in lots, ``bid[i]`` and ``ask[i]``, for the price ``base + i`` ticks,
and a small int64 state vector (indices ``ST_*`` below). The arrays cover a window of prices that the Python layer
(:class:`workbench.book.book.L2Book`) grows when an event falls outside it: a kernel never writes out of bounds, it
stops and returns ``STATUS_OUT_OF_RANGE`` with the index of the event it could not place, and is called again after
the window grew. So any price range works, and the hot loop stays a flat loop over plain arrays (a small @njit
helper taking the arrays, called per event, was measured 3.3x slower: reference counting stays in the loop).

Best bid/ask are kept as indices (-1 for an empty side) and updated incrementally; deleting the best level scans
to the next non-empty one, eight levels at a time (their sizes OR-ed: a level-1 book is sparse, a quarter of the
LOBSTER messages empty a best level, and one level at a time these scans took a quarter of that replay). Inside the
loop the state vector is held in local variables, written back when the kernel returns (stores to ``st[...]``
cannot stay in registers: numba cannot prove that the arrays do not alias).

Event semantics (see :mod:`workbench.enums`): SNAPSHOT and DEPTH rows set an absolute size (0 deletes); a row
flagged CLEAR empties the book first. Order-level rows are deltas: ORDER_ADD adds, ORDER_CANCEL / ORDER_DELETE /
ORDER_EXEC remove (clamped at 0, counted in ``ST_CLAMPED``: the book did not know that much size). Other kinds leave
the book unchanged. When a delta empties the best level of a side, that side is marked *stale*: the book only knows
the levels it was told about, and a level-1 source (LOBSTER level 1) never reports the level behind the best. A side
is trusted again once an ORDER_ADD opens a price better than its current best. An ORDER_ADD at or through the best
opposite price proves those opposite levels are phantoms (a resting order cannot cross a real one): they are
removed, counted in ``ST_UNCROSSED``, and that side is marked stale. Absolute sources never go stale, and a crossed
book from them is reported (``ST_CROSSED``), not repaired: it means lost input.

After each row flagged BATCH_END (the end of one venue message) the book is consistent: it is checked for a crossed
book (best bid >= best ask) and, when asked, the top ``n`` levels are recorded.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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

__all__ = [
    "ST_BASE",
    "ST_BEST_BID",
    "ST_BEST_ASK",
    "ST_CROSSED",
    "ST_CLAMPED",
    "ST_BID_STALE",
    "ST_ASK_STALE",
    "ST_N_OUT",
    "ST_CLEARS",
    "ST_HAS_FAR",
    "ST_UNCROSSED",
    "ST_N_BID",
    "ST_N_ASK",
    "ST_SIZE",
    "STATUS_DONE",
    "STATUS_OUT_OF_RANGE",
    "STATUS_CROSSED",
    "EMPTY_BID_PX",
    "EMPTY_ASK_PX",
    "apply_events_nb",
    "top_levels_nb",
    "depth_within_nb",
    "best_nb",
    "window_state_nb",
    "live_chain_nb",
    "apply_runs_nb",
    "CTL_LIVE",
    "CTL_LAST",
    "CTL_RUN",
    "CTL_COUNTS",
    "CTL_SYM_END",
    "CTL_SCALES",
    "CTL_STATUS",
    "CTL_AT",
    "CTL_TOP",
    "CTL_DEPTH",
    "CTL_WIDTH",
    "DEPTH_LEVELS",
    "depth_nb",
]

# State vector layout.
ST_BASE = 0        # price in ticks of index 0
ST_BEST_BID = 1    # index of the best bid, -1 if no bid
ST_BEST_ASK = 2    # index of the best ask, -1 if no ask
ST_CROSSED = 3     # number of batch ends seen with best bid >= best ask
ST_CLAMPED = 4     # deltas that removed more size than the level had
ST_BID_STALE = 5   # 1 while the bid side's best level is not known to be right (see module doc)
ST_ASK_STALE = 6
ST_N_OUT = 7       # rows written to the output arrays so far
ST_CLEARS = 8      # rows flagged CLEAR applied so far (the facade clears its overflow levels on a change)
ST_HAS_FAR = 9     # 1 while the facade holds levels outside the window: removals there must reach it
ST_UNCROSSED = 10  # opposite levels removed because a new order was added through them (phantoms)
ST_N_BID = 11      # non-empty bid levels in the window: an emptied side is known without scanning the window
ST_N_ASK = 12
ST_SIZE = 13

STATUS_DONE = 0
STATUS_OUT_OF_RANGE = 1
STATUS_CROSSED = 2

#: Prices reported for an empty side: they keep ``bid < ask`` comparisons meaningful.
EMPTY_BID_PX = np.iinfo(np.int64).min
EMPTY_ASK_PX = np.iinfo(np.int64).max


@njit(cache=True)
def apply_events_nb(kind, side, px_ticks, qty_lots, flags, start, bid, ask, st, stop_on_crossed, out_ix, out_lv):
    """Apply events ``start..`` to the book in place.

    Parameters
    ----------
    kind, side, px_ticks, qty_lots, flags : event columns (any strides).
    start : first event to apply.
    bid, ask : int64 size arrays of the book window; st : int64[ST_SIZE] state.
    stop_on_crossed : return ``STATUS_CROSSED`` after a batch end that leaves the book crossed.
    out_ix : int64[m] receives the event index of each recorded batch end (m = 0: record nothing).
    out_lv : int64[m, 4, n] receives bid px, bid qty, ask px, ask qty of the top ``n`` levels at each batch end.

    Returns
    -------
    (status, i) : ``STATUS_DONE`` and the number of events; ``STATUS_OUT_OF_RANGE`` and the index of the event
    whose price lies outside the window (nothing of it applied); ``STATUS_CROSSED`` and the index of the batch
    end that crossed (applied). Recording also stops with ``STATUS_DONE`` at ``i`` when ``out_ix`` is full.
    """
    n_ev = kind.shape[0]
    cap = bid.shape[0]
    base = st[ST_BASE]
    m_out = out_ix.shape[0]
    n_top = out_lv.shape[2]
    # the state lives in locals inside the loop and is written back on return (see the module doc)
    bb = st[ST_BEST_BID]
    ba = st[ST_BEST_ASK]
    n_crossed = st[ST_CROSSED]
    clamped = st[ST_CLAMPED]
    bid_stale = st[ST_BID_STALE]
    ask_stale = st[ST_ASK_STALE]
    n_out = st[ST_N_OUT]
    clears = st[ST_CLEARS]
    has_far = st[ST_HAS_FAR]
    uncrossed = st[ST_UNCROSSED]
    n_bid = st[ST_N_BID]
    n_ask = st[ST_N_ASK]
    status = STATUS_DONE
    i = start
    while i < n_ev:
        k = kind[i]
        f = flags[i]
        if f & F_CLEAR:
            clears += 1
            has_far = 0
            n_bid = 0
            n_ask = 0
            bid[:] = 0
            ask[:] = 0
            bb = -1
            ba = -1
            bid_stale = 0
            ask_stale = 0
        s = side[i]
        absolute = k == K_DEPTH or k == K_SNAPSHOT
        delta = k == K_ORDER_ADD or k == K_ORDER_CANCEL or k == K_ORDER_DELETE or k == K_ORDER_EXEC
        if (absolute or delta) and s != 0:
            j = px_ticks[i] - base
            q = qty_lots[i]
            if j < 0 or j >= cap:
                adds = (absolute and q > 0) or k == K_ORDER_ADD
                if adds or has_far:
                    status = STATUS_OUT_OF_RANGE
                    break
                if delta and q > 0:
                    clamped += 1  # removing size from a level the book never held
                # else: deleting a level the book never held: nothing to do, no need to grow
            else:
                if s > 0:
                    old = bid[j]
                    if absolute:
                        new = q
                    elif k == K_ORDER_ADD:
                        new = old + q
                        if bb < 0 or j > bb:
                            bid_stale = 0  # a better price than any we know: that is the best now
                    else:
                        new = old - q
                        if new < 0:
                            clamped += 1
                            new = 0
                    bid[j] = new
                    n_bid += np.int64((old == 0) & (new > 0)) - np.int64((old > 0) & (new == 0))  # branch-free
                    if new > 0:
                        if j > bb:
                            bb = j
                        if k == K_ORDER_ADD and q > 0:
                            # a resting order cannot cross a real level: asks at or below it are phantoms
                            while ba >= 0 and ba <= j:
                                ask[ba] = 0
                                n_ask -= 1
                                uncrossed += 1
                                ask_stale = 1
                                jj = ba + 1
                                if n_ask > 0:
                                    while jj + 7 < cap and (ask[jj] | ask[jj + 1] | ask[jj + 2] | ask[jj + 3]
                                                           | ask[jj + 4] | ask[jj + 5] | ask[jj + 6]
                                                           | ask[jj + 7]) == 0:
                                        jj += 8
                                    while jj < cap and ask[jj] == 0:
                                        jj += 1
                                ba = jj if (n_ask > 0 and jj < cap) else -1
                    elif j == bb:
                        if delta:
                            bid_stale = 1
                        jj = j - 1
                        if n_bid > 0:
                            while jj >= 7 and (bid[jj] | bid[jj - 1] | bid[jj - 2] | bid[jj - 3]
                                              | bid[jj - 4] | bid[jj - 5] | bid[jj - 6] | bid[jj - 7]) == 0:
                                jj -= 8
                            while jj >= 0 and bid[jj] == 0:
                                jj -= 1
                        bb = jj if n_bid > 0 else -1
                else:
                    old = ask[j]
                    if absolute:
                        new = q
                    elif k == K_ORDER_ADD:
                        new = old + q
                        if ba < 0 or j < ba:
                            ask_stale = 0
                    else:
                        new = old - q
                        if new < 0:
                            clamped += 1
                            new = 0
                    ask[j] = new
                    n_ask += np.int64((old == 0) & (new > 0)) - np.int64((old > 0) & (new == 0))  # branch-free
                    if new > 0:
                        if ba < 0 or j < ba:
                            ba = j
                        if k == K_ORDER_ADD and q > 0:
                            while bb >= 0 and bb >= j:
                                bid[bb] = 0
                                n_bid -= 1
                                uncrossed += 1
                                bid_stale = 1
                                jj = bb - 1
                                if n_bid > 0:
                                    while jj >= 7 and (bid[jj] | bid[jj - 1] | bid[jj - 2] | bid[jj - 3]
                                                      | bid[jj - 4] | bid[jj - 5] | bid[jj - 6] | bid[jj - 7]) == 0:
                                        jj -= 8
                                    while jj >= 0 and bid[jj] == 0:
                                        jj -= 1
                                bb = jj if n_bid > 0 else -1
                    elif j == ba:
                        if delta:
                            ask_stale = 1
                        jj = j + 1
                        if n_ask > 0:
                            while jj + 7 < cap and (ask[jj] | ask[jj + 1] | ask[jj + 2] | ask[jj + 3]
                                                   | ask[jj + 4] | ask[jj + 5] | ask[jj + 6] | ask[jj + 7]) == 0:
                                jj += 8
                            while jj < cap and ask[jj] == 0:
                                jj += 1
                        ba = jj if (n_ask > 0 and jj < cap) else -1
        if f & F_BATCH_END:
            crossed = bb >= 0 and ba >= 0 and bb >= ba
            if crossed:
                n_crossed += 1
            if m_out > 0:
                o = n_out
                out_ix[o] = i
                # top n levels, best first; empty slots get the empty-side prices and size 0
                c = 0
                jj = bb
                while c < n_top:
                    while jj >= 0 and bid[jj] == 0:
                        jj -= 1
                    if jj < 0:
                        out_lv[o, 0, c] = EMPTY_BID_PX
                        out_lv[o, 1, c] = 0
                    else:
                        out_lv[o, 0, c] = base + jj
                        out_lv[o, 1, c] = bid[jj]
                        jj -= 1
                    c += 1
                c = 0
                jj = ba if ba >= 0 else cap
                while c < n_top:
                    while jj < cap and ask[jj] == 0:
                        jj += 1
                    if jj >= cap:
                        out_lv[o, 2, c] = EMPTY_ASK_PX
                        out_lv[o, 3, c] = 0
                    else:
                        out_lv[o, 2, c] = base + jj
                        out_lv[o, 3, c] = ask[jj]
                        jj += 1
                    c += 1
                n_out = o + 1
                if n_out == m_out:
                    i += 1
                    break
            if crossed and stop_on_crossed:
                status = STATUS_CROSSED
                break
        i += 1
    st[ST_BEST_BID] = bb
    st[ST_BEST_ASK] = ba
    st[ST_CROSSED] = n_crossed
    st[ST_CLAMPED] = clamped
    st[ST_BID_STALE] = bid_stale
    st[ST_ASK_STALE] = ask_stale
    st[ST_N_OUT] = n_out
    st[ST_CLEARS] = clears
    st[ST_HAS_FAR] = has_far
    st[ST_UNCROSSED] = uncrossed
    st[ST_N_BID] = n_bid
    st[ST_N_ASK] = n_ask
    return status, i


@njit(cache=True)
def window_state_nb(bid, ask, st):
    """Set the counts of non-empty levels and the best indices in ``st`` from the arrays (after re-laying them)."""
    cap = bid.shape[0]
    n_bid = 0
    for j in range(cap):  # branch-free: vectorized
        n_bid += bid[j] != 0
    n_ask = 0
    for j in range(cap):
        n_ask += ask[j] != 0
    bb = cap - 1
    while bb >= 7 and (bid[bb] | bid[bb - 1] | bid[bb - 2] | bid[bb - 3] | bid[bb - 4] | bid[bb - 5] | bid[bb - 6]
                       | bid[bb - 7]) == 0:
        bb -= 8
    while bb >= 0 and bid[bb] == 0:
        bb -= 1
    ba = 0
    while ba + 7 < cap and (ask[ba] | ask[ba + 1] | ask[ba + 2] | ask[ba + 3] | ask[ba + 4] | ask[ba + 5] | ask[ba + 6]
                            | ask[ba + 7]) == 0:
        ba += 8
    while ba < cap and ask[ba] == 0:
        ba += 1
    st[ST_N_BID] = n_bid
    st[ST_N_ASK] = n_ask
    st[ST_BEST_BID] = bb
    st[ST_BEST_ASK] = ba if ba < cap else -1


@njit(cache=True)
def best_nb(bid, ask, st):
    """(bid px, bid qty, ask px, ask qty) of the best levels; empty sides give EMPTY_*_PX and 0."""
    base = st[ST_BASE]
    bb = st[ST_BEST_BID]
    ba = st[ST_BEST_ASK]
    bpx = base + bb if bb >= 0 else EMPTY_BID_PX
    bq = bid[bb] if bb >= 0 else 0
    apx = base + ba if ba >= 0 else EMPTY_ASK_PX
    aq = ask[ba] if ba >= 0 else 0
    return bpx, bq, apx, aq


@njit(cache=True)
def top_levels_nb(bid, ask, st, out):
    """Fill ``out[4, n]`` with bid px, bid qty, ask px, ask qty of the top ``n`` non-empty levels, best first."""
    base = st[ST_BASE]
    cap = bid.shape[0]
    n = out.shape[1]
    jj = st[ST_BEST_BID]
    for c in range(n):
        while jj >= 0 and bid[jj] == 0:
            jj -= 1
        if jj < 0:
            out[0, c] = EMPTY_BID_PX
            out[1, c] = 0
        else:
            out[0, c] = base + jj
            out[1, c] = bid[jj]
            jj -= 1
    jj = st[ST_BEST_ASK] if st[ST_BEST_ASK] >= 0 else cap
    for c in range(n):
        while jj < cap and ask[jj] == 0:
            jj += 1
        if jj >= cap:
            out[2, c] = EMPTY_ASK_PX
            out[3, c] = 0
        else:
            out[2, c] = base + jj
            out[3, c] = ask[jj]
            jj += 1


@njit(cache=True)
def depth_nb(bid, ask, st, n_levels):
    """(bid lots, ask lots) on the best ``n_levels`` non-empty levels of each side of the window: the sums of
    :func:`top_levels_nb`'s sizes."""
    cap = bid.shape[0]
    if cap == 0:
        return 0, 0
    db = 0
    jj = st[ST_BEST_BID]
    c = 0
    while c < n_levels and jj >= 0:
        if bid[jj] != 0:
            db += bid[jj]
            c += 1
        jj -= 1
    da = 0
    jj = st[ST_BEST_ASK] if st[ST_BEST_ASK] >= 0 else cap
    c = 0
    while c < n_levels and jj < cap:
        if ask[jj] != 0:
            da += ask[jj]
            c += 1
        jj += 1
    return db, da


@njit(cache=True)
def depth_within_nb(bid, ask, st, k_ticks):
    """Resting size (lots) within ``k_ticks`` of each best price, inclusive: (bid side, ask side)."""
    cap = bid.shape[0]
    bb = st[ST_BEST_BID]
    ba = st[ST_BEST_ASK]
    b = 0
    if bb >= 0:
        lo = max(bb - k_ticks, 0)
        for j in range(lo, bb + 1):
            b += bid[j]
    a = 0
    if ba >= 0:
        hi = min(ba + k_ticks, cap - 1)
        for j in range(ba, hi + 1):
            a += ask[j]
    return b, a


# -- the update-id chain of live diffs (the common step of workbench.book.sync.BookSync, over a run of frames) --------
@njit(cache=True)
def live_chain_nb(pre, j, n, at, live, last_ids, runs, counts):
    """Accept the pre-parsed diffs ``pre[j:n]`` (rows of :func:`workbench.data.binance.preparse_frames_nb`: kind, ts,
    U, u, pu, ms, bid rows, rows, symbol) that :meth:`BookSync.on_live_diff` would accept or drop, as it would, until
    the first frame that needs the Python way; returns (that frame's index, or n; the index of its first row).

    ``at`` is the index of frame j's first row in the rows buffer. Per symbol k: ``live[k]`` (1: the machine is in
    sync), ``last_ids[k]`` (its last id, updated), ``runs[k]`` = [lo, hi) the rows accepted so far (a run grows only
    while contiguous: a diff whose rows do not follow it stops here), ``counts[k]`` += (accepted, duplicates).
    Stops at anything else: another kind, a diff without event time, a symbol not in sync, a break in the chain.
    """
    while j < n:
        if pre[j, 0] != 3 or pre[j, 5] < 0:
            return j, at
        k = pre[j, 8]
        if live[k] == 0:
            return j, at
        last = pre[j, 3]
        m = pre[j, 7]
        if last <= last_ids[k]:  # older than the book: a duplicate, dropped
            counts[k, 1] += 1
            at += m
            j += 1
            continue
        first = pre[j, 2]
        prev = first - 1 if pre[j, 4] < 0 else pre[j, 4]
        if prev != last_ids[k]:
            return j, at  # a gap: the Python way decides
        if runs[k, 1] > runs[k, 0] and runs[k, 1] != at:
            return j, at  # not contiguous with the run: the Python way ends it
        if runs[k, 1] == runs[k, 0]:
            runs[k, 0] = at
        last_ids[k] = last
        counts[k, 0] += 1
        at += m
        runs[k, 1] = at
        j += 1
    return j, at



# The feed's per-symbol control rows (int64[k, CTL_WIDTH]): what the chain and book kernels read and write of each
# symbol in one array, so that a kernel call takes a few arguments (a numba call costs per argument: ~10 us for a
# call with many when the caches are cold, as they are when a diff comes after a quiet spell).
CTL_LIVE = 0      # 1: the symbol's sync machine is in sync
CTL_LAST = 1      # its last update id
CTL_RUN = 2       # 2 columns: [lo, hi) rows accepted so far (contiguous in the rows buffer)
CTL_COUNTS = 4    # 2 columns: diffs accepted, duplicates dropped
CTL_SYM_END = 6   # where the symbol's bytes end in the symbols' bytes
CTL_SCALES = 7    # 4 columns: px digits, px units, qty digits, qty units
CTL_STATUS = 11   # -1: no rows applied; else the apply_events_nb status
CTL_AT = 12       # rows of the run applied (where an OUT_OF_RANGE stopped: the Python facade goes on from there)
CTL_TOP = 13      # 4 columns: bid px, bid qty, ask px, ask qty (best_nb), when CTL_STATUS is STATUS_DONE
CTL_DEPTH = 17    # 2 columns: bid and ask lots on the best DEPTH_LEVELS levels (depth_nb), with CTL_TOP
CTL_WIDTH = 19

DEPTH_LEVELS = 10  # levels a side summed for the depth the feed reports with each update (the risk guard's depth)


@njit(cache=True)
def apply_runs_nb(rows, ctl, books, k_lo, k_hi):
    """Apply the run of accepted rows of each symbol ``k_lo <= k < k_hi`` (``ctl[k, CTL_RUN:CTL_RUN + 2]``, rows of
    8 int64 slots, see :func:`workbench.data.binance._slot`) to its book window (``books[3k:3k + 3]``: bid, ask,
    state), and read its top, in one call; results in ``ctl[k, CTL_STATUS:]``. A run stopped by STATUS_OUT_OF_RANGE
    is left for :class:`workbench.book.book.L2Book` to finish (it grows the window).
    """
    no_ix = np.zeros(0, np.int64)
    no_lv = np.zeros((0, 4, 1), np.int64)
    for k in range(k_lo, k_hi):
        lo = ctl[k, CTL_RUN]
        hi = ctl[k, CTL_RUN + 1]
        if hi <= lo:
            ctl[k, CTL_STATUS] = -1
            continue
        bid = books[3 * k]
        ask = books[3 * k + 1]
        st = books[3 * k + 2]
        # slot 2 of a row holds kind (byte 0), side (byte 1, signed) and flags (bytes 2-3), little-endian
        s2 = rows[lo:hi, 2]
        kind = s2 & 0xFF
        side = (s2 << 48) >> 56
        flags = (s2 >> 16) & 0xFFFF
        status, i = apply_events_nb(kind, side, rows[lo:hi, 3], rows[lo:hi, 4], flags, 0, bid, ask, st, False,
                                    no_ix, no_lv)
        ctl[k, CTL_STATUS] = status
        ctl[k, CTL_AT] = i
        if status == STATUS_DONE:
            bpx, bq, apx, aq = best_nb(bid, ask, st)
            ctl[k, CTL_TOP] = bpx
            ctl[k, CTL_TOP + 1] = bq
            ctl[k, CTL_TOP + 2] = apx
            ctl[k, CTL_TOP + 3] = aq
            db, da = depth_nb(bid, ask, st, DEPTH_LEVELS)
            ctl[k, CTL_DEPTH] = db
            ctl[k, CTL_DEPTH + 1] = da
