"""Numba kernels of the synthetic order flow: a private random stream, a multivariate Hawkes process with an
exponential kernel, a latent reference price, and the order commands they produce (rows of
:data:`workbench.venue.nb.cmd_dt`). The model itself is described in :mod:`workbench.venue.synthetic`.

The flow is a function of time only: nothing here reads the book. Orders are priced relative to the best quote of
their own side (``F_REL_PX``) or absolutely around the reference; cancellations name their order by client-id
handle (scheduled at placement from an exponential lifetime, or a quote withdrawn when the reference moves through
it) or by a random position in a provider's open list (``OP_CANCEL_NTH``); a command for an order that has left the
book meanwhile is simply rejected by the engine. So the commands, and therefore the market, do not depend on how a
span of time is cut into calls: the generator stops *before* an event it has no room for and resumes there.

State (owned by :class:`workbench.venue.synthetic._Flow`, one set per symbol)
-----------------------------------------------------------------------------
``rng`` (uint64[1])
    The splitmix64 state (Steele, Lea and Flood 2014; the seeder of the xoshiro generators): one private stream per
    symbol, so two venues or two symbols never share draws and numba's global ``np.random`` is never touched.
``fs`` (float64[FS_SIZE])
    The excess intensities ``x_i`` (events/s above the base rate) of the event types at time ``IS_T``.
``ist`` (int64[IS_SIZE])
    Time of the last Hawkes event and of the next one (drawn already), the client-id counter, the heap sizes, the
    reference price.
``life``, ``bids``, ``asks`` (int64[cap, 3]: key, client-id handle, expiry)
    Binary min-heaps: the scheduled cancellations keyed by time; the resting quotes around the reference, bids
    keyed by minus their price, asks by their price (what a reference move withdraws is at the root).
``par`` (float64[P_SIZE]), ``ipar`` (int64[IP_SIZE])
    Parameters, written once by the Python layer from a :class:`~workbench.venue.synthetic.SyntheticConfig`.

Times inside are *flow* times (int64 ns); a command's ``ts_ns`` is flow time + ``shift_ns`` (the venue's clock may
skip a long idle gap without generating it).

The Hawkes process (event types ``E_*``): ``lambda_i(t) = mu_i + x_i(t)``, every ``x_i`` decaying at the common
rate ``beta``; an event of type ``j`` adds ``beta * n * (w * [i == j] + (1 - w) * r_i / R)`` to each ``x_i`` (``n``
the branching ratio, ``w`` the share of offspring of the parent's own type, ``r_i`` the target mean rates, ``R``
their sum), and ``mu_i = (1 - n) r_i`` keeps the mean rates at ``r_i`` for any ``n < 1``. With one decay rate the
total excess decays as one exponential, so the next event of the superposition is drawn exactly (Dassios and Zhao
2013: the earlier of an exponential baseline arrival and the inverse of the decaying excess), and its type is ``i``
with probability ``lambda_i / sum(lambda)``: no thinning, no rejection.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from workbench.venue import nb

__all__ = [
    "E_LIMIT_BUY",
    "E_LIMIT_SELL",
    "E_MARKET_BUY",
    "E_MARKET_SELL",
    "E_CANCEL_BID",
    "E_CANCEL_ASK",
    "E_REFERENCE",
    "N_TYPES",
    "GEN_DONE",
    "GEN_CMDS_FULL",
    "GEN_LIFE_FULL",
    "GEN_BIDS_FULL",
    "GEN_ASKS_FULL",
    "NEVER_NS",
    "REQUOTE_LEVELS",
    "splitmix64_nb",
    "uniform_nb",
    "start_nb",
    "generate_nb",
]

# event types of the Hawkes process
E_LIMIT_BUY = 0
E_LIMIT_SELL = 1
E_MARKET_BUY = 2
E_MARKET_SELL = 3
E_CANCEL_BID = 4   # OP_CANCEL_NTH on the bid provider's open orders
E_CANCEL_ASK = 5
E_REFERENCE = 6    # the reference price jumps; its market makers withdraw quotes it moved through and re-quote
N_TYPES = 7

# return statuses of generate_nb
GEN_DONE = 0        # every event up to ``until`` is written
GEN_CMDS_FULL = 1   # the command buffer is full; call again (with an emptied or larger buffer)
GEN_LIFE_FULL = 2   # the heap of scheduled cancellations is full: grow it, call again
GEN_BIDS_FULL = 3   # the heap of resting reference-priced bids is full: compact or grow it, call again
GEN_ASKS_FULL = 4   # the same for asks

NEVER_NS = np.int64(1) << np.int64(62)
REQUOTE_LEVELS = 4  # quotes per side after a reference jump: one at the new touch, the others behind it

# float state
FS_X = 0                 # FS_X + i: excess intensity of type i (1/s) at time IS_T
FS_SIZE = N_TYPES

# int state
IS_T = 0          # flow time of the last Hawkes event (ns)
IS_TNEXT = 1      # flow time of the next Hawkes event (ns), drawn already
IS_CID = 2        # client-id counter
IS_LIFE_N = 3     # entries of the heap of scheduled cancellations
IS_BIDS_N = 4     # entries of the heap of reference-priced bids
IS_ASKS_N = 5     # entries of the heap of reference-priced asks
IS_REF = 6        # the reference price (ticks): its quotes are bids at IS_REF - d and asks at IS_REF + 1 + d
IS_SIZE = 7

# float parameters
P_MU = 0                            # P_MU + i: base rate of type i (1/s)
P_EXC = P_MU + N_TYPES              # P_EXC + i: what any event adds to x_i (1/s)
P_EXC_SELF = P_EXC + N_TYPES        # what an event adds to its own type's x on top (1/s)
P_BETA = P_EXC_SELF + 1             # decay rate of the excitation (1/s)
P_JUMP_Q = P_BETA + 1               # reference jumps are 1 + geometric(P_JUMP_Q) ticks, up or down
P_QUOTE = P_JUMP_Q + 1              # share of limit orders priced around the reference
P_QUOTE_Q = P_QUOTE + 1             # geometric continuation probability of their distance (ticks) from it
P_DEEP = P_QUOTE_Q + 1              # share of limit orders resting deep around the reference
P_DEEP_A = P_DEEP + 1               # tail exponent of their distance from it
P_DEEP_TRUNC = P_DEEP_A + 1         # 1 - (largest distance, ticks) ** -(P_DEEP_A - 1)
P_IMPROVE = P_DEEP_TRUNC + 1        # share of the relative limit orders that improve their side's best quote
P_IMPROVE_Q = P_IMPROVE + 1         # geometric continuation probability of the improvement beyond one tick
P_JOIN = P_IMPROVE_Q + 1            # share of the rest that join the best quote (distance 0)
P_BEHIND_A = P_JOIN + 1             # tail exponent of the distance behind the best (Pareto, x_min = 1 tick)
P_BEHIND_TRUNC = P_BEHIND_A + 1     # 1 - (largest distance behind the best, ticks) ** -(P_BEHIND_A - 1)
P_LIMIT_MED = P_BEHIND_TRUNC + 1    # limit order size: median (lots) and log-normal sigma
P_LIMIT_SIG = P_LIMIT_MED + 1
P_MARKET_MED = P_LIMIT_SIG + 1      # market order size: median (lots) and log-normal sigma
P_MARKET_SIG = P_MARKET_MED + 1
P_DEEP_LIFE_S = P_MARKET_SIG + 1    # mean lifetime of a deep order before its owner cancels it (s)
P_QUOTE_LIFE_S = P_DEEP_LIFE_S + 1  # the same for quotes and relative orders
P_MIN_NOTIONAL = P_QUOTE_LIFE_S + 1 # smallest order notional the flow sends (ticks x lots)
P_SIZE = P_MIN_NOTIONAL + 1

# int parameters
IP_SYM = 0          # symbol index in the matching engine
IP_BID_ACCT = 1     # account index of the bid liquidity provider
IP_ASK_ACCT = 2     # account index of the ask liquidity provider
IP_TAKER_ACCT = 3   # account index of the market-order flow
IP_CID_BASE = 4     # client-id handles are IP_CID_BASE + 2 * counter + (1 for an ask)
IP_MIN_LOTS = 5
IP_MAX_LOTS = 6
IP_SWEEP_LOTS = 7   # the most an arbitrageur takes at a jump of the reference
IP_SIZE = 8

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_S2 = np.uint64(2)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True, inline="always")
def splitmix64_nb(rng):
    """The next 64 random bits of the stream ``rng[0]`` (uint64)."""
    s = rng[0] + _GOLDEN
    rng[0] = s
    z = (s ^ (s >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def uniform_nb(rng):
    """A uniform draw in (0, 1]: 53 random bits, never 0, so ``log`` of it is finite."""
    return ((splitmix64_nb(rng) >> _S11) + 1) * _INV53


@njit(cache=True, inline="always")
def _normal(rng):
    # Box-Muller, one value per pair of draws (no cached second value: less state to carry across calls)
    return math.sqrt(-2.0 * math.log(uniform_nb(rng))) * math.cos(2.0 * math.pi * uniform_nb(rng))


@njit(cache=True, inline="always")
def _geometric(rng, q):
    """Failures before the first success, success probability ``1 - q`` (mean ``q / (1 - q)``)."""
    if q <= 0.0:
        return np.int64(0)
    return np.int64(math.floor(math.log(uniform_nb(rng)) / math.log(q)))


@njit(cache=True, inline="always")
def _pareto(rng, a, trunc):
    """A distance in ticks, Pareto with tail exponent ``a`` (> 1) from 1 tick, truncated to the largest distance
    ``m`` where ``trunc = 1 - m ** -(a - 1)`` (the inverse of its distribution function)."""
    x = 1.0 - (1.0 - uniform_nb(rng)) * trunc
    return np.int64(math.floor(math.pow(x, -1.0 / (a - 1.0))))


@njit(cache=True, inline="always")
def _lognormal_lots(rng, median, sigma, floor_lots, max_lots):
    q = np.int64(round(median * math.exp(sigma * _normal(rng))))
    if q < floor_lots:
        q = floor_lots
    if q > max_lots:
        q = max_lots
    return q


@njit(cache=True, inline="always")
def _next_dt_s(rng, mu_tot, excess, beta):
    """Waiting time (s) to the next event of a Hawkes superposition with base rate ``mu_tot`` and an excess
    ``excess`` decaying at ``beta`` (exact; ``inf`` when nothing can happen)."""
    u1 = uniform_nb(rng)
    u2 = uniform_nb(rng)
    s1 = -math.log(u1) / mu_tot if mu_tot > 0.0 else math.inf
    s2 = math.inf
    if excess > 1e-300 and beta > 0.0:
        d = 1.0 + beta * math.log(u2) / excess
        if d > 0.0:
            s2 = -math.log(d) / beta
    return min(s1, s2)


@njit(cache=True, inline="always")
def _to_ns(t_ns, dt_s):
    if not dt_s < 4.0e9:  # inf, or beyond a century: never
        return NEVER_NS
    return t_ns + np.int64(math.ceil(dt_s * 1e9))


@njit(cache=True)
def start_nb(rng, fs, ist, par, t0_ns):
    """Start the flow at flow time ``t0_ns`` with no excitation: draw the first event time."""
    mu_tot = 0.0
    for i in range(N_TYPES):
        fs[FS_X + i] = 0.0
        mu_tot += par[P_MU + i]
    ist[IS_T] = t0_ns
    ist[IS_TNEXT] = _to_ns(t0_ns, _next_dt_s(rng, mu_tot, 0.0, par[P_BETA]))


@njit(cache=True, inline="always")
def _heap_push(h, n, key, cid, exp):
    """Push (key, cid, exp) on the min-heap ``h[:n]`` (room is checked by the caller). Rows are ordered by (key,
    cid): a total order, so what pops first never depends on the heap's layout (the Python layer compacts it)."""
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if h[p, 0] < key or (h[p, 0] == key and h[p, 1] < cid):
            break
        h[i, 0] = h[p, 0]
        h[i, 1] = h[p, 1]
        h[i, 2] = h[p, 2]
        i = p
    h[i, 0] = key
    h[i, 1] = cid
    h[i, 2] = exp


@njit(cache=True, inline="always")
def _heap_pop(h, n):
    """Remove the root of the min-heap ``h[:n]`` (the caller read it first)."""
    n -= 1
    key = h[n, 0]
    cid = h[n, 1]
    i = 0
    while True:
        k = 2 * i + 1
        if k >= n:
            break
        if k + 1 < n and (h[k + 1, 0] < h[k, 0] or (h[k + 1, 0] == h[k, 0] and h[k + 1, 1] < h[k, 1])):
            k += 1
        if key < h[k, 0] or (key == h[k, 0] and cid < h[k, 1]):
            break
        h[i, 0] = h[k, 0]
        h[i, 1] = h[k, 1]
        h[i, 2] = h[k, 2]
        i = k
    if n > 0:
        exp = h[n, 2]
        h[i, 0] = key
        h[i, 1] = cid
        h[i, 2] = exp


@njit(cache=True, inline="always")
def _cmd(r, op, flags, side, otype, tif, s, a, px, qty, cid, nth, ts):
    r["op"] = op
    r["flags"] = flags
    r["side"] = side
    r["type"] = otype
    r["tif"] = tif
    r["sym"] = s
    r["account"] = a
    r["px"] = px
    r["qty"] = qty
    r["order_id"] = 0
    r["cid"] = cid
    r["nth"] = nth
    r["ts_ns"] = ts


@njit(cache=True, inline="always")
def _quote(cmds, n, life, ln, heap, hn, side, px, qty, cid, expiry, s, acct, ts):
    """A quote around the reference: a plain LIMIT (it takes what a lagging book still offers through its price),
    remembered for its withdrawal (``heap``: bids keyed by minus their price, asks by their price) and its
    lifetime (``life``)."""
    _heap_push(life, ln, expiry, cid, expiry)
    _heap_push(heap, hn, -px if side > 0 else px, cid, expiry)
    _cmd(cmds[n], nb.OP_PLACE, 0, side, nb.T_LIMIT, nb.TIF_GTC, s, acct, px, qty, cid, 0, ts)


@njit(cache=True)
def generate_nb(rng, fs, ist, par, ipar, life, bids, asks, until_ns, shift_ns, cmds, n0):
    """Write the commands of every event with flow time ``<= until_ns`` to ``cmds[n0:]``, in time order.

    ``life``, ``bids``, ``asks`` are the three heaps (rows: key, client-id handle, expiry): scheduled cancellations
    keyed by time; the resting quotes around the reference, bids keyed by minus their price and asks by their price.

    Returns ``(n, status)``: ``n`` the rows of ``cmds`` in use, ``status`` ``GEN_DONE`` or the reason it stopped
    before the next event (``GEN_CMDS_FULL``, ``GEN_*_FULL``); nothing of that event is consumed, so calling again
    with room resumes exactly there. Order at equal times: scheduled cancellations first, then the event.
    """
    n = n0
    cap = cmds.shape[0]
    s = ipar[IP_SYM]
    beta = par[P_BETA]
    mu_tot = 0.0
    for i in range(N_TYPES):
        mu_tot += par[P_MU + i]
    ln = ist[IS_LIFE_N]
    bn = ist[IS_BIDS_N]
    an = ist[IS_ASKS_N]
    bid_acct = ipar[IP_BID_ACCT]
    ask_acct = ipar[IP_ASK_ACCT]
    status = GEN_DONE
    while True:
        t_ev = ist[IS_TNEXT]
        t_cx = life[0, 0] if ln > 0 else NEVER_NS
        if t_cx <= t_ev:
            if t_cx > until_ns:
                break
            if n >= cap:
                status = GEN_CMDS_FULL
                break
            c = life[0, 1]
            _heap_pop(life, ln)
            ln -= 1
            _cmd(cmds[n], nb.OP_CANCEL, 0, 0, 0, 0, s, ask_acct if c & 1 else bid_acct, 0, 0, c, 0, t_cx + shift_ns)
            n += 1
            continue
        if t_ev > until_ns:
            break
        # room for the worst case (a reference jump: every quote withdrawn, a sweep and the new quotes)
        if n + bn + an + 1 + 2 * REQUOTE_LEVELS > cap:
            status = GEN_CMDS_FULL
            break
        if ln + 2 * REQUOTE_LEVELS > life.shape[0]:
            status = GEN_LIFE_FULL
            break
        if bn + REQUOTE_LEVELS > bids.shape[0]:
            status = GEN_BIDS_FULL
            break
        if an + REQUOTE_LEVELS > asks.shape[0]:
            status = GEN_ASKS_FULL
            break
        ts = t_ev + shift_ns
        # the event at t_ev: decay the excitation to it, pick its type
        decay = math.exp(-beta * (t_ev - ist[IS_T]) * 1e-9)
        lam_tot = 0.0
        for i in range(N_TYPES):
            fs[FS_X + i] *= decay
            lam_tot += par[P_MU + i] + fs[FS_X + i]
        u = uniform_nb(rng) * lam_tot
        e = N_TYPES - 1
        acc = 0.0
        for i in range(N_TYPES):
            acc += par[P_MU + i] + fs[FS_X + i]
            if u <= acc:
                e = i
                break
        ref = ist[IS_REF]
        # orders smaller than the NOTIONAL filter would be rejected: the floor follows the reference price
        floor_lots = max(ipar[IP_MIN_LOTS], np.int64(math.ceil(par[P_MIN_NOTIONAL] / max(ref, 1))))
        if e == E_LIMIT_BUY or e == E_LIMIT_SELL:
            side = 1 if e == E_LIMIT_BUY else -1
            acct = bid_acct if side > 0 else ask_acct
            qty = _lognormal_lots(rng, par[P_LIMIT_MED], par[P_LIMIT_SIG], floor_lots, ipar[IP_MAX_LOTS])
            cid = ipar[IP_CID_BASE] + 2 * ist[IS_CID] + (0 if side > 0 else 1)
            ist[IS_CID] += 1
            u = uniform_nb(rng)
            if u < par[P_QUOTE] + par[P_DEEP]:
                # around the reference: a bid at ref - d, an ask at ref + 1 + d; a quote near it (geometric d, short
                # life) or a deep order (truncated Pareto d, long life), both withdrawn when the reference passes
                if u < par[P_QUOTE]:
                    d = _geometric(rng, par[P_QUOTE_Q])
                    life_mean_s = par[P_QUOTE_LIFE_S]
                else:
                    d = _pareto(rng, par[P_DEEP_A], par[P_DEEP_TRUNC])
                    life_mean_s = par[P_DEEP_LIFE_S]
                expiry = _to_ns(t_ev, -math.log(uniform_nb(rng)) * life_mean_s)
                if side > 0:
                    _quote(cmds, n, life, ln, bids, bn, 1, ref - d, qty, cid, expiry, s, acct, ts)
                    bn += 1
                else:
                    _quote(cmds, n, life, ln, asks, an, -1, ref + 1 + d, qty, cid, expiry, s, acct, ts)
                    an += 1
                ln += 1
            else:
                # relative to the best of its own side; post-only, so an improvement that would cross is rejected
                if uniform_nb(rng) < par[P_IMPROVE]:
                    d = -1 - _geometric(rng, par[P_IMPROVE_Q])  # 1, 2, ... ticks inside the spread
                elif uniform_nb(rng) < par[P_JOIN]:
                    d = np.int64(0)
                else:
                    d = _pareto(rng, par[P_BEHIND_A], par[P_BEHIND_TRUNC])
                # the owner's own clock: it cancels the order after an exponential lifetime, if it still rests
                expiry = _to_ns(t_ev, -math.log(uniform_nb(rng)) * par[P_QUOTE_LIFE_S])
                _heap_push(life, ln, expiry, cid, expiry)
                ln += 1
                _cmd(cmds[n], nb.OP_PLACE, nb.F_REL_PX, side, nb.T_LIMIT_MAKER, nb.TIF_GTC, s, acct, -side * d, qty,
                     cid, 0, ts)
            n += 1
        elif e == E_MARKET_BUY or e == E_MARKET_SELL:
            side = 1 if e == E_MARKET_BUY else -1
            qty = _lognormal_lots(rng, par[P_MARKET_MED], par[P_MARKET_SIG], floor_lots, ipar[IP_MAX_LOTS])
            _cmd(cmds[n], nb.OP_PLACE, 0, side, nb.T_MARKET, nb.TIF_IOC, s, ipar[IP_TAKER_ACCT], 0, qty, 0, 0, ts)
            n += 1
        elif e == E_CANCEL_BID or e == E_CANCEL_ASK:
            acct = bid_acct if e == E_CANCEL_BID else ask_acct
            nth = np.int64(splitmix64_nb(rng) >> _S2)
            _cmd(cmds[n], nb.OP_CANCEL_NTH, 0, 0, 0, 0, s, acct, 0, 0, 0, nth, ts)
            n += 1
        else:
            # the reference jumps. Its market makers withdraw the quotes it moved through (a bid above it, an ask
            # at or below it; those whose lifetime ended are gone already), an arbitrageur takes the other orders
            # left on the wrong side of it (an IOC limit at the new touch, up to IP_SWEEP_LOTS: it trades only with
            # stale orders and never rests), and the makers quote the new touch.
            k = 1 + _geometric(rng, par[P_JUMP_Q])
            up = uniform_nb(rng) < 0.5
            ref = ref + k if up else max(ref - k, 2)
            ist[IS_REF] = ref
            while bn > 0 and -bids[0, 0] > ref:
                c = bids[0, 1]
                alive = bids[0, 2] > t_ev
                _heap_pop(bids, bn)
                bn -= 1
                if alive:
                    _cmd(cmds[n], nb.OP_CANCEL, 0, 0, 0, 0, s, bid_acct, 0, 0, c, 0, ts)
                    n += 1
            while an > 0 and asks[0, 0] <= ref:
                c = asks[0, 1]
                alive = asks[0, 2] > t_ev
                _heap_pop(asks, an)
                an -= 1
                if alive:
                    _cmd(cmds[n], nb.OP_CANCEL, 0, 0, 0, 0, s, ask_acct, 0, 0, c, 0, ts)
                    n += 1
            _cmd(cmds[n], nb.OP_PLACE, 0, 1 if up else -1, nb.T_LIMIT, nb.TIF_IOC, s, ipar[IP_TAKER_ACCT],
                 ref if up else ref + 1, ipar[IP_SWEEP_LOTS], 0, 0, ts)
            n += 1
            for side in (1, -1):
                for j in range(REQUOTE_LEVELS):
                    d = np.int64(0) if j == 0 else _geometric(rng, par[P_QUOTE_Q])
                    qty = _lognormal_lots(rng, par[P_LIMIT_MED], par[P_LIMIT_SIG], floor_lots, ipar[IP_MAX_LOTS])
                    cid = ipar[IP_CID_BASE] + 2 * ist[IS_CID] + (0 if side > 0 else 1)
                    ist[IS_CID] += 1
                    expiry = _to_ns(t_ev, -math.log(uniform_nb(rng)) * par[P_QUOTE_LIFE_S])
                    if side > 0:
                        _quote(cmds, n, life, ln, bids, bn, 1, ref - d, qty, cid, expiry, s, bid_acct, ts)
                        bn += 1
                    else:
                        _quote(cmds, n, life, ln, asks, an, -1, ref + 1 + d, qty, cid, expiry, s, ask_acct, ts)
                        an += 1
                    ln += 1
                    n += 1
        # the event excites every type (and its own more), then the next event time is drawn
        excess = 0.0
        for i in range(N_TYPES):
            fs[FS_X + i] += par[P_EXC + i]
            excess += fs[FS_X + i]
        fs[FS_X + e] += par[P_EXC_SELF]
        excess += par[P_EXC_SELF]
        ist[IS_T] = t_ev
        ist[IS_TNEXT] = _to_ns(t_ev, _next_dt_s(rng, mu_tot, excess, beta))
    ist[IS_LIFE_N] = ln
    ist[IS_BIDS_N] = bn
    ist[IS_ASKS_N] = an
    return n, status
