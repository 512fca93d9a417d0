"""Kernels of the backtester's fast path: the market between two decisions of a timer strategy, in one call.

:func:`run_nb` is :meth:`workbench.backtest.engine.Backtest._loop` for one symbol whose strategy decides on a timer
only, with :class:`~workbench.venue.replay.ReplayVenue` (the exchange) and
:class:`~workbench.backtest.feed.LocalFeed` (the local, feed-delayed book) inside it. It runs the same loop, step
for step: it takes the earliest next thing (a feed message, a timer, a mark, an order reaching the exchange, an
answer reaching the strategy), advances the exchange to ``t - min response latency`` before a local event, applies
feed messages in one block up to the next other event, and keeps the order of both links. What needs Python (the
strategy, the risk guard, the order state machine, the equity marks) is written to a log, and the kernel returns
when Python must act before it can go on: at a mark or a timer, or after an answer or a book update when the
caller asked for it (a strategy that reacts to answers, a guard that may act on a book update). Book updates and
answers the strategy does not react to are only logged, with the values Python needs (the local top of book and
depth after the update, the local mid when an answer arrives), and Python replays them in order. See
:mod:`workbench.backtest.fast` for the driver.

The exchange is ReplayVenue's rules exactly (see its module docstring): trades and book diffs merged by release time
with trades first (:func:`prepare_nb`), users' orders resting behind the displayed size with the queue models of
:mod:`workbench.venue.queue` (:func:`queue_join_nb`, :func:`queue_trade_nb`, :func:`queue_level_nb`, the same
formulas), fills by a trade at the price past the queue ahead, by a trade through the price, by the opposite side
quoted at or through the price, taking at replayed prices with what users took withheld until the level next
updates, post-only, IOC/FOK/MARKET, balances and commissions (:func:`commission_nb`, rounded up as
:func:`~workbench.venue.api.commission_units`), out-of-sync periods between a gap and the next snapshot. The
recording must hold absolute book rows only (SNAPSHOT, DEPTH: Binance captures, the workbench's own Parquet);
order-level rows (LOBSTER) take the Python path.

Books are :class:`~workbench.book.L2Book` arrays updated by :func:`workbench.book.nb.apply_events_nb`. A row outside
a book's dense window is what the facade's ``_run`` does with it: kept as an overflow level (in the kernel's own
sorted arrays ``FAR``, each change logged in ``FLOG`` so that the driver keeps the facade's maps the same), or, when
the window must move, handed to the facade: the kernel returns ``RUN_NEED_BOOK`` with the rows left to apply, the
driver applies them with :meth:`L2Book.apply` and calls again, and the kernel goes on where it stopped (every step
that can stop is resumable; ``S[S_PEND]`` says which). The exchange book is brought up to date lazily, only before
something reads it (an order reaching the exchange, the queue estimates after a snapshot): nothing else of the
exchange depends on it.

Conventions: integers are ticks, lots, notional units (tick x lot) and ns; ``NONE`` (int64 min) stands for None.
State lives in arrays the driver owns (layouts below); the kernel never allocates per event.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from workbench.book import nb as book_nb
from workbench.risk import nb as risk_nb
from workbench.strategy import nb as strat_nb
from workbench.enums import (
    F_BATCH_END,
    F_CLEAR,
    F_GAP,
    K_CROSS_TRADE,
    K_DEPTH,
    K_ORDER_ADD,
    K_ORDER_EXEC,
    K_ORDER_EXEC_HIDDEN,
    K_SNAPSHOT,
    K_TRADE,
    K_BBO,
    K_STATUS,
)

__all__ = [
    "prepare_nb", "queue_join_nb", "queue_trade_nb", "queue_level_nb", "prob_behind_nb",
    "commission_nb", "run_nb", "run_compiled_nb", "local_tops_nb",
]

NONE = np.iinfo(np.int64).min
I64_MAX = np.iinfo(np.int64).max

CLS_NONE, CLS_TRADE, CLS_BOOK = -1, 0, 1

# queue models
Q_CONSERVATIVE, Q_PROBABILISTIC, Q_NONE = 0, 1, 2

# order types, time in force, statuses (workbench.venue.api)
T_LIMIT, T_MARKET, T_MAKER = 1, 2, 3
TIF_GTC, TIF_IOC, TIF_FOK = 1, 2, 3
ST_NEW, ST_PARTIAL, ST_FILLED, ST_CANCELED, ST_REJECTED, ST_EXPIRED = 1, 2, 3, 4, 5, 6

# rejections (the driver maps them to ReplayVenue's messages)
REJ_LOT, REJ_PRICE, REJ_NOTIONAL, REJ_BALANCE, REJ_POST_ONLY = 1, 2, 3, 4, 5

# run statuses
RUN_DONE = 0        # nothing left: the loop of the engine ended
RUN_PYTHON = 1      # the log ends with something Python must act on before the kernel goes on
RUN_NEED_BOOK = 2   # apply rows S[S_NB_START]..S[S_NB_END] (exclusive) to book S[S_NB_BOOK] (0 exchange, 1 local)
RUN_NEED_SPACE = 3  # a buffer is full: the driver drains the log, compacts the answer queue, grows S[S_NEED_*]

# entry-link kinds (the driver pushes them)
EX_PLACE, EX_CANCEL = 0, 1
# answer kinds (the kernel pushes them)
ANS_REPORT, ANS_REJECT, ANS_CANCEL_REJECT = 2, 3, 4
# log entry types
LG_BOOK, LG_ANSWER, LG_MARK, LG_TIMER = 1, 2, 3, 4

# S: the state vector
S_FEED_K = 0          # next feed message
S_EX_P = 1            # next row of the venue's merged order
S_EX_NOW = 2          # the venue's clock
S_EXB = 3             # exchange book: rows of the recording before this index are applied
S_EXB_TARGET = 4      # ... and must be, before the book is read
S_CLEAR_PENDING = 5   # between a CLEAR and the next snapshot (ReplayVenue._clear_pending)
S_NEXT_OID = 6
S_NEXT_FILL_ID = 7
S_NEXT_TIMER = 8
S_NEXT_MARK = 9
S_TIMER_NS = 10
S_MARK_NS = 11
S_STRAT_ON = 12
S_ENDED = 13
S_MIN_RESP = 14
S_RESP_LAT = 15
S_RESP_LAST = 16
S_SEQ = 17            # sequence of both links (the engine's heap tie-break)
S_EQ_HEAD = 18
S_EQ_TAIL = 19
S_RQ_HEAD = 20
S_RQ_TAIL = 21
S_LOG_N = 22
S_N_LV = 23
S_N_RS = 24
S_N_TK = 25
S_BEST_BID = 26       # best price of users' resting bids, NONE if none
S_BEST_ASK = 27
S_PEND = 28
S_PEND_TARGET = 29
S_PEND_ACTION = 30
S_PEND_KIND = 31
S_PEND_SLOT = 32
S_PEND_T = 33
S_PEND_A = 34
S_PEND_B = 35
S_SUB = 36
S_SUB_A = 37
S_SUB_B = 38
S_NB_BOOK = 39
S_NB_START = 40
S_NB_END = 41
S_FAR_N = 42          # 42..45: overflow levels held in FAR rows 0 (exchange bids), 1 (exchange asks),
                      # 2 (local bids), 3 (local asks)
S_FLOG_N = 46         # changes of overflow levels logged for the facades
S_STOP_AT_BOOK = 47
S_STOP_AT_ANSWER = 48
S_STOP_ONCE = 49      # return after the next logged book update or answer
S_QMODEL = 50
S_MAKER_PPM = 51
S_TAKER_PPM = 52
S_FEE_MAX = 53
S_MIN_QTY = 54
S_MAX_QTY = 55
S_MIN_NOTIONAL = 56
S_BASE_FREE = 57
S_BASE_LOCK = 58
S_QUOTE_FREE = 59
S_QUOTE_LOCK = 60
S_NEED_RQ = 61        # RUN_NEED_SPACE: free answer slots needed
S_NEED_TK = 62        # ... taken-level slots needed
S_NEED_WK = 63        # ... walk slots needed
S_MAX_LEVELS = 64     # the books' widest dense window (L2Book.max_levels)
S_END_NS = 65         # the recording's last exchange time: where the exchange stops when the data has ended
S_LOCAL_PRE = 66      # 1: the local book is not kept; its reads come from LT (the compiled path, see run_nb)
S_PER_MSG = 67        # 1: the strategy acts on book messages: feed messages one at a time, each logged with
                      # whether it is a trade message (LOG column 8)
S_SIZE = 72

PEND_ADVANCE, PEND_FEED = 1, 2
ACT_NONE, ACT_EXSTEP = 0, 1
SUB_AFTER_SNAP = 1

# P: float parameters
P_POWER = 0
P_SIZE = 1

# ORD: one row per order of the strategy (slot = order of submission); ORDF: its queue position
O_SIDE, O_TYPE, O_TIF, O_QTY, O_PX = 0, 1, 2, 3, 4
O_STATUS = 5      # at the venue: 0 never accepted, else ST_*
O_FILLED, O_QUOTE, O_OID, O_LOCKED, O_LOCK_PX, O_UNLOCKED, O_RESTING = 6, 7, 8, 9, 10, 11, 12
O_W = 13
F_AHEAD, F_TRADED = 0, 1

# LV: users' levels in creation order (side, px, displayed); RS: resting slots in time order; TK: taken (side, px, lots)
# EQ: entry link (due, seq, kind, slot); RQ: answer link, one row per answer:
R_DUE, R_SEQ, R_KIND, R_SLOT, R_STATUS, R_FILLED, R_QUOTE, R_OID = 0, 1, 2, 3, 4, 5, 6, 7
R_HAS_FILL, R_F_SIDE, R_F_PX, R_F_QTY, R_F_COMM, R_F_MAKER, R_F_TS, R_REJ = 8, 9, 10, 11, 12, 13, 14, 15
R_W = 16
# FAR: int64[2, 4, k] overflow levels, prices [0] and sizes [1], best first, rows as S_FAR_N says
# FLOG: int64[k, 4] what the kernel did to overflow levels, in order: (row, px, qty, 0) set (qty 0 deletes),
#   (row of the book's bids, 0, 0, 1) a CLEAR emptied them
# LOG rows: type, t, then
#   LG_BOOK: the local book's top (bid px, bid qty, ask px, ask qty; qty 0: that side is empty) and the sizes of
#     its best BOOK_LEVELS levels a side (bid depth, ask depth); then 1 if the (last) message was of trades
#   LG_ANSWER: RQ columns R_KIND..R_REJ at 2..15, then the local book's top at 16..19 (as in LG_BOOK)
#   LG_MARK: 1 if the timer of the same time comes next (unless the mark sends an order due by then)
L_TYPE, L_T = 0, 1
L_W = 20
BOOK_LEVELS = book_nb.DEPTH_LEVELS
V_IX, V_REL, V_END, V_CLEAR = 0, 1, 2, 3


# =====================================================================================================================
# preparation
# =====================================================================================================================
@njit(cache=True)
def _row_class(k):
    if k == K_TRADE or k == K_ORDER_EXEC_HIDDEN or k == K_CROSS_TRADE:
        return CLS_TRADE
    if k == K_SNAPSHOT or k == K_DEPTH or (k >= K_ORDER_ADD and k <= K_ORDER_EXEC):
        return CLS_BOOK
    return CLS_NONE


@njit(cache=True)
def prepare_nb(kind, ts_exch_ns, flags):
    """Everything the kernel reads of a recording besides its rows, in one pass over them (the rows are 64 bytes
    each: passes over them, not arithmetic, are what this costs).

    Returns ``(V, F, ok, order_level)``:

    - ``V`` int64[4, m], the order in which :class:`~workbench.venue.replay.ReplayVenue` replays the recording given
      as one chunk. Rows of the trade class (TRADE, ORDER_EXEC_HIDDEN, CROSS_TRADE) and the book class (SNAPSHOT,
      DEPTH, ORDER_*) get a release time, the running maximum of exchange times within the class, and are merged by
      (release time, trades first, recorded order); other rows are left out. Per position: the row's index in the
      recording (``V_IX``), its release time (``V_REL``), the position of the last row of its message (``V_END``:
      the next row flagged BATCH_END or GAP; -1: the recording ends inside it) and the position of the last book
      row flagged CLEAR at or before it (``V_CLEAR``, -1 if none).
    - ``F`` int64[3, k], the local feed's messages (:class:`~workbench.backtest.feed.LocalFeed`): rows other than
      BBO and STATUS up to each row flagged BATCH_END or GAP (the last row ends one too); per message the index of
      its first row, one past its last row, and its last row.
    - ``ok``: False when a venue message mixes the two classes; ``order_level``: the recording holds order-level
      (LOBSTER) rows. Either means the fast path does not apply.
    """
    n = kind.shape[0]
    cls = np.empty(n, np.int8)
    fstart = np.empty(n, np.int64)  # over-allocated: only the pages written are touched
    fend = np.empty(n, np.int64)
    m = 0
    n_msg = 0
    start = -1
    last = -1
    order_level = False
    for i in range(n):
        k = kind[i]
        c = _row_class(k)
        cls[i] = c
        if c != CLS_NONE:
            m += 1
            if k >= K_ORDER_ADD and k <= K_ORDER_EXEC:
                order_level = True
        if k != K_BBO and k != K_STATUS:
            if start < 0:
                start = i
            last = i
            if flags[i] & (F_BATCH_END | F_GAP):
                fstart[n_msg] = start
                fend[n_msg] = i
                n_msg += 1
                start = -1
    if start >= 0:
        fstart[n_msg] = start
        fend[n_msg] = last
        n_msg += 1
    F = np.empty((3, n_msg), np.int64)
    for k in range(n_msg):
        F[0, k] = fstart[k]
        F[1, k] = fend[k] + 1
        F[2, k] = fend[k]
    # merge the two classes as they come: the next row of each, its release time the running maximum of its class
    V = np.empty((4, m), np.int64)
    is_end = np.empty(m, np.int8)
    a = 0
    b = 0
    while a < n and cls[a] != CLS_TRADE:
        a += 1
    while b < n and cls[b] != CLS_BOOK:
        b += 1
    mt = NONE
    mb = NONE
    last_clear = -1
    for p in range(m):
        rt = max(mt, ts_exch_ns[a]) if a < n else NONE
        rb = max(mb, ts_exch_ns[b]) if b < n else NONE
        if b >= n or (a < n and rt <= rb):
            r = a
            V[V_REL, p] = rt
            mt = rt
            a += 1
            while a < n and cls[a] != CLS_TRADE:
                a += 1
        else:
            r = b
            V[V_REL, p] = rb
            mb = rb
            if flags[b] & F_CLEAR:
                last_clear = p
            b += 1
            while b < n and cls[b] != CLS_BOOK:
                b += 1
        V[V_IX, p] = r
        V[V_CLEAR, p] = last_clear
        is_end[p] = 1 if flags[r] & (F_BATCH_END | F_GAP) else 0
    nxt = -1
    for p in range(m - 1, -1, -1):
        if is_end[p]:
            nxt = p
        V[V_END, p] = nxt
    ok = True
    p = 0
    while p < m:
        e = V[V_END, p] if V[V_END, p] >= 0 else m - 1
        c = cls[V[V_IX, p]]
        for q in range(p + 1, e + 1):
            if cls[V[V_IX, q]] != c:
                ok = False
        p = e + 1
    return V, F, ok, order_level


# =====================================================================================================================
# queue models and fees: the formulas of workbench.venue.queue and workbench.venue.api, on scalars
# =====================================================================================================================
@njit(cache=True)
def prob_behind_nb(ahead, behind, power):
    """:meth:`ProbabilisticQueue.prob_behind <workbench.venue.queue.ProbabilisticQueue.prob_behind>`."""
    if ahead <= 0:
        return 1.0
    if behind <= 0:
        return 0.0
    if power == 0:
        return 0.5
    r = math.log(ahead / behind) * power
    if r > 700:
        return 0.0
    return 1.0 / (1.0 + math.exp(r))


@njit(cache=True)
def queue_join_nb(model, displayed_lots):
    """The size ahead of an order joining a level of ``displayed_lots`` (``join``)."""
    if model == Q_NONE:
        return 0.0
    return float(max(displayed_lots, 0))


@njit(cache=True)
def queue_trade_nb(model, ahead, traded, qty_lots):
    """A trade of ``qty_lots`` hit the level (``on_trade``): returns (lots past the queue, ahead, traded)."""
    if model == Q_PROBABILISTIC:
        traded += qty_lots
    ahead -= qty_lots
    if ahead >= 0:
        return 0, ahead, traded
    over = math.floor(-ahead + 1e-9)
    return over, 0.0, traded


@njit(cache=True)
def queue_level_nb(model, power, ahead, traded, prev_lots, new_lots):
    """The level went from ``prev_lots`` to ``new_lots`` (``on_level``): returns (ahead, traded)."""
    if model == Q_CONSERVATIVE:
        return max(0.0, min(ahead, float(new_lots))), traded
    if model == Q_NONE:
        return 0.0, traded
    chg = prev_lots - new_lots - traded
    if chg <= 0:
        return max(0.0, min(ahead, float(new_lots))), 0.0
    front = ahead
    back = max(prev_lots - front, 0.0)
    prob = prob_behind_nb(front, back, power)
    est = front - (1.0 - prob) * chg + min(back - prob * chg, 0.0)
    return max(0.0, min(est, float(new_lots))), 0.0


@njit(cache=True)
def commission_nb(px_ticks, qty_lots, fee_ppm):
    """:func:`~workbench.venue.api.commission_units`: ceil(px * qty * fee / 1e6), exact."""
    n = px_ticks * qty_lots
    hi = n // 1_000_000
    lo = n - hi * 1_000_000
    return hi * fee_ppm + -((-lo * fee_ppm) // 1_000_000)


# =====================================================================================================================
# books
# =====================================================================================================================
@njit(cache=True)
def _far_set(FAR, FLOG, S, r, px, qty):
    """L2Book._far_apply for an absolute row: set overflow level ``px`` of row ``r`` (0 deletes it), keep the row
    sorted best first, log the change. Returns 1 (changed), 0 (deleting a level that is not there), -1 (no room)."""
    n = S[S_FAR_N + r]
    bids = r % 2 == 0
    lo = 0
    hi = n
    while lo < hi:  # the first index not better than px
        mid = (lo + hi) >> 1
        v = FAR[0, r, mid]
        if (v > px) if bids else (v < px):
            lo = mid + 1
        else:
            hi = mid
    present = lo < n and FAR[0, r, lo] == px
    if qty == 0 and not present:
        return 0
    if S[S_FLOG_N] >= FLOG.shape[0] or (not present and n >= FAR.shape[2]):
        return -1
    if qty == 0:
        for k in range(lo, n - 1):
            FAR[0, r, k] = FAR[0, r, k + 1]
            FAR[1, r, k] = FAR[1, r, k + 1]
        S[S_FAR_N + r] = n - 1
    elif present:
        FAR[1, r, lo] = qty
    else:
        for k in range(n, lo, -1):
            FAR[0, r, k] = FAR[0, r, k - 1]
            FAR[1, r, k] = FAR[1, r, k - 1]
        FAR[0, r, lo] = px
        FAR[1, r, lo] = qty
        S[S_FAR_N + r] = n + 1
    L = S[S_FLOG_N]
    FLOG[L, 0] = r
    FLOG[L, 1] = px
    FLOG[L, 2] = qty
    FLOG[L, 3] = 0
    S[S_FLOG_N] = L + 1
    return 1


@njit(cache=True)
def _apply_rows(ev, lo, hi, bid, ask, st, FAR, FLOG, S, r0, no_ix, no_lv):
    """Apply rows ``lo..hi-1`` of the recording to a book as :meth:`L2Book.apply` does (``r0``: the book's first
    FAR row). A row outside the window is kept as an overflow level when the facade would keep it so; -1 when all
    rows are applied, else the row the facade must take from (the window moves; or a buffer is full)."""
    kind = ev["kind"][:hi]
    side = ev["side"][:hi]
    pxa = ev["px_ticks"][:hi]
    qtya = ev["qty_lots"][:hi]
    flags = ev["flags"][:hi]
    max_levels = S[S_MAX_LEVELS]
    i = lo
    while i < hi:
        if S[S_FLOG_N] >= FLOG.shape[0]:
            return i
        clears = st[book_nb.ST_CLEARS]
        status, j = book_nb.apply_events_nb(kind, side, pxa, qtya, flags, i, bid, ask, st, False, no_ix, no_lv)
        if st[book_nb.ST_CLEARS] != clears:  # the facade drops its overflow levels when it sees the count move
            S[S_FAR_N + r0] = 0
            S[S_FAR_N + r0 + 1] = 0
            L = S[S_FLOG_N]
            FLOG[L, 0] = r0
            FLOG[L, 1] = 0
            FLOG[L, 2] = 0
            FLOG[L, 3] = 1
            S[S_FLOG_N] = L + 1
        if status != book_nb.STATUS_OUT_OF_RANGE:
            return -1
        k = kind[j]
        s = np.int64(side[j])
        p = pxa[j]
        q = qtya[j]
        f = flags[j]
        if f & F_CLEAR or q < 0 or not (k == K_DEPTH or k == K_SNAPSHOT):
            return j  # rare rows (and malformed sizes) are the facade's
        # L2Book._run: a row that adds size goes to the overflow levels when it is deep (more than half a window
        # behind the touch) or behind the touch where the window cannot grow; any other row outside the window
        # that adds size moves the window (the facade's business)
        if q > 0:
            bb = st[book_nb.ST_BEST_BID]
            ba = st[book_nb.ST_BEST_ASK]
            base = st[book_nb.ST_BASE]
            has_ref = True
            if bb >= 0 and ba >= 0:
                ref = base + (bb + ba) // 2
            elif bb >= 0 or ba >= 0:
                ref = base + max(bb, ba)
            else:
                has_ref = False
                ref = 0
            half = max_levels // 2 - 1
            deep = has_ref and (p < ref - half if s > 0 else p > ref + half)
            behind = has_ref and (p < ref if s > 0 else p > ref)
            cap = bid.shape[0]
            grows = max(base + cap - 1, p) - min(base, p) + 1 <= max_levels
            if not (deep or (behind and not grows)):
                return j
        rr = r0 if s > 0 else r0 + 1
        if _far_set(FAR, FLOG, S, rr, p, q) < 0:
            return j
        if S[S_FAR_N + r0] + S[S_FAR_N + r0 + 1] > 0:
            st[book_nb.ST_HAS_FAR] = 1
        else:
            st[book_nb.ST_HAS_FAR] = 0
        # L2Book._skip_one: the row's flags still apply (the batch-end check of a crossed book)
        if f & F_BATCH_END:
            bb = st[book_nb.ST_BEST_BID]
            ba = st[book_nb.ST_BEST_ASK]
            if bb >= 0 and ba >= 0 and bb >= ba:
                st[book_nb.ST_CROSSED] += 1
        i = j + 1
    return -1


@njit(cache=True)
def _top(bid, ask, st, FAR, S, far_row):
    """:meth:`L2Book.top`: (bid px, bid qty, ask px, ask qty), overflow levels included; qty 0 for an empty side."""
    if bid.shape[0] == 0:
        return 0, 0, 0, 0
    base = st[book_nb.ST_BASE]
    bb = st[book_nb.ST_BEST_BID]
    ba = st[book_nb.ST_BEST_ASK]
    bpx = base + bb
    bq = bid[bb] if bb >= 0 else 0
    apx = base + ba
    aq = ask[ba] if ba >= 0 else 0
    if S[S_FAR_N + far_row] > 0:
        fp = FAR[0, far_row, 0]
        if bq == 0 or fp > bpx:
            bpx = fp
            bq = FAR[1, far_row, 0]
    if S[S_FAR_N + far_row + 1] > 0:
        fp = FAR[0, far_row + 1, 0]
        if aq == 0 or fp < apx:
            apx = fp
            aq = FAR[1, far_row + 1, 0]
    return bpx if bq else 0, bq, apx if aq else 0, aq


@njit(cache=True)
def local_tops_nb(ev, FD, k0, applied, lbid, lask, lst, FAR, FLOG, S, LT):
    """What the compiled path reads of the local book, after each feed message: ``LT[k]`` = top (bid px, bid qty,
    ask px, ask qty, as :func:`_top`) and depth (bid, ask, as :func:`workbench.book.nb.depth_nb`) once messages ``0..k`` are applied.

    The local book is a function of the rows applied to it, not of the strategy or the latencies (they only say
    when): computed once per recording, these replace the local book during a compiled run. Applies messages
    ``k0..`` (``applied``: message ``k0``'s rows are already in, the facade took them) with :func:`_apply_rows` to
    FAR rows 2 and 3. Returns ``(k, -1)`` when done, or ``(k, row)`` when the facade must apply message ``k`` from
    ``row`` on (its window moves; or FAR is full), after which the call goes on with ``k0 = k, applied = True``.
    """
    no_ix = np.zeros(0, np.int64)
    no_lv = np.zeros((0, 4, 1), np.int64)
    nf = FD.shape[1]
    for k in range(k0, nf):
        if not (applied and k == k0):
            S[S_FLOG_N] = 0  # the driver reads FAR itself, not its log
            r = _apply_rows(ev, FD[0, k], FD[1, k], lbid, lask, lst, FAR, FLOG, S, 2, no_ix, no_lv)
            if r >= 0:
                return k, r
        bpx, bq, apx, aq = _top(lbid, lask, lst, FAR, S, 2)
        db, da = book_nb.depth_nb(lbid, lask, lst, BOOK_LEVELS)
        LT[k, 0] = bpx
        LT[k, 1] = bq
        LT[k, 2] = apx
        LT[k, 3] = aq
        LT[k, 4] = db
        LT[k, 5] = da
    return nf, -1


@njit(cache=True)
def _ensure_exch(ev, xbid, xask, xst, FAR, FLOG, S, no_ix, no_lv):
    """Bring the exchange book up to every book row the venue has processed."""
    hi = S[S_EXB_TARGET]
    lo = S[S_EXB]
    if lo >= hi:
        return 0
    S[S_EXB] = hi
    r = _apply_rows(ev, lo, hi, xbid, xask, xst, FAR, FLOG, S, 0, no_ix, no_lv)
    if r >= 0:
        S[S_NB_BOOK] = 0
        S[S_NB_START] = r
        S[S_NB_END] = hi
        return RUN_NEED_BOOK
    return 0


@njit(cache=True)
def _level_qty(xbid, xask, xst, FAR, S, side, px):
    """ReplayVenue._level_qty: the exchange book's size at a price (window or overflow)."""
    arr = xbid if side > 0 else xask
    i = px - xst[book_nb.ST_BASE]
    if 0 <= i < arr.shape[0]:
        return arr[i]
    r = 0 if side > 0 else 1
    for k in range(S[S_FAR_N + r]):
        if FAR[0, r, k] == px:
            return FAR[1, r, k]
    return 0


# =====================================================================================================================
# the venue: users' orders against the recording (ReplayVenue's methods of the same names)
# =====================================================================================================================
@njit(cache=True)
def _find_level(LV, n_lv, side, px):
    for k in range(n_lv):
        if LV[k, 1] == px and LV[k, 0] == side:
            return k
    return -1


@njit(cache=True)
def _taken_at(TK, n_tk, side, px):
    for k in range(n_tk):
        if TK[k, 1] == px and TK[k, 0] == side:
            return TK[k, 2]
    return 0


@njit(cache=True)
def _taken_pop(S, TK, side, px):
    n = S[S_N_TK]
    for k in range(n):
        if TK[k, 1] == px and TK[k, 0] == side:
            for m in range(k, n - 1):
                TK[m, 0] = TK[m + 1, 0]
                TK[m, 1] = TK[m + 1, 1]
                TK[m, 2] = TK[m + 1, 2]
            S[S_N_TK] = n - 1
            return


@njit(cache=True)
def _taken_add(S, TK, side, px, lots):
    n = S[S_N_TK]
    for k in range(n):
        if TK[k, 1] == px and TK[k, 0] == side:
            TK[k, 2] += lots
            return
    TK[n, 0] = side
    TK[n, 1] = px
    TK[n, 2] = lots
    S[S_N_TK] = n + 1


@njit(cache=True)
def _push_answer(S, ORD, RQ, kind, o, ts, has_fill, f_side, f_px, f_qty, f_comm, f_maker, rej):
    """The engine's _push_resp: the answer reaches the strategy one response latency later, in order."""
    due = ts + S[S_RESP_LAT]
    if due < S[S_RESP_LAST]:
        due = S[S_RESP_LAST]
    S[S_RESP_LAST] = due
    S[S_SEQ] += 1
    r = S[S_RQ_TAIL]
    S[S_RQ_TAIL] = r + 1
    RQ[r, R_DUE] = due
    RQ[r, R_SEQ] = S[S_SEQ]
    RQ[r, R_KIND] = kind
    RQ[r, R_SLOT] = o
    RQ[r, R_STATUS] = ORD[o, O_STATUS]
    RQ[r, R_FILLED] = ORD[o, O_FILLED]
    RQ[r, R_QUOTE] = ORD[o, O_QUOTE]
    RQ[r, R_OID] = ORD[o, O_OID]
    RQ[r, R_HAS_FILL] = has_fill
    RQ[r, R_F_SIDE] = f_side
    RQ[r, R_F_PX] = f_px
    RQ[r, R_F_QTY] = f_qty
    RQ[r, R_F_COMM] = f_comm
    RQ[r, R_F_MAKER] = f_maker
    RQ[r, R_F_TS] = ts
    RQ[r, R_REJ] = rej


@njit(cache=True)
def _reserve(S, ORD, o, leaves):
    """_Order.reserve: what an order holds locked while ``leaves`` lots are open."""
    if ORD[o, O_SIDE] < 0:
        return leaves if leaves > 0 else 0
    leaves -= ORD[o, O_UNLOCKED]
    if leaves <= 0:
        return 0
    lp = ORD[o, O_LOCK_PX]
    return lp * leaves + commission_nb(lp, leaves, S[S_FEE_MAX]) + leaves


@njit(cache=True)
def _own_best_recompute(S, LV, side):
    best = NONE
    for k in range(S[S_N_LV]):
        if LV[k, 0] == side:
            p = LV[k, 1]
            if best == NONE or (p > best if side > 0 else p < best):
                best = p
    S[S_BEST_BID if side > 0 else S_BEST_ASK] = best


@njit(cache=True)
def _unrest(S, ORD, LV, RS, o):
    if ORD[o, O_RESTING] == 0:
        return
    ORD[o, O_RESTING] = 0
    n = S[S_N_RS]
    k = 0
    while RS[k] != o:
        k += 1
    for m in range(k, n - 1):
        RS[m] = RS[m + 1]
    n -= 1
    S[S_N_RS] = n
    side = ORD[o, O_SIDE]
    px = ORD[o, O_PX]
    for m in range(n):
        q = RS[m]
        if ORD[q, O_PX] == px and ORD[q, O_SIDE] == side:
            return
    nl = S[S_N_LV]
    li = _find_level(LV, nl, side, px)
    for m in range(li, nl - 1):
        LV[m, 0] = LV[m + 1, 0]
        LV[m, 1] = LV[m + 1, 1]
        LV[m, 2] = LV[m + 1, 2]
    S[S_N_LV] = nl - 1
    if S[S_BEST_BID if side > 0 else S_BEST_ASK] == px:
        _own_best_recompute(S, LV, side)


@njit(cache=True)
def _keep_time_priority(S, ORD, ORDF, RS, side, px):
    prev = 0.0
    for m in range(S[S_N_RS]):
        q = RS[m]
        if ORD[q, O_PX] == px and ORD[q, O_SIDE] == side:
            if ORDF[q, F_AHEAD] < prev:
                ORDF[q, F_AHEAD] = prev
            prev = ORDF[q, F_AHEAD]


@njit(cache=True)
def _fill(S, ORD, LV, RS, RQ, o, px, qty, maker, ts):
    comm = commission_nb(px, qty, S[S_MAKER_PPM] if maker else S[S_TAKER_PPM])
    notional = px * qty
    leaves = ORD[o, O_QTY] - ORD[o, O_FILLED]
    after = _reserve(S, ORD, o, leaves - qty)
    release = ORD[o, O_LOCKED] - after
    ORD[o, O_LOCKED] = after
    side = ORD[o, O_SIDE]
    if side > 0:
        S[S_QUOTE_LOCK] -= release
        S[S_QUOTE_FREE] += release - notional - comm
        S[S_BASE_FREE] += qty
    else:
        S[S_BASE_LOCK] -= release
        S[S_QUOTE_FREE] += notional - comm
    ORD[o, O_FILLED] += qty
    ORD[o, O_QUOTE] += notional
    S[S_NEXT_FILL_ID] += 1
    if ORD[o, O_FILLED] == ORD[o, O_QTY]:
        ORD[o, O_STATUS] = ST_FILLED
        _unrest(S, ORD, LV, RS, o)
    else:
        ORD[o, O_STATUS] = ST_PARTIAL
    _push_answer(S, ORD, RQ, ANS_REPORT, o, ts, 1, side, px, qty, comm, 1 if maker else 0, 0)


@njit(cache=True)
def _close(S, ORD, LV, RS, RQ, o, status, ts):
    """CANCELED or EXPIRED: release the lock, leave the book, report."""
    if ORD[o, O_SIDE] > 0:
        S[S_QUOTE_LOCK] -= ORD[o, O_LOCKED]
        S[S_QUOTE_FREE] += ORD[o, O_LOCKED]
    else:
        S[S_BASE_LOCK] -= ORD[o, O_LOCKED]
        S[S_BASE_FREE] += ORD[o, O_LOCKED]
    ORD[o, O_LOCKED] = 0
    ORD[o, O_STATUS] = status
    _unrest(S, ORD, LV, RS, o)
    _push_answer(S, ORD, RQ, ANS_REPORT, o, ts, 0, 0, 0, 0, 0, 0, 0)


@njit(cache=True)
def _fill_through(S, ORD, LV, RS, RQ, WK, side, px, inclusive, ts):
    """Fill entirely every users' order on ``side`` priced through ``px`` (or at it), best price first."""
    # the prices, best first (a handful: insertion sort into the walk buffer's spare row)
    n = 0
    for k in range(S[S_N_LV]):
        if LV[k, 0] != side:
            continue
        p = LV[k, 1]
        if side > 0:
            through = p > px or (inclusive and p == px)
        else:
            through = p < px or (inclusive and p == px)
        if not through:
            continue
        m = n
        while m > 0 and (WK[2, m - 1] < p if side > 0 else WK[2, m - 1] > p):
            WK[2, m] = WK[2, m - 1]
            m -= 1
        WK[2, m] = p
        n += 1
    for k in range(n):
        p = WK[2, k]
        # the level's orders as they are now, in time priority (each fill removes one)
        while True:
            o = -1
            for m in range(S[S_N_RS]):
                q = RS[m]
                if ORD[q, O_PX] == p and ORD[q, O_SIDE] == side:
                    o = q
                    break
            if o < 0:
                break
            _fill(S, ORD, LV, RS, RQ, o, p, ORD[o, O_QTY] - ORD[o, O_FILLED], True, ts)


@njit(cache=True)
def _on_level(S, P, ORD, ORDF, LV, RS, RQ, WK, side, px, qty, ts):
    li = _find_level(LV, S[S_N_LV], side, px)
    if li >= 0 and S[S_CLEAR_PENDING] == 0:
        prev = LV[li, 2]
        LV[li, 2] = qty
        model = S[S_QMODEL]
        power = P[P_POWER]
        for m in range(S[S_N_RS]):
            q = RS[m]
            if ORD[q, O_PX] == px and ORD[q, O_SIDE] == side:
                a, tr = queue_level_nb(model, power, ORDF[q, F_AHEAD], ORDF[q, F_TRADED], prev, qty)
                ORDF[q, F_AHEAD] = a
                ORDF[q, F_TRADED] = tr
        _keep_time_priority(S, ORD, ORDF, RS, side, px)
    if qty > 0:
        if side > 0:
            best = S[S_BEST_ASK]
            if best != NONE and best <= px:
                _fill_through(S, ORD, LV, RS, RQ, WK, -1, px, True, ts)
        else:
            best = S[S_BEST_BID]
            if best != NONE and best >= px:
                _fill_through(S, ORD, LV, RS, RQ, WK, 1, px, True, ts)


@njit(cache=True)
def _on_trade(S, ORD, ORDF, LV, RS, RQ, WK, aggressor, px, qty, ts, queue):
    side = -aggressor
    best = S[S_BEST_BID if side > 0 else S_BEST_ASK]
    if best == NONE or (best < px if side > 0 else best > px):
        return
    _fill_through(S, ORD, LV, RS, RQ, WK, side, px, False, ts)
    if not queue or _find_level(LV, S[S_N_LV], side, px) < 0:
        return
    # the level's orders as they were before the trade, in time priority
    n = 0
    for m in range(S[S_N_RS]):
        q = RS[m]
        if ORD[q, O_PX] == px and ORD[q, O_SIDE] == side:
            WK[3, n] = q
            n += 1
    model = S[S_QMODEL]
    used = 0
    for k in range(n):
        o = WK[3, k]
        over, a, tr = queue_trade_nb(model, ORDF[o, F_AHEAD], ORDF[o, F_TRADED], qty)
        ORDF[o, F_AHEAD] = a
        ORDF[o, F_TRADED] = tr
        give = min(ORD[o, O_QTY] - ORD[o, O_FILLED], over - used)
        if give > 0:
            used += give
            _fill(S, ORD, LV, RS, RQ, o, ORD[o, O_PX], give, True, ts)
    _keep_time_priority(S, ORD, ORDF, RS, side, px)


@njit(cache=True)
def _after_snapshot(S, P, ORD, ORDF, LV, RS, RQ, WK, xbid, xask, xst, FAR, ts):
    """The book is known again: each users' level learns its size (0 if the snapshot does not have it)."""
    S[S_CLEAR_PENDING] = 0
    n = S[S_N_LV]
    for k in range(n):  # the levels as they are now, in creation order (a crossing fill may remove some)
        WK[4, k] = LV[k, 0]
        WK[5, k] = LV[k, 1]
    for k in range(n):
        side = WK[4, k]
        px = WK[5, k]
        if _find_level(LV, S[S_N_LV], side, px) >= 0:
            _on_level(S, P, ORD, ORDF, LV, RS, RQ, WK, side, px, _level_qty(xbid, xask, xst, FAR, S, side, px),
                      ts)


@njit(cache=True)
def _rest(S, ORD, ORDF, LV, RS, TK, xbid, xask, xst, FAR, o):
    side = ORD[o, O_SIDE]
    px = ORD[o, O_PX]
    nl = S[S_N_LV]
    li = _find_level(LV, nl, side, px)
    if li < 0:
        li = nl
        LV[li, 0] = side
        LV[li, 1] = px
        LV[li, 2] = _level_qty(xbid, xask, xst, FAR, S, side, px)
        S[S_N_LV] = nl + 1
        k = S_BEST_BID if side > 0 else S_BEST_ASK
        best = S[k]
        if best == NONE or (px > best if side > 0 else px < best):
            S[k] = px
    d = LV[li, 2] - _taken_at(TK, S[S_N_TK], side, px)
    ORDF[o, F_AHEAD] = queue_join_nb(S[S_QMODEL], d if d > 0 else 0)
    ORDF[o, F_TRADED] = 0.0
    RS[S[S_N_RS]] = o
    S[S_N_RS] += 1
    ORD[o, O_RESTING] = 1
    _keep_time_priority(S, ORD, ORDF, RS, side, px)


@njit(cache=True)
def _walk(S, TK, WK, xbid, xask, xst, FAR, side, has_limit, limit, qty):
    """ReplayVenue._walk: the opposite levels an order could take, best first, less what users took there, until
    ``qty`` lots (prices and lots in WK rows 0 and 1). Returns (count, total, needed): ``needed`` > 0 means the walk
    buffer is too small. Levels are read as ReplayVenue._side_top reads them: the window's best n (16, 64, ...), or
    the window and the overflow levels merged by price when the window holds fewer than n."""
    opp = -side
    cap = xbid.shape[0]
    base = xst[book_nb.ST_BASE]
    w = xst[book_nb.ST_N_BID] if opp > 0 else xst[book_nb.ST_N_ASK]
    fr = 0 if opp > 0 else 1
    nfar = S[S_FAR_N + fr]
    n = 16
    while True:
        merged = w < n and xst[book_nb.ST_HAS_FAR] != 0
        count = 0
        total = 0
        seen = 0
        jj = xst[book_nb.ST_BEST_BID] if opp > 0 else xst[book_nb.ST_BEST_ASK]
        if opp < 0 and jj < 0:
            jj = cap
        fi = 0
        while seen < n:
            # the window's next level
            if opp > 0:
                while jj >= 0 and xbid[jj] == 0:
                    jj -= 1
                has_w = jj >= 0
                wp = base + jj
            else:
                while jj < cap and xask[jj] == 0:
                    jj += 1
                has_w = jj < cap
                wp = base + jj
            has_f = merged and fi < nfar
            if not has_w and not has_f:
                break
            if has_w and (not has_f or (wp > FAR[0, fr, fi] if opp > 0 else wp < FAR[0, fr, fi])):
                p = wp
                lots = xbid[jj] if opp > 0 else xask[jj]
                jj += -1 if opp > 0 else 1
            else:
                p = FAR[0, fr, fi]
                lots = FAR[1, fr, fi]
                fi += 1
            seen += 1
            if has_limit and (p > limit if side > 0 else p < limit):
                return count, total, 0
            lots -= _taken_at(TK, S[S_N_TK], opp, p)
            if lots <= 0:
                continue
            if count >= WK.shape[1]:
                return count, total, count + 1
            WK[0, count] = p
            WK[1, count] = lots
            count += 1
            total += lots
            if total >= qty:
                return count, total, 0
        if seen < n:
            return count, total, 0
        n *= 4


@njit(cache=True)
def _place(S, ORD, ORDF, LV, RS, TK, RQ, WK, xbid, xask, xst, FAR, o, t):
    """ReplayVenue.place for an order that reached the exchange at ``t`` (the venue already advanced to it).

    Returns 0, or RUN_NEED_SPACE before anything happened (the caller calls it again)."""
    if S[S_RQ_TAIL] + 1 > RQ.shape[0]:
        S[S_NEED_RQ] = 1
        return RUN_NEED_SPACE
    now = S[S_EX_NOW]
    side = ORD[o, O_SIDE]
    typ = ORD[o, O_TYPE]
    tif = ORD[o, O_TIF]
    qty = ORD[o, O_QTY]
    px = ORD[o, O_PX]
    rej = 0
    if not (S[S_MIN_QTY] <= qty <= S[S_MAX_QTY]):
        rej = REJ_LOT
    elif typ != T_MARKET:
        if px <= 0:
            rej = REJ_PRICE
        elif S[S_MIN_NOTIONAL] > 0 and px * qty < S[S_MIN_NOTIONAL]:
            rej = REJ_NOTIONAL
    if rej:
        _push_answer(S, ORD, RQ, ANS_REJECT, o, t, 0, 0, 0, 0, 0, 0, rej)
        return 0
    count, avail, need = _walk(S, TK, WK, xbid, xask, xst, FAR, side, typ != T_MARKET, px, qty)
    if need > 0:
        S[S_NEED_WK] = need
        return RUN_NEED_SPACE
    if typ == T_MAKER and count > 0:
        _push_answer(S, ORD, RQ, ANS_REJECT, o, t, 0, 0, 0, 0, 0, 0, REJ_POST_ONLY)
        return 0
    if typ == T_MARKET and count > 0 and S[S_MIN_NOTIONAL] > 0 and WK[0, 0] * qty < S[S_MIN_NOTIONAL]:
        _push_answer(S, ORD, RQ, ANS_REJECT, o, t, 0, 0, 0, 0, 0, 0, REJ_NOTIONAL)
        return 0
    if S[S_RQ_TAIL] + count + 3 > RQ.shape[0]:
        S[S_NEED_RQ] = count + 3
        return RUN_NEED_SPACE
    if S[S_N_TK] + count > TK.shape[0]:
        S[S_NEED_TK] = S[S_N_TK] + count
        return RUN_NEED_SPACE
    lock_px = px if typ != T_MARKET else 0
    unlocked = 0
    if typ == T_MARKET and side > 0:
        for k in range(count):
            if WK[0, k] > lock_px:
                lock_px = WK[0, k]
        unlocked = qty - min(qty, avail)
    ORD[o, O_LOCK_PX] = lock_px
    ORD[o, O_UNLOCKED] = unlocked
    ORD[o, O_FILLED] = 0
    ORD[o, O_QUOTE] = 0
    ORD[o, O_LOCKED] = 0
    leaves = qty - unlocked
    if side > 0 and leaves > 0 and float(lock_px) * leaves * (1.0 + S[S_FEE_MAX] / 1e6) + leaves > 9.0e18:
        enough = False  # more than any int64 balance: the lock cannot be computed in int64, nor held
        need_lock = 0
    else:
        need_lock = _reserve(S, ORD, o, qty)
        enough = (S[S_QUOTE_FREE] if side > 0 else S[S_BASE_FREE]) >= need_lock
    if not enough:
        _push_answer(S, ORD, RQ, ANS_REJECT, o, t, 0, 0, 0, 0, 0, 0, REJ_BALANCE)
        return 0
    # accepted
    ORD[o, O_OID] = S[S_NEXT_OID]
    S[S_NEXT_OID] += 1
    ORD[o, O_STATUS] = ST_NEW
    if side > 0:
        S[S_QUOTE_FREE] -= need_lock
        S[S_QUOTE_LOCK] += need_lock
    else:
        S[S_BASE_FREE] -= need_lock
        S[S_BASE_LOCK] += need_lock
    ORD[o, O_LOCKED] = need_lock
    _push_answer(S, ORD, RQ, ANS_REPORT, o, now, 0, 0, 0, 0, 0, 0, 0)
    if not (typ == T_LIMIT and tif == TIF_FOK and avail < qty):
        for k in range(count):
            take = min(WK[1, k], qty - ORD[o, O_FILLED])
            if take <= 0:
                break
            _taken_add(S, TK, -side, WK[0, k], take)
            _fill(S, ORD, LV, RS, RQ, o, WK[0, k], take, False, now)
    st = ORD[o, O_STATUS]
    if st == ST_NEW or st == ST_PARTIAL:
        if (typ == T_LIMIT or typ == T_MAKER) and (typ == T_MAKER or tif == TIF_GTC):
            _rest(S, ORD, ORDF, LV, RS, TK, xbid, xask, xst, FAR, o)
        else:
            _close(S, ORD, LV, RS, RQ, o, ST_EXPIRED, now)
    return 0


@njit(cache=True)
def _exchange_op(ev, S, ORD, ORDF, LV, RS, TK, RQ, WK, xbid, xask, xst, FAR, FLOG, no_ix, no_lv):
    """The engine's _exchange_step after the venue reached the item's time: place or cancel."""
    o = S[S_PEND_SLOT]
    t = S[S_PEND_T]
    if S[S_PEND_KIND] == EX_PLACE:
        st = _ensure_exch(ev, xbid, xask, xst, FAR, FLOG, S, no_ix, no_lv)
        if st:
            return st
        return _place(S, ORD, ORDF, LV, RS, TK, RQ, WK, xbid, xask, xst, FAR, o, t)
    if S[S_RQ_TAIL] + 1 > RQ.shape[0]:
        S[S_NEED_RQ] = 1
        return RUN_NEED_SPACE
    st = ORD[o, O_STATUS]
    if st != ST_NEW and st != ST_PARTIAL:
        _push_answer(S, ORD, RQ, ANS_CANCEL_REJECT, o, t, 0, 0, 0, 0, 0, 0, 0)
    else:
        _close(S, ORD, LV, RS, RQ, o, ST_CANCELED, S[S_EX_NOW])
    return 0


@njit(cache=True)
def _advance(ev, V, S, P, ORD, ORDF, LV, RS, TK, RQ, WK, xbid, xask, xst, FAR, FLOG, no_ix, no_lv, target):
    """ReplayVenue.advance(target): apply every recorded message due by ``target``. Resumable: a return other than 0
    leaves the venue where it stopped, and the next call with the same target goes on from there."""
    n = V.shape[1]
    vx = V[V_IX]
    vrel = V[V_REL]
    vend = V[V_END]
    vclear = V[V_CLEAR]
    kind = ev["kind"]
    side_a = ev["side"]
    px_a = ev["px_ticks"]
    qty_a = ev["qty_lots"]
    flags = ev["flags"]
    if S[S_SUB] == SUB_AFTER_SNAP:  # a snapshot message waited for the exchange book
        st = _ensure_exch(ev, xbid, xask, xst, FAR, FLOG, S, no_ix, no_lv)
        if st:
            return st
        S[S_SUB] = 0
        _after_snapshot(S, P, ORD, ORDF, LV, RS, RQ, WK, xbid, xask, xst, FAR, S[S_SUB_A])
    while True:
        p = S[S_EX_P]
        if p >= n or vrel[p] > target:
            break
        if S[S_N_LV] == 0 and S[S_N_TK] == 0:
            # ReplayVenue._bulk: the rows due, back to a message boundary, applied as one block (2 rows at least)
            j = p + np.searchsorted(vrel[p:], target, side="right")
            if j < n:
                while j > p and vend[j - 1] != j - 1:
                    j -= 1
            if j - p >= 2:
                # the block's book rows after its last CLEAR: a snapshot among them brings the book back in sync
                c = vclear[j - 1]
                if c >= p:
                    snap = False
                    for q in range(c, j):
                        if kind[vx[q]] == K_SNAPSHOT:
                            snap = True
                            break
                    S[S_CLEAR_PENDING] = 0 if snap else 1
                # the book rows of the block, and every earlier one, are in the recording before its last one
                for q in range(j - 1, p - 1, -1):
                    r = vx[q]
                    if _row_class(kind[r]) == CLS_BOOK:
                        if r + 1 > S[S_EXB_TARGET]:
                            S[S_EXB_TARGET] = r + 1
                        break
                S[S_EX_P] = j
                continue
        # one message (ReplayVenue._process_next)
        e = vend[p]
        if e < 0:
            e = n - 1
        trade_msg = _row_class(kind[vx[p]]) == CLS_TRADE
        need = (S[S_N_RS] + 1) * (e - p + 1 if trade_msg else 1) + 1
        if S[S_RQ_TAIL] + need > RQ.shape[0]:
            S[S_NEED_RQ] = need
            return RUN_NEED_SPACE
        ts = vrel[p]
        S[S_EX_P] = e + 1
        if trade_msg:
            for q in range(p, e + 1):
                if S[S_N_LV] == 0:
                    break
                r = vx[q]
                k = kind[r]
                if k == K_TRADE:
                    aggressor = np.int64(side_a[r])
                elif k == K_ORDER_EXEC_HIDDEN:
                    aggressor = -np.int64(side_a[r])
                else:
                    aggressor = np.int64(0)
                if aggressor == 0:
                    continue
                tpx = px_a[r]
                best = S[S_BEST_ASK] if aggressor > 0 else S[S_BEST_BID]  # the side it hit
                if best == NONE or (best > tpx if aggressor > 0 else best < tpx):
                    continue
                _on_trade(S, ORD, ORDF, LV, RS, RQ, WK, aggressor, tpx, qty_a[r], ts, k == K_TRADE)
            continue
        # a book message: its rows (SNAPSHOT / DEPTH) are in the recording in one run up to vx[e]
        r0 = vx[p]
        if flags[r0] & F_CLEAR:
            S[S_N_TK] = 0
            S[S_CLEAR_PENDING] = 1
        if vx[e] + 1 > S[S_EXB_TARGET]:
            S[S_EXB_TARGET] = vx[e] + 1
        if S[S_N_LV] > 0 or S[S_N_TK] > 0:
            for q in range(p, e + 1):
                r = vx[q]
                sd = np.int64(side_a[r])
                if sd == 0:
                    continue
                lpx = px_a[r]
                lqty = qty_a[r]
                if S[S_N_TK] > 0:
                    _taken_pop(S, TK, sd, lpx)
                nl = S[S_N_LV]
                if nl == 0:
                    continue
                # only rows at a users' level or quoted through a users' price matter (ReplayVenue._relevant_rows)
                hit = False
                for m in range(nl):
                    if LV[m, 1] == lpx and LV[m, 0] == sd:
                        hit = True
                        break
                if not hit and lqty > 0:
                    if sd > 0:
                        b = S[S_BEST_ASK]
                        hit = b != NONE and b <= lpx
                    else:
                        b = S[S_BEST_BID]
                        hit = b != NONE and b >= lpx
                if hit:
                    _on_level(S, P, ORD, ORDF, LV, RS, RQ, WK, sd, lpx, lqty, ts)
        if S[S_CLEAR_PENDING] != 0:
            snap = False
            for q in range(p, e + 1):
                if kind[vx[q]] == K_SNAPSHOT:
                    snap = True
                    break
            if snap:
                if S[S_N_LV] == 0:
                    S[S_CLEAR_PENDING] = 0
                else:
                    S[S_SUB] = SUB_AFTER_SNAP
                    S[S_SUB_A] = ts
                    st = _ensure_exch(ev, xbid, xask, xst, FAR, FLOG, S, no_ix, no_lv)
                    if st:
                        return st
                    S[S_SUB] = 0
                    _after_snapshot(S, P, ORD, ORDF, LV, RS, RQ, WK, xbid, xask, xst, FAR, ts)
    if target > S[S_EX_NOW]:
        S[S_EX_NOW] = target
    return 0


@njit(cache=True)
def _heap_top(S, EQ, RQ):
    """The engine heap's first item: (due, from the entry link); due NONE when both links are empty."""
    h = S[S_EQ_HEAD]
    r = S[S_RQ_HEAD]
    has_e = h < S[S_EQ_TAIL]
    has_r = r < S[S_RQ_TAIL]
    if not has_e and not has_r:
        return NONE, False
    if not has_r:
        return EQ[h, 0], True
    if not has_e:
        return RQ[r, R_DUE], False
    if EQ[h, 0] < RQ[r, R_DUE] or (EQ[h, 0] == RQ[r, R_DUE] and EQ[h, 1] < RQ[r, R_SEQ]):
        return EQ[h, 0], True
    return RQ[r, R_DUE], False


@njit(cache=True)
def _local_top(S, LT, lbid, lask, lst, FAR):
    """The local book's top, as :func:`_top` reads it, or from LT (row: the last feed message applied)."""
    if S[S_LOCAL_PRE] == 0:
        return _top(lbid, lask, lst, FAR, S, 2)
    k = S[S_FEED_K] - 1
    if k < 0:
        return 0, 0, 0, 0
    return LT[k, 0], LT[k, 1], LT[k, 2], LT[k, 3]


@njit(cache=True)
def _log_book(ev, FD, S, LOG, LT, lbid, lask, lst, FAR, t):
    L = S[S_LOG_N]
    S[S_LOG_N] = L + 1
    LOG[L, 8] = 1 if _row_class(ev["kind"][FD[0, S[S_FEED_K] - 1]]) == CLS_TRADE else 0
    if S[S_LOCAL_PRE] == 0:
        bpx, bq, apx, aq = _top(lbid, lask, lst, FAR, S, 2)
        db, da = book_nb.depth_nb(lbid, lask, lst, BOOK_LEVELS)
    else:
        k = S[S_FEED_K] - 1
        bpx, bq, apx, aq, db, da = LT[k, 0], LT[k, 1], LT[k, 2], LT[k, 3], LT[k, 4], LT[k, 5]
    LOG[L, L_TYPE] = LG_BOOK
    LOG[L, L_T] = t
    LOG[L, 2] = bpx
    LOG[L, 3] = bq
    LOG[L, 4] = apx
    LOG[L, 5] = aq
    LOG[L, 6] = db
    LOG[L, 7] = da


@njit(cache=True)
def _log_answer(S, LOG, RQ, LT, lbid, lask, lst, FAR):
    r = S[S_RQ_HEAD]
    S[S_RQ_HEAD] = r + 1
    L = S[S_LOG_N]
    S[S_LOG_N] = L + 1
    LOG[L, L_TYPE] = LG_ANSWER
    LOG[L, L_T] = RQ[r, R_DUE]
    for c in range(R_KIND, R_W):
        LOG[L, c] = RQ[r, c]
    bpx, bq, apx, aq = _local_top(S, LT, lbid, lask, lst, FAR)
    LOG[L, 16] = bpx
    LOG[L, 17] = bq
    LOG[L, 18] = apx
    LOG[L, 19] = aq


@njit(cache=True)
def _exchange_step(ev, V, S, P, ORD, ORDF, LV, RS, TK, EQ, RQ, WK, xbid, xask, xst, FAR, FLOG, no_ix, no_lv):
    """Pop the entry link's first item; the venue advances to its time, then places or cancels."""
    h = S[S_EQ_HEAD]
    S[S_EQ_HEAD] = h + 1
    S[S_PEND] = PEND_ADVANCE
    S[S_PEND_TARGET] = EQ[h, 0]
    S[S_PEND_ACTION] = ACT_EXSTEP
    S[S_PEND_KIND] = EQ[h, 2]
    S[S_PEND_SLOT] = EQ[h, 3]
    S[S_PEND_T] = EQ[h, 0]
    st = _advance(ev, V, S, P, ORD, ORDF, LV, RS, TK, RQ, WK, xbid, xask, xst, FAR, FLOG, no_ix, no_lv, EQ[h, 0])
    if st:
        return st
    st = _exchange_op(ev, S, ORD, ORDF, LV, RS, TK, RQ, WK, xbid, xask, xst, FAR, FLOG, no_ix, no_lv)
    if st:
        return st
    S[S_PEND] = 0
    return 0


@njit(cache=True)
def run_nb(ev, V, FD, LT, xbid, xask, xst, lbid, lask, lst, FAR, FLOG, S, P, ORD, ORDF, LV, RS, TK, EQ, RQ,
           LOG, WK):
    """Run the engine's loop until Python must act (see the module docstring); returns a RUN_* status.

    Parameters
    ----------
    ev : the recording (:data:`~workbench.types.event_dt`).
    V : :func:`prepare_nb`'s merged order. FD : int64[3, k] the feed's messages (first row, one past the last
        row, arrival time in local ns).
    LT : with ``S[S_LOCAL_PRE]``, :func:`local_tops_nb`'s reads of the local book after each feed message, and the
        local book's arrays are left alone (the compiled path: nothing else reads them during the run).
    xbid, xask, xst / lbid, lask, lst : the exchange / local book's arrays (:class:`~workbench.book.L2Book`).
    FAR, FLOG : overflow levels of both books, best first (rows: exchange bids, asks, local bids, asks), and the
        log of their changes the driver replays into the books' facades.
    S, P : state and float parameters. ORD, ORDF : orders. LV, RS, TK : users' levels, resting orders, taken levels.
    EQ, RQ : the entry and answer links. LOG : what Python replays. WK : scratch rows (walk, sorting).
    """
    no_ix = np.zeros(0, np.int64)
    no_lv = np.zeros((0, 4, 1), np.int64)
    nf = FD.shape[1]
    # what the last return left pending
    pend = S[S_PEND]
    if pend == PEND_FEED:
        S[S_PEND] = 0
        S[S_FEED_K] = S[S_PEND_A]
        _log_book(ev, FD, S, LOG, LT, lbid, lask, lst, FAR, S[S_PEND_B])
        if S[S_STOP_AT_BOOK] != 0 or S[S_STOP_ONCE] != 0:
            return RUN_PYTHON
    elif pend == PEND_ADVANCE:
        st = _advance(ev, V, S, P, ORD, ORDF, LV, RS, TK, RQ, WK, xbid, xask, xst, FAR, FLOG, no_ix, no_lv,
                      S[S_PEND_TARGET])
        if st:
            return st
        if S[S_PEND_ACTION] == ACT_EXSTEP:
            st = _exchange_op(ev, S, ORD, ORDF, LV, RS, TK, RQ, WK, xbid, xask, xst, FAR, FLOG, no_ix, no_lv)
            if st:
                return st
        S[S_PEND] = 0
    min_resp = S[S_MIN_RESP]
    while True:
        if S[S_LOG_N] + 2 > LOG.shape[0]:
            return RUN_NEED_SPACE
        k = S[S_FEED_K]
        t_feed = FD[2, k] if k < nf else NONE
        if t_feed == NONE and S[S_ENDED] == 0:
            # the data has ended: no more timers; the exchange plays the recording to its end
            S[S_ENDED] = 1
            S[S_NEXT_TIMER] = NONE
            S[S_NEXT_MARK] = NONE
            if S[S_END_NS] > S[S_EX_NOW]:
                S[S_PEND] = PEND_ADVANCE
                S[S_PEND_TARGET] = S[S_END_NS]
                S[S_PEND_ACTION] = ACT_NONE
                st = _advance(ev, V, S, P, ORD, ORDF, LV, RS, TK, RQ, WK, xbid, xask, xst, FAR, FLOG, no_ix, no_lv,
                              S[S_END_NS])
                if st:
                    return st
                S[S_PEND] = 0
        t_local = t_feed
        nt = S[S_NEXT_TIMER]
        nm = S[S_NEXT_MARK]
        if nt != NONE and S[S_STRAT_ON] != 0 and nt < t_local:
            t_local = nt
        if nm != NONE and nm < t_local:
            t_local = nm
        t_heap, from_entry = _heap_top(S, EQ, RQ)
        if t_local == NONE and t_heap == NONE:
            return RUN_DONE
        if t_heap != NONE and from_entry and (t_local == NONE or t_heap + min_resp <= t_local):
            st = _exchange_step(ev, V, S, P, ORD, ORDF, LV, RS, TK, EQ, RQ, WK, xbid, xask, xst, FAR, FLOG, no_ix,
                                no_lv)
            if st:
                return st
            continue
        # what the exchange did until t_local - min response may reach the strategy by t_local
        if t_local != NONE and t_local - min_resp > S[S_EX_NOW]:
            S[S_PEND] = PEND_ADVANCE
            S[S_PEND_TARGET] = t_local - min_resp
            S[S_PEND_ACTION] = ACT_NONE
            st = _advance(ev, V, S, P, ORD, ORDF, LV, RS, TK, RQ, WK, xbid, xask, xst, FAR, FLOG, no_ix, no_lv,
                          t_local - min_resp)
            if st:
                return st
            S[S_PEND] = 0
        t_heap, from_entry = _heap_top(S, EQ, RQ)
        if t_heap != NONE and (t_local == NONE or t_heap <= t_local):
            if from_entry:
                st = _exchange_step(ev, V, S, P, ORD, ORDF, LV, RS, TK, EQ, RQ, WK, xbid, xask, xst, FAR, FLOG,
                                    no_ix, no_lv)
                if st:
                    return st
                continue
            _log_answer(S, LOG, RQ, LT, lbid, lask, lst, FAR)
            if S[S_STOP_AT_ANSWER] != 0 or S[S_STOP_ONCE] != 0:
                return RUN_PYTHON
            continue
        if t_local == NONE:
            continue
        if t_local == nm:
            S[S_NEXT_MARK] = nm + S[S_MARK_NS]
            L = S[S_LOG_N]
            S[S_LOG_N] = L + 1
            LOG[L, L_TYPE] = LG_MARK
            LOG[L, L_T] = t_local
            LOG[L, 2] = 1 if (nt != NONE and nt == t_local and (S[S_STRAT_ON] != 0 or t_feed == t_local)) else 0
            return RUN_PYTHON
        if t_local == nt:
            S[S_NEXT_TIMER] = nt + S[S_TIMER_NS]
            L = S[S_LOG_N]
            S[S_LOG_N] = L + 1
            LOG[L, L_TYPE] = LG_TIMER
            LOG[L, L_T] = t_local
            return RUN_PYTHON
        # feed messages: every one arriving before the next other event, in one block
        bound = I64_MAX
        if nt != NONE and nt < bound:
            bound = nt
        if nm != NONE and nm < bound:
            bound = nm
        if t_heap != NONE and t_heap < bound:
            bound = t_heap
        until = bound - 1 if bound != I64_MAX else I64_MAX
        if until < t_local:
            until = t_local
        j = k + 1
        while S[S_PER_MSG] == 0 and j < nf and FD[2, j] <= until:
            j += 1
        if S[S_LOCAL_PRE] != 0:
            S[S_FEED_K] = j
            _log_book(ev, FD, S, LOG, LT, lbid, lask, lst, FAR, t_local)
            if S[S_STOP_AT_BOOK] != 0 or S[S_STOP_ONCE] != 0:
                return RUN_PYTHON
            continue
        r = _apply_rows(ev, FD[0, k], FD[1, j - 1], lbid, lask, lst, FAR, FLOG, S, 2, no_ix, no_lv)
        if r >= 0:
            S[S_PEND] = PEND_FEED
            S[S_PEND_A] = j
            S[S_PEND_B] = t_local
            S[S_NB_BOOK] = 1
            S[S_NB_START] = r
            S[S_NB_END] = FD[1, j - 1]
            return RUN_NEED_BOOK
        S[S_FEED_K] = j
        _log_book(ev, FD, S, LOG, LT, lbid, lask, lst, FAR, t_local)
        if S[S_STOP_AT_BOOK] != 0 or S[S_STOP_ONCE] != 0:
            return RUN_PYTHON


# =====================================================================================================================
# the compiled runner: the strategy, the risk guard and the order state machine in the kernel too
# =====================================================================================================================
# :func:`run_compiled_nb` is Backtest._loop_fast with everything it does in Python done here: it calls run_nb and
# replays its log as _loop_fast does (the guard's kernels of workbench.risk.nb for RiskGuard, the strategy's kernel
# for its callbacks, the order state machine of workbench.strategy.orders on arrays), so that Python is needed only
# for the books' facades (RUN_NEED_BOOK / RUN_NEED_SPACE, passed on) and to grow buffers (RUN_GROW). Results are
# logged in arrays (fills, marks, orders, the guard's events) and turned into frames once, at the end
# (workbench.backtest.compiled).
# Two traps of numba's on-disk cache met here: a cached kernel holds its callees as they were compiled, so after
# editing workbench/risk/nb.py or workbench/strategy/nb.py delete the __pycache__/*.nbi and *.nbc files of this
# module (else the old callees run); and functions calling each other recursively load from the cache broken (a
# segfault on the second process): none of these does.
RUN_GROW = 10       # a buffer of the runner is short: the driver grows them all and calls again
RUN_ERR_PAST = 11   # the kernel ran past a book update or an answer that sent an order (a bug: _loop_fast raises)
RUN_BAIL = 12       # the guard's kernels left their exact range: run this backtest on another path

# C: the runner's state
C_NOW = 0            # env.now_ns
C_POS = 1            # position, lots
C_CASH = 2           # cash moved by fills, notional units
C_FEE = 3
C_N_ORDERS = 4       # orders submitted (slots used)
C_N_OPEN = 5         # open orders, OPEN[:n] in submission order
C_N_DEF = 6          # deferred guard actions, DEF[:n]
C_N_FILLS = 7
C_N_MARKS = 8
C_N_PUSHED = 9
C_ENTRY_LAST = 10    # the entry link's last due time
C_ENTRY_NS = 11      # order-entry latency
C_TIMER_NS = 12
C_IN_LOG = 13        # 1: the log of the last run_nb call is being replayed, from entry C_LOG_I
C_LOG_I = 14
C_LAST_CODE = 15     # what that call returned
C_DECISIONS = 16     # counters, as Backtest.counters
C_ORDERS_SENT = 17
C_ORDERS_REFUSED = 18
C_CANCELS_SENT = 19
C_GUARD_ORDERS = 20
C_REPORTS = 21
C_STRATEGY = 22      # the strategy's kernel (workbench.strategy.market_making.STRAT_MM)
C_DONE = 23
C_SIZE = 32
# CF: floats
CF_INITIAL_CASH = 0
CF_UNIT = 1          # quote currency per notional unit
CF_LAST_MID = 2      # ticks; NaN: None
CF_SIZE = 4
# OS: the local order state machine, one row per order (slot)
OS_STATE, OS_FILLED, OS_QUOTE, OS_FEE, OS_OID, OS_CREATED, OS_UPDATED, OS_REASON, OS_TAG = 0, 1, 2, 3, 4, 5, 6, 7, 8
OS_SIDE, OS_TYPE, OS_TIF, OS_QTY, OS_PX = 9, 10, 11, 12, 13
OS_W = 14
# OrderState values, and their ranks (workbench.strategy.orders._RANK)
OST_PENDING_NEW, OST_NEW, OST_PARTIAL, OST_PENDING_CANCEL = 0, 1, 2, 7
# tags
TAG_NONE, TAG_BID, TAG_ASK, TAG_GUARD = 0, 1, 2, 3
# FL: fills (t, exchange ts, side, px, qty, commission, is_maker, slot, order id, tag); FLF: the local mid (NaN: None)
FL_T, FL_TS, FL_SIDE, FL_PX, FL_QTY, FL_COMM, FL_MAKER, FL_SLOT, FL_OID, FL_TAG = range(10)
FL_W = 10
# MKL: marks (t, position); MKF: (equity, cash, mid; NaN: None)
# strategy kernels
STRAT_MM = 1


@njit(cache=True)
def _st_terminal(st):
    return st == ST_FILLED or st == ST_CANCELED or st == ST_REJECTED or st == ST_EXPIRED


@njit(cache=True)
def _st_rank(st):
    if st == OST_PENDING_NEW:
        return 0
    if st == OST_NEW:
        return 1
    if st == OST_PARTIAL or st == OST_PENDING_CANCEL:
        return 2
    return 9


@njit(cache=True)
def _os_set(C, OS, OPEN, o, state, ts):
    """OrderBook._set."""
    OS[o, OS_STATE] = state
    if ts > OS[o, OS_UPDATED]:
        OS[o, OS_UPDATED] = ts
    if _st_terminal(state):
        n = C[C_N_OPEN]
        for k in range(n):
            if OPEN[k] == o:
                for m in range(k, n - 1):
                    OPEN[m] = OPEN[m + 1]
                C[C_N_OPEN] = n - 1
                break


@njit(cache=True)
def _os_apply(C, OS, OPEN, o, state, ts, filled, quote, fee, oid, reason):
    """OrderBook.apply (``filled`` < 0: not given); returns whether anything changed."""
    changed = False
    if oid != 0 and OS[o, OS_OID] == 0:
        OS[o, OS_OID] = oid
        changed = True
    if filled >= 0 and filled > OS[o, OS_FILLED]:
        OS[o, OS_FILLED] = filled
        OS[o, OS_QUOTE] = quote
        changed = True
    if fee != 0:
        OS[o, OS_FEE] += fee
        changed = True
    if reason != 0 and OS[o, OS_REASON] == 0:
        OS[o, OS_REASON] = reason
    cur = OS[o, OS_STATE]
    if not _st_terminal(cur):
        new = state
        if new == OST_NEW and OS[o, OS_FILLED] != 0:
            new = OST_PARTIAL
        if _st_terminal(new) or _st_rank(new) > _st_rank(cur):
            _os_set(C, OS, OPEN, o, new, ts)
            changed = True
    if changed and ts > OS[o, OS_UPDATED]:
        OS[o, OS_UPDATED] = ts
    return changed


@njit(cache=True)
def _rt_push_entry(C, S, EQ, kind, slot):
    """FastMarket._push_entry (the driver made room before the log entry)."""
    due = C[C_NOW] + C[C_ENTRY_NS]
    if due < C[C_ENTRY_LAST]:
        due = C[C_ENTRY_LAST]
    C[C_ENTRY_LAST] = due
    seq = S[S_SEQ] + 1
    S[S_SEQ] = seq
    tail = S[S_EQ_TAIL]
    EQ[tail, 0] = due
    EQ[tail, 1] = seq
    EQ[tail, 2] = kind
    EQ[tail, 3] = slot
    S[S_EQ_TAIL] = tail + 1
    C[C_N_PUSHED] += 1


@njit(cache=True)
def _rt_cancel(C, S, OS, OPEN, EQ, o):
    """Backtest._cancel: OrderBook.cancel_sent, then the cancel goes out."""
    isopen = False
    for k in range(C[C_N_OPEN]):
        if OPEN[k] == o:
            isopen = True
            break
    if not isopen or OS[o, OS_STATE] == OST_PENDING_CANCEL:
        return False
    _os_set(C, OS, OPEN, o, OST_PENDING_CANCEL, C[C_NOW])
    C[C_CANCELS_SENT] += 1
    _rt_push_entry(C, S, EQ, EX_CANCEL, o)
    return True


@njit(cache=True)
def _rt_defer(C, DEF, G, ACT):
    """Backtest._drain_guard(act=False): the guard's actions wait for the next drain that acts."""
    n = G[risk_nb.G_ACT_N]
    for k in range(n):
        DEF[C[C_N_DEF] + k] = ACT[k]
    C[C_N_DEF] += n
    G[risk_nb.G_ACT_N] = 0


@njit(cache=True)
def _rt_send(C, S, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, side, typ, qty, px, tif, tag, from_guard):
    """Backtest._send: the guard's verdict, then OrderBook.submit and the order goes out. Returns the slot or -1."""
    now = C[C_NOW]
    ok, q = risk_nb.guard_check_order_nb(G, EV, EVF, ACT, now, side, qty, from_guard)
    _rt_defer(C, DEF, G, ACT)
    if not ok or q <= 0:
        C[C_ORDERS_REFUSED] += 1
        return -1
    o = C[C_N_ORDERS]
    C[C_N_ORDERS] = o + 1
    OS[o, OS_STATE] = OST_PENDING_NEW
    OS[o, OS_FILLED] = 0
    OS[o, OS_QUOTE] = 0
    OS[o, OS_FEE] = 0
    OS[o, OS_OID] = 0
    OS[o, OS_CREATED] = now
    OS[o, OS_UPDATED] = now
    OS[o, OS_REASON] = 0
    OS[o, OS_TAG] = tag
    OS[o, OS_SIDE] = side
    OS[o, OS_TYPE] = typ
    OS[o, OS_TIF] = tif
    OS[o, OS_QTY] = q
    OS[o, OS_PX] = px
    OPEN[C[C_N_OPEN]] = o
    C[C_N_OPEN] += 1
    if from_guard:
        C[C_GUARD_ORDERS] += 1
    else:
        C[C_ORDERS_SENT] += 1
    ORD[o, O_SIDE] = side
    ORD[o, O_TYPE] = typ
    ORD[o, O_TIF] = tif
    ORD[o, O_QTY] = q
    ORD[o, O_PX] = px
    _rt_push_entry(C, S, EQ, EX_PLACE, o)
    return o


@njit(cache=True)
def _rt_drain(C, S, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, act):
    """Backtest._drain_guard: the guard's actions, deferred while an order is checked, carried out at the next drain
    that acts (events need no draining: they stay in the guard's log, in order). Not recursive (numba's cache
    cannot hold recursive functions: it loads them broken): orders it sends defer with :func:`_rt_defer`."""
    if not act:
        _rt_defer(C, DEF, G, ACT)
        return
    n = G[risk_nb.G_ACT_N]
    nd = C[C_N_DEF]
    if n == 0 and nd == 0:
        return
    todo = np.empty(nd + n, np.int64)
    for k in range(nd):
        todo[k] = DEF[k]
    for k in range(n):
        todo[nd + k] = ACT[k]
    C[C_N_DEF] = 0
    G[risk_nb.G_ACT_N] = 0
    for a in todo:
        if a != risk_nb.A_CANCEL_ALL and a != risk_nb.A_FLATTEN:
            continue  # DISABLE_KEY: a backtest signs nothing
        m = C[C_N_OPEN]
        snap = OPEN[:m].copy()
        for o in snap:
            if OS[o, OS_TAG] != TAG_GUARD:
                _rt_cancel(C, S, OS, OPEN, EQ, o)
        if a == risk_nb.A_FLATTEN:
            in_flight = 0
            for k in range(C[C_N_OPEN]):
                o = OPEN[k]
                if OS[o, OS_TAG] == TAG_GUARD:
                    in_flight += OS[o, OS_SIDE] * (OS[o, OS_QTY] - OS[o, OS_FILLED])
            need = -(C[C_POS] + in_flight)
            if need != 0:
                _rt_send(C, S, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, 1 if need > 0 else -1, T_MARKET, abs(need), 0,
                         TIF_IOC, TAG_GUARD, True)


@njit(cache=True)
def _rt_decide(C, S, SP, SPF, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, XS, LT, lbid, lask, lst, FAR):
    """The strategy's decision (on_timer): its kernel on the local book, the position and the open orders."""
    bpx, bq, apx, aq = _local_top(S, LT, lbid, lask, lst, FAR)
    bid = bpx if bq != 0 else NONE
    ask = apx if aq != 0 else NONE
    n = C[C_N_OPEN]
    for k in range(n):
        o = OPEN[k]
        XS[0, k] = OS[o, OS_SIDE]
        XS[1, k] = OS[o, OS_PX]
        XS[2, k] = OS[o, OS_STATE]
    snap = OPEN[:n].copy()
    q = SP[0]
    send_bid, px_bid, send_ask, px_ask = strat_nb.mm_decide_nb(bid, ask, C[C_POS], q, SP[1], SPF[0], SP[2], XS[0],
                                                               XS[1], XS[2], n, XS[3])
    for k in range(n):
        if XS[3, k] != 0:
            _rt_cancel(C, S, OS, OPEN, EQ, snap[k])
    if send_bid:
        _rt_send(C, S, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, 1, T_MAKER, q, px_bid, TIF_GTC, TAG_BID, False)
    if send_ask:
        _rt_send(C, S, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, -1, T_MAKER, q, px_ask, TIF_GTC, TAG_ASK, False)


@njit(cache=True)
def _rt_timer(C, S, SP, SPF, OS, OPEN, EQ, ORD, DEF, G, GF, EV, EVF, ACT, XS, LT, lbid, lask, lst, FAR, t):
    """Backtest._timer."""
    C[C_DECISIONS] += 1
    risk_nb.guard_tick_nb(G, GF, EV, EVF, ACT, t)
    _rt_drain(C, S, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, True)
    _rt_decide(C, S, SP, SPF, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, XS, LT, lbid, lask, lst, FAR)


@njit(cache=True)
def _rt_mark(C, CF, S, OS, OPEN, EQ, ORD, DEF, G, GF, GMK, EV, EVF, ACT, MKL, MKF):
    """Backtest._mark for one symbol: equity at the local mid, the guard's equity rules, a row of the curve."""
    t = C[C_NOW]
    mid = CF[CF_LAST_MID]
    m = 0.0 if math.isnan(mid) else mid
    eq = CF[CF_INITIAL_CASH] + (C[C_CASH] + C[C_POS] * m) * CF[CF_UNIT]
    risk_nb.guard_on_mark_nb(G, GF, GMK, EV, EVF, ACT, t, np.int64(np.rint(eq * 1e6)))
    risk_nb.guard_tick_nb(G, GF, EV, EVF, ACT, t)
    _rt_drain(C, S, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, True)
    k = C[C_N_MARKS]
    C[C_N_MARKS] = k + 1
    MKL[k, 0] = t
    MKL[k, 1] = C[C_POS]
    MKF[k, 0] = eq
    MKF[k, 1] = CF[CF_INITIAL_CASH] + (0 + C[C_CASH] * CF[CF_UNIT])
    MKF[k, 2] = mid


@njit(cache=True)
def _rt_room(C, S, OS, EQ, FL, MKL, EV, DEF):
    """Room for one log entry's worth of orders, fills, marks and events; False: the driver must grow."""
    if C[C_N_ORDERS] + 8 > OS.shape[0] or C[C_N_FILLS] + 2 > FL.shape[0] or C[C_N_MARKS] + 2 > MKL.shape[0]:
        return False
    if C[C_N_DEF] + 32 > DEF.shape[0]:
        return False
    if S[S_EQ_TAIL] + 8 > EQ.shape[0]:
        head = S[S_EQ_HEAD]
        tail = S[S_EQ_TAIL]
        live = tail - head
        if (live + 8) * 2 > EQ.shape[0]:
            return False
        for k in range(live):
            for c in range(4):
                EQ[k, c] = EQ[head + k, c]
        S[S_EQ_HEAD] = 0
        S[S_EQ_TAIL] = live
    return True


@njit(cache=True)
def run_compiled_nb(ev, V, FD, LT, xbid, xask, xst, lbid, lask, lst, FAR, FLOG, S, P, ORD, ORDF, LV, RS, TK, EQ, RQ,
                    LOG, WK, C, CF, SP, SPF, OS, OPEN, DEF, XS, FL, FLF, MKL, MKF, G, GF, GMK, SM, GORD, EV, EVF, ACT):
    """Run the whole backtest (see "the compiled runner" above) until it ends (RUN_DONE) or needs the driver
    (RUN_NEED_BOOK / RUN_NEED_SPACE: as from :func:`run_nb`; RUN_GROW; RUN_ERR_PAST; RUN_BAIL). Resumable: call
    again after doing what the status asks."""
    while True:
        if C[C_IN_LOG] != 0:
            n = S[S_LOG_N]
            i = C[C_LOG_I]
            while i < n:
                if not _rt_room(C, S, OS, EQ, FL, MKL, EV, DEF) or G[risk_nb.G_EV_N] + 16 > EV.shape[0]:
                    C[C_LOG_I] = i
                    return RUN_GROW
                typ = LOG[i, L_TYPE]
                t = LOG[i, L_T]
                if t > C[C_NOW]:
                    C[C_NOW] = t
                pushed = C[C_N_PUSHED]
                if typ == LG_BOOK:
                    bid = LOG[i, 2] if LOG[i, 3] != 0 else NONE
                    ask = LOG[i, 4] if LOG[i, 5] != 0 else NONE
                    if bid != NONE and ask != NONE:
                        CF[CF_LAST_MID] = (bid + ask) / 2
                    risk_nb.guard_on_book_nb(G, GF, SM, GORD, EV, EVF, ACT, t, bid, ask, LOG[i, 6], LOG[i, 7])
                    _rt_drain(C, S, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, True)
                    if S[S_PER_MSG] != 0 and LOG[i, 8] == 0:  # Backtest._loop: on_book after a book message
                        if C[C_TIMER_NS] == 0:
                            C[C_DECISIONS] += 1
                        _rt_decide(C, S, SP, SPF, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, XS, LT, lbid, lask, lst,
                                   FAR)
                    if i < n - 1 and C[C_N_PUSHED] != pushed:
                        return RUN_ERR_PAST
                elif typ == LG_ANSWER:
                    kind = LOG[i, 2]
                    o = LOG[i, 3]
                    C[C_REPORTS] += 1 if kind == ANS_REPORT else 0
                    if kind == ANS_REPORT:
                        has_fill = LOG[i, 8] != 0
                        comm = LOG[i, 12] if has_fill else 0
                        changed = _os_apply(C, OS, OPEN, o, LOG[i, 4], t, LOG[i, 5], LOG[i, 6], comm, LOG[i, 7], 0)
                        if has_fill:
                            side = LOG[i, 9]
                            px = LOG[i, 10]
                            qty = LOG[i, 11]
                            C[C_POS] += side * qty
                            C[C_CASH] -= side * px * qty + comm
                            C[C_FEE] += comm
                            k = C[C_N_FILLS]
                            C[C_N_FILLS] = k + 1
                            FL[k, FL_T] = t
                            FL[k, FL_TS] = LOG[i, 14]
                            FL[k, FL_SIDE] = side
                            FL[k, FL_PX] = px
                            FL[k, FL_QTY] = qty
                            FL[k, FL_COMM] = comm
                            FL[k, FL_MAKER] = LOG[i, 13]
                            FL[k, FL_SLOT] = o
                            FL[k, FL_OID] = LOG[i, 7]
                            FL[k, FL_TAG] = OS[o, OS_TAG] if changed else TAG_NONE
                            FLF[k] = (LOG[i, 16] + LOG[i, 18]) / 2 if LOG[i, 17] != 0 and LOG[i, 19] != 0 else np.nan
                            risk_nb.guard_on_fill_nb(G, EV, EVF, ACT, t, side, px, qty)
                            _rt_drain(C, S, OS, OPEN, EQ, ORD, DEF, G, EV, EVF, ACT, True)
                    elif kind == ANS_REJECT:
                        _os_apply(C, OS, OPEN, o, ST_REJECTED, t, -1, 0, 0, 0, LOG[i, 15])
                    else:
                        # OrderBook.cancel_rejected
                        isopen = False
                        for k in range(C[C_N_OPEN]):
                            if OPEN[k] == o:
                                isopen = True
                                break
                        if isopen and OS[o, OS_STATE] == OST_PENDING_CANCEL:
                            if OS[o, OS_FILLED] != 0:
                                back = OST_PARTIAL
                            elif OS[o, OS_OID] != 0:
                                back = OST_NEW
                            else:
                                back = OST_PENDING_NEW
                            _os_set(C, OS, OPEN, o, back, t)
                    if i < n - 1 and C[C_N_PUSHED] != pushed:
                        return RUN_ERR_PAST
                elif typ == LG_MARK:
                    _rt_mark(C, CF, S, OS, OPEN, EQ, ORD, DEF, G, GF, GMK, EV, EVF, ACT, MKL, MKF)
                    if LOG[i, 2] != 0 and (C[C_ENTRY_NS] > 0 or C[C_N_PUSHED] == pushed):
                        S[S_NEXT_TIMER] += C[C_TIMER_NS]
                        _rt_timer(C, S, SP, SPF, OS, OPEN, EQ, ORD, DEF, G, GF, EV, EVF, ACT, XS, LT, lbid, lask,
                                  lst, FAR, t)
                else:
                    _rt_timer(C, S, SP, SPF, OS, OPEN, EQ, ORD, DEF, G, GF, EV, EVF, ACT, XS, LT, lbid, lask, lst,
                              FAR, t)
                if G[risk_nb.G_BAIL] != 0:
                    return RUN_BAIL
                i += 1
            C[C_LOG_I] = i
            S[S_LOG_N] = 0
            C[C_IN_LOG] = 0
            code = C[C_LAST_CODE]
            if code == RUN_DONE:
                # the end: Backtest._loop_fast after its loop (on_stop is the strategy's no-op), the last mark
                _rt_mark(C, CF, S, OS, OPEN, EQ, ORD, DEF, G, GF, GMK, EV, EVF, ACT, MKL, MKF)
                C[C_DONE] = 1
                return RUN_DONE if G[risk_nb.G_BAIL] == 0 else RUN_BAIL
            if code != RUN_PYTHON:
                return code
        S[S_STOP_ONCE] = 1 if C[C_N_DEF] > 0 else 0
        S[S_FLOG_N] = 0  # the driver reads the overflow levels from FAR, not from their log
        code = run_nb(ev, V, FD, LT, xbid, xask, xst, lbid, lask, lst, FAR, FLOG, S, P, ORD, ORDF, LV, RS, TK, EQ, RQ,
                      LOG, WK)
        C[C_LAST_CODE] = code
        C[C_IN_LOG] = 1
        C[C_LOG_I] = 0
