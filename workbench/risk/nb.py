"""Kernels of the risk guard: :class:`~workbench.risk.guard.RiskGuard`'s rules for one symbol, on a state vector.

The backtester's compiled path (:mod:`workbench.backtest.compiled`) runs the guard inside its kernel with these
functions: :func:`guard_on_book_nb`, :func:`guard_on_fill_nb`, :func:`guard_on_mark_nb`, :func:`guard_tick_nb` and
:func:`guard_check_order_nb` are the methods of the same names, statement for statement, for a guard of one symbol
that never sees ``on_rate`` (a backtest has no API limits), ``kill``, ``resume`` or ``set_position``. They are held
equal to the Python guard by ``tests/risk/test_guard_nb.py`` (hypothesis: random sequences of books, fills, marks,
ticks and orders through both, the same verdicts, events and actions).

What the Python guard writes as text is logged here as numbers (``EV``: one row per :class:`RiskEvent`, a reason
code and its arguments); :func:`workbench.risk.compiled.events_from_log` writes the same reasons, values and
thresholds from them with the guard's own formatters. Actions go to ``ACT`` (kinds of
:class:`~workbench.risk.guard.ActionKind`), in order.

Exactness: the Python guard keeps the average entry as an exact ratio of unbounded integers and compares floats
made from integers; here they are int64 and float64, equal while the integers stay below 2**53. A kernel that would
leave that range sets ``G[G_BAIL]`` and the caller runs the Python guard instead (the compiled backtest then runs on
its fast path). Without a trade stop the average entry is not kept at all (no rule reads it).

Conventions: ticks, lots, quote notional units (tick x lot), int64 ns; ``NONE`` (int64 min) is None.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "guard_state", "guard_on_book_nb", "guard_on_fill_nb", "guard_on_mark_nb", "guard_tick_nb",
    "guard_check_order_nb",
]

NONE = np.iinfo(np.int64).min
DAY_NS = 86_400_000_000_000
HOUR_NS = 3_600_000_000_000
SECOND_NS = 1_000_000_000
EXACT = 1 << 53          # integers below this are exact as float64

# rules (index into workbench.risk.guard.RULES, then RESUME, INVALID)
RU_TRADE_STOP, RU_DAILY_DRAWDOWN, RU_HOURLY_LOSS, RU_SPREAD, RU_STALE, RU_CONCENTRATION, RU_API_RATE, RU_KILL = range(8)
RU_NONE = -1
# states (GuardState)
ACTIVE, REDUCING, HALTED = 0, 1, 2
# actions (ActionKind)
A_CANCEL_ALL, A_FLATTEN, A_DISABLE_KEY = 1, 2, 3

# reasons: EV[:, E_CODE]; arguments in EV[:, E_A:]
RS_STALE, RS_FRESH, RS_ONE_SIDED, RS_WIDEN, RS_NARROW, RS_STOP, RS_RESIZED, RS_REJECTED, RS_DD, RS_HOUR = range(10)
E_TS, E_RULE, E_FROM, E_TO, E_CODE, E_A, E_B, E_C, E_D, E_E, E_F = range(11)
E_W = 12
# EVF: float arguments (a spread's median)
EF_MED = 0
EF_W = 1

# G: the state vector
G_STATE = 0
G_N_PAUSED = 1
G_HALT_RULE = 2
G_DD_TRIPPED = 3
G_HOUR_TRIPPED = 4
G_EQUITY = 5          # NONE: no mark yet
G_DAY = 6             # NONE: no day yet
G_PEAK = 7            # NONE: no peak
G_MARK_SEC = 8        # NONE
G_MK_HEAD = 9         # marks ring MK[2, cap]: (ts, equity), head..tail (absolute counters; index % cap)
G_MK_TAIL = 10
G_POS = 11
G_NUM = 12
G_DEN = 13
G_STOP_PX = 14        # NONE: no stop armed
G_STOPPED = 15
G_BID = 16            # NONE: empty side
G_ASK = 17
G_BID_DEPTH = 18
G_ASK_DEPTH = 19
G_LAST_BOOK = 20      # NONE: never a book
G_SEEN = 21           # NONE
G_STALE = 22
G_WIDE = 23
G_SPREAD = 24         # NONE
G_HAS_MEDIAN = 25
G_NEXT_SAMPLE = 26
G_SM_HEAD = 27        # spread samples ring SM[2, cap]: (ts, spread)
G_SM_TAIL = 28
G_N_ORD = 29          # the same spreads sorted in ORD[:n]
G_EV_N = 30
G_ACT_N = 31
G_BAIL = 32           # a kernel left the exact range (or a buffer): the caller must not trust this guard
# config
G_STALE_NS = 40
G_WINDOW_NS = 41
G_SAMPLE_NS = 42
G_MIN_SAMPLES = 43
G_CAP_NUM = 44
G_CAP_DEN = 45
G_RESIZE = 46
G_STOP = 47           # NONE: no trade stop
G_SIZE = 48
# GF: floats
GF_X = 0
GF_DEPTH_FRAC = 1
GF_DD_LIM = 2
GF_HOUR_LIM = 3
GF_MEDIAN = 4
GF_DD = 5
GF_HOUR_LOSS = 6
GF_SIZE = 8


def guard_state(config, n_events: int = 4096, n_actions: int = 256):
    """Fresh arrays of a guard with ``config`` (:class:`~workbench.risk.RiskConfig`) for one symbol that was
    registered at the start (``RiskGuard(config, (symbol,))``): ``(G, GF, MK, SM, ORD, EV, EVF, ACT)``.

    Raises ValueError when the config cannot be run here (the caller takes the Python guard): a spread sampled on
    every update (its window has no bound), or a depth fraction whose ratio is too large for int64 arithmetic.
    """
    from fractions import Fraction

    if config.spread_sample_ns <= 0:
        raise ValueError("spread_sample_ns=0: the spread window has no bound")
    num, den = Fraction(repr(float(config.max_depth_frac))).as_integer_ratio()
    if num >= 1 << 31 or den >= 1 << 31:
        raise ValueError(f"max_depth_frac={config.max_depth_frac!r}: its ratio {num}/{den} is too large")
    G = np.zeros(G_SIZE, np.int64)
    for k in (G_EQUITY, G_DAY, G_PEAK, G_MARK_SEC, G_STOP_PX, G_BID, G_ASK, G_LAST_BOOK, G_SEEN, G_SPREAD):
        G[k] = NONE
    G[G_HALT_RULE] = RU_NONE
    G[G_DEN] = 1
    G[G_NEXT_SAMPLE] = -(2**63)
    G[G_STALE_NS] = config.stale_after_ns
    G[G_WINDOW_NS] = config.spread_window_ns
    G[G_SAMPLE_NS] = config.spread_sample_ns
    G[G_MIN_SAMPLES] = config.spread_min_samples
    G[G_CAP_NUM] = num
    G[G_CAP_DEN] = den
    G[G_RESIZE] = config.concentration_action == "resize"
    G[G_STOP] = NONE if config.trade_stop_ticks is None else config.trade_stop_ticks
    GF = np.zeros(GF_SIZE, np.float64)
    GF[GF_X] = float(config.spread_widen_x)
    GF[GF_DEPTH_FRAC] = float(config.max_depth_frac)
    GF[GF_DD_LIM] = config.max_daily_drawdown_frac
    GF[GF_HOUR_LIM] = config.max_hourly_loss_frac
    n_samples = -(-config.spread_window_ns // config.spread_sample_ns) + 2
    MK = np.zeros((2, 4096), np.int64)  # one mark a second over an hour: at most 3601
    SM = np.zeros((2, n_samples), np.int64)
    ORD = np.zeros(n_samples, np.int64)
    EV = np.zeros((n_events, E_W), np.int64)
    EVF = np.zeros((n_events, EF_W), np.float64)
    ACT = np.zeros(n_actions, np.int64)
    return G, GF, MK, SM, ORD, EV, EVF, ACT


# -- internals ------------------------------------------------------------------------------------------------------
@njit(cache=True)
def _event(G, EV, EVF, ts, rule, code, a, b, c, d, e, f, med):
    """RiskGuard._transition: the state from the halt and the pauses, and the event."""
    old = G[G_STATE]
    if G[G_HALT_RULE] != RU_NONE:
        new = HALTED
    elif G[G_N_PAUSED] != 0:
        new = REDUCING
    else:
        new = ACTIVE
    G[G_STATE] = new
    n = G[G_EV_N]
    if n >= EV.shape[0]:
        G[G_BAIL] = 1
        return
    G[G_EV_N] = n + 1
    EV[n, E_TS] = ts
    EV[n, E_RULE] = rule
    EV[n, E_FROM] = old
    EV[n, E_TO] = new
    EV[n, E_CODE] = code
    EV[n, E_A] = a
    EV[n, E_B] = b
    EV[n, E_C] = c
    EV[n, E_D] = d
    EV[n, E_E] = e
    EV[n, E_F] = f
    EVF[n, EF_MED] = med


@njit(cache=True)
def _action(G, ACT, kind):
    n = G[G_ACT_N]
    if n >= ACT.shape[0]:
        G[G_BAIL] = 1
        return
    ACT[n] = kind
    G[G_ACT_N] = n + 1


@njit(cache=True)
def _halt(G, EV, EVF, ACT, ts, rule, code, a, b, c, disable_key):
    first = G[G_HALT_RULE] == RU_NONE
    if first:
        G[G_HALT_RULE] = rule
    _event(G, EV, EVF, ts, rule, code, a, b, c, 0, 0, 0, 0.0)
    if first or rule == RU_KILL:
        _action(G, ACT, A_CANCEL_ALL)
        _action(G, ACT, A_FLATTEN)
    if disable_key:
        _action(G, ACT, A_DISABLE_KEY)


@njit(cache=True)
def _roll_day(G, GF, day):
    G[G_DAY] = day
    G[G_PEAK] = G[G_EQUITY]
    GF[GF_DD] = 0.0


@njit(cache=True)
def _go_stale(G, EV, EVF, ACT, ts, ref):
    G[G_STALE] = 1
    G[G_N_PAUSED] += 1
    _action(G, ACT, A_CANCEL_ALL)
    _event(G, EV, EVF, ts, RU_STALE, RS_STALE, 1 if G[G_LAST_BOOK] != NONE else 0, ts - ref, G[G_STALE_NS], 0, 0, 0,
           0.0)


@njit(cache=True)
def _fresh(G, EV, EVF, ts):
    G[G_STALE] = 0
    G[G_N_PAUSED] -= 1
    ref = G[G_LAST_BOOK] if G[G_LAST_BOOK] != NONE else G[G_SEEN]
    age = ts - ref if ref != NONE else 0
    _event(G, EV, EVF, ts, RU_STALE, RS_FRESH, age, G[G_STALE_NS], 0, 0, 0, 0, 0.0)


@njit(cache=True)
def _sample(G, GF, SM, ORD, ts, sp):
    G[G_NEXT_SAMPLE] = ts + G[G_SAMPLE_NS]
    cap = SM.shape[1]
    cutoff = ts - G[G_WINDOW_NS]
    n = G[G_N_ORD]
    while G[G_SM_HEAD] < G[G_SM_TAIL] and SM[0, G[G_SM_HEAD] % cap] <= cutoff:
        old = SM[1, G[G_SM_HEAD] % cap]
        G[G_SM_HEAD] += 1
        lo = 0
        hi = n
        while lo < hi:  # bisect_left
            mid = (lo + hi) >> 1
            if ORD[mid] < old:
                lo = mid + 1
            else:
                hi = mid
        for k in range(lo, n - 1):
            ORD[k] = ORD[k + 1]
        n -= 1
    if G[G_SM_TAIL] - G[G_SM_HEAD] >= cap:
        G[G_BAIL] = 1
        return
    j = G[G_SM_TAIL] % cap
    SM[0, j] = ts
    SM[1, j] = sp
    G[G_SM_TAIL] += 1
    lo = 0
    hi = n
    while lo < hi:  # insort (bisect_right)
        mid = (lo + hi) >> 1
        if sp < ORD[mid]:
            hi = mid
        else:
            lo = mid + 1
    for k in range(n, lo, -1):
        ORD[k] = ORD[k - 1]
    ORD[lo] = sp
    n += 1
    G[G_N_ORD] = n
    if n >= G[G_MIN_SAMPLES]:
        h = n >> 1
        G[G_HAS_MEDIAN] = 1
        GF[GF_MEDIAN] = float(ORD[h]) if n & 1 else (ORD[h - 1] + ORD[h]) / 2
    else:
        G[G_HAS_MEDIAN] = 0


@njit(cache=True)
def _widen(G, GF, EV, EVF, ts):
    G[G_WIDE] = 1
    G[G_N_PAUSED] += 1
    if G[G_SPREAD] == NONE:
        _event(G, EV, EVF, ts, RU_SPREAD, RS_ONE_SIDED, G[G_BID], G[G_ASK], 0, 0, 0, 0, 0.0)
    else:
        _event(G, EV, EVF, ts, RU_SPREAD, RS_WIDEN, G[G_SPREAD], 0, 0, 0, 0, 0, GF[GF_MEDIAN])


@njit(cache=True)
def _narrow(G, GF, EV, EVF, ts):
    G[G_WIDE] = 0
    G[G_N_PAUSED] -= 1
    _event(G, EV, EVF, ts, RU_SPREAD, RS_NARROW, G[G_SPREAD], G[G_HAS_MEDIAN], 0, 0, 0, 0, GF[GF_MEDIAN])


@njit(cache=True)
def _floordiv(a, b):
    return a // b  # numba's // on int64 floors, as Python's


@njit(cache=True)
def _arm_stop(G):
    stop = G[G_STOP]
    pos = G[G_POS]
    if stop == NONE or pos == 0:
        G[G_STOP_PX] = NONE
    elif pos > 0:
        G[G_STOP_PX] = _floordiv(G[G_NUM] - stop * G[G_DEN], G[G_DEN])
    else:
        G[G_STOP_PX] = -_floordiv(-G[G_NUM] - stop * G[G_DEN], G[G_DEN])


@njit(cache=True)
def _check_stop(G, EV, EVF, ACT, ts):
    pos = G[G_POS]
    if pos > 0:
        px = G[G_BID]
        if px == NONE or px > G[G_STOP_PX]:
            return
    else:
        px = G[G_ASK]
        if px == NONE or px < G[G_STOP_PX]:
            return
    G[G_STOPPED] = 1
    _action(G, ACT, A_CANCEL_ALL)
    _action(G, ACT, A_FLATTEN)
    _event(G, EV, EVF, ts, RU_TRADE_STOP, RS_STOP, pos, px, G[G_NUM], G[G_DEN], G[G_STOP], 0, 0.0)


# -- the methods ----------------------------------------------------------------------------------------------------
@njit(cache=True)
def guard_on_book_nb(G, GF, SM, ORD, EV, EVF, ACT, ts, bid, ask, bid_depth, ask_depth):
    """:meth:`RiskGuard.on_book` (depths as totals; ``bid``/``ask`` NONE for an empty side)."""
    G[G_BID] = bid
    G[G_ASK] = ask
    G[G_BID_DEPTH] = bid_depth
    G[G_ASK_DEPTH] = ask_depth
    if G[G_STALE] != 0:
        _fresh(G, EV, EVF, ts)
    G[G_LAST_BOOK] = ts
    if bid == NONE or ask == NONE:
        G[G_SPREAD] = NONE
        if G[G_WIDE] == 0:
            _widen(G, GF, EV, EVF, ts)
    else:
        sp = ask - bid
        if sp > 0:
            G[G_SPREAD] = sp
            if ts >= G[G_NEXT_SAMPLE]:
                _sample(G, GF, SM, ORD, ts, sp)
            widened = G[G_HAS_MEDIAN] != 0 and sp > GF[GF_X] * GF[GF_MEDIAN]
            if widened != (G[G_WIDE] != 0):
                if G[G_WIDE] != 0:
                    _narrow(G, GF, EV, EVF, ts)
                else:
                    _widen(G, GF, EV, EVF, ts)
    if G[G_STOP_PX] != NONE and G[G_STOPPED] == 0:
        _check_stop(G, EV, EVF, ACT, ts)


@njit(cache=True)
def guard_on_fill_nb(G, EV, EVF, ACT, ts, side, px, qty):
    """:meth:`RiskGuard.on_fill`: position and exact average entry (``G[G_NUM] / G[G_DEN]``), the trade stop."""
    pos = G[G_POS]
    new = pos + qty if side > 0 else pos - qty
    if G[G_STOP] == NONE:
        # without a trade stop nothing reads the average entry (the Python guard keeps it for display): its ratio,
        # which grows without bound over a long position's partial fills, is not kept here
        G[G_POS] = new
        return
    if pos == 0 or (pos > 0) == (side > 0):
        a = pos if pos > 0 else -pos
        den0 = G[G_DEN]
        # exact while every product stays below 2**53 (then float64 agrees with Python's integers, too)
        if abs(G[G_NUM]) >= EXACT // max(a, 1) or abs(px) * qty >= EXACT // den0 or den0 >= EXACT // (a + qty):
            G[G_BAIL] = 1
            return
        num = G[G_NUM] * a + px * qty * den0
        den = den0 * (a + qty)
        if abs(num) >= EXACT:
            G[G_BAIL] = 1
            return
        g = math.gcd(num, den) if num != 0 else den
        if g < 0:
            g = -g
        G[G_NUM] = num // g
        G[G_DEN] = den // g
    elif new == 0 or (new > 0) != (pos > 0):
        G[G_NUM] = px
        G[G_DEN] = 1
        G[G_STOPPED] = 0
    G[G_POS] = new
    _arm_stop(G)
    if G[G_STOP_PX] != NONE and G[G_STOPPED] == 0:
        _check_stop(G, EV, EVF, ACT, ts)


@njit(cache=True)
def guard_on_mark_nb(G, GF, MK, EV, EVF, ACT, ts, eq):
    """:meth:`RiskGuard.on_mark`: equity in quote notional units; the drawdown and hourly-loss rules."""
    day = ts // DAY_NS
    if G[G_DAY] == NONE or day > G[G_DAY]:
        _roll_day(G, GF, day)
    if abs(eq) >= EXACT:
        G[G_BAIL] = 1
        return
    G[G_EQUITY] = eq
    if G[G_PEAK] == NONE or eq > G[G_PEAK]:
        G[G_PEAK] = eq
    sec = ts // SECOND_NS
    cap = MK.shape[1]
    if sec != G[G_MARK_SEC]:
        G[G_MARK_SEC] = sec
        if G[G_MK_TAIL] - G[G_MK_HEAD] >= cap:
            G[G_BAIL] = 1
            return
        j = G[G_MK_TAIL] % cap
        MK[0, j] = ts
        MK[1, j] = eq
        G[G_MK_TAIL] += 1
    cutoff = ts - HOUR_NS
    while G[G_MK_TAIL] - G[G_MK_HEAD] > 1 and MK[0, G[G_MK_HEAD] % cap] <= cutoff:
        G[G_MK_HEAD] += 1
    peak = G[G_PEAK]
    if peak > 0:
        dd = (peak - eq) / peak
        GF[GF_DD] = dd
        if dd >= GF[GF_DD_LIM] and G[G_DD_TRIPPED] == 0:
            G[G_DD_TRIPPED] = 1
            _halt(G, EV, EVF, ACT, ts, RU_DAILY_DRAWDOWN, RS_DD, peak, eq, 0, False)
    h = G[G_MK_HEAD] % cap
    ref_ns = MK[0, h]
    ref = MK[1, h]
    if ref > 0:
        loss = (ref - eq) / ref
        GF[GF_HOUR_LOSS] = loss
        if loss >= GF[GF_HOUR_LIM] and G[G_HOUR_TRIPPED] == 0:
            G[G_HOUR_TRIPPED] = 1
            _halt(G, EV, EVF, ACT, ts, RU_HOURLY_LOSS, RS_HOUR, ref, eq, ts - ref_ns, True)


@njit(cache=True)
def guard_tick_nb(G, GF, EV, EVF, ACT, ts):
    """:meth:`RiskGuard.tick`: the day roll and the stale-book rule."""
    day = ts // DAY_NS
    if G[G_DAY] == NONE or day > G[G_DAY]:
        _roll_day(G, GF, day)
    if G[G_STALE] != 0:
        return
    ref = G[G_LAST_BOOK]
    if ref == NONE:
        if G[G_SEEN] == NONE:
            G[G_SEEN] = ts
            return
        ref = G[G_SEEN]
    if ts - ref > G[G_STALE_NS]:
        _go_stale(G, EV, EVF, ACT, ts, ref)


@njit(cache=True)
def guard_check_order_nb(G, EV, EVF, ACT, ts, side, qty, from_guard):
    """:meth:`RiskGuard.check_order` for a well-formed order (side +-1, qty > 0): returns (allowed, qty_lots)."""
    last = G[G_LAST_BOOK]
    if last != NONE and G[G_STALE] == 0 and ts - last > G[G_STALE_NS]:
        _go_stale(G, EV, EVF, ACT, ts, last)
    pos = G[G_POS]
    if (side < 0 < pos and qty <= pos) or (pos < 0 < side and qty <= -pos):
        if G[G_HALT_RULE] == RU_NONE or from_guard:
            return True, qty
        return False, 0
    if G[G_HALT_RULE] != RU_NONE:
        return False, 0
    if from_guard:
        return False, 0
    if G[G_N_PAUSED] != 0:
        return False, 0
    if G[G_STOPPED] != 0:
        return False, 0
    if last == NONE:
        return False, 0
    depth = G[G_BID_DEPTH] if side > 0 else G[G_ASK_DEPTH]
    cap = depth * G[G_CAP_NUM] // G[G_CAP_DEN]
    room = cap - side * pos
    if qty <= room:
        return True, qty
    after = pos + side * qty
    if G[G_RESIZE] != 0 and room > 0:
        _event(G, EV, EVF, ts, RU_CONCENTRATION, RS_RESIZED, abs(after), depth, cap, qty, room, side, 0.0)
        return True, room
    _event(G, EV, EVF, ts, RU_CONCENTRATION, RS_REJECTED, abs(after), depth, cap, qty, room, side, 0.0)
    return False, 0
