"""Numba kernels of the signals: batch and streaming forms sharing one code path.

Conventions
-----------
- Every stateful signal ``foo`` has three kernels: ``foo_init_nb(...)`` returns fresh state arrays,
  ``foo_update_nb(inputs..., state..., outputs...)`` consumes one chunk, mutating the state in place and writing the
  outputs, and ``foo_nb(inputs..., params...)`` is the batch form: fresh state + one ``update`` over everything.
  Feeding a stream chunk by chunk through ``update`` therefore gives exactly (bit for bit) the batch result.
- State lives in small arrays: ``fstate`` (float64) and ``istate`` (int64) scalars, plus ring buffers sized by the
  window. Their layout is private to each kernel and written next to its ``init``.
- Prices and sizes are float64 (ticks, lots or dollars), timestamps int64 ``*_ns``, sides int8 (+1 buy/bid, -1
  sell/ask, 0 unknown, see :mod:`workbench.enums`). Windows count events unless named ``*_ns``.
- Kernels assume valid parameters and contiguous arrays of the right dtype; the friendly layer in
  :mod:`workbench.signals` converts and validates.
- Outputs are finite for finite inputs of sane magnitude (squares must not overflow): every division is guarded, and
  each kernel documents what it outputs while it warms up and when a dispersion is 0.
- Hot loops are flat: no calls to ``@njit`` helpers that take arrays inside a per-event loop (3x slower when measured
  on the book kernel: reference counting stays in the loop), and no ``fastmath`` (it slowed an EW-VWAP kernel, and
  it would let the compiler drop the NaN/zero guards these kernels rely on).
"""

from __future__ import annotations

from math import sqrt

import numpy as np
from numba import njit

__all__ = [
    "book_imbalance_init_nb",
    "book_imbalance_update_nb",
    "book_imbalance_nb",
    "microprice_nb",
    "rolling_vwap_init_nb",
    "rolling_vwap_update_nb",
    "rolling_vwap_nb",
    "bollinger_z_init_nb",
    "bollinger_z_update_nb",
    "bollinger_z_nb",
    "keltner_position_init_nb",
    "keltner_position_update_nb",
    "keltner_position_nb",
    "volume_delta_init_nb",
    "volume_delta_update_nb",
    "volume_delta_nb",
    "momentum_breakout_init_nb",
    "momentum_breakout_update_nb",
    "momentum_breakout_nb",
    "iceberg_absorption_init_nb",
    "iceberg_absorption_update_nb",
    "iceberg_absorption_nb",
    "markouts_init_nb",
    "markouts_update_nb",
    "markouts_finish_nb",
    "markouts_nb",
    "ohlc_bars_nb",
    "keltner_bars_init_nb",
    "keltner_bars_update_nb",
    "keltner_bars_nb",
]

# An ATR below this fraction of the price level is the geometric tail of an old move, not a range: doubles cannot
# even represent price differences that small, and dividing by it would blow the position up to inf.
KELTNER_ATR_FLOOR_REL = 1e-12
# Smallest normal double: variances are floored here before sqrt (see bollinger_z_update_nb).
MIN_NORMAL = 2.2250738585072014e-308
# Ratios of sizes (relative volume, absorption) are capped here: only a subnormal denominator can reach it, and an
# inf would poison every sum downstream.
RATIO_CAP = 1e300
# Events per block of the Bollinger kernel's vectorised sqrt/divide pass: fits L1 with room to spare.
BOLLINGER_BLOCK = 512


# ---------------------------------------------------------------------------------------------------------------
# 1. Order-book imbalance over the top N levels
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def book_imbalance_init_nb():
    """Fresh state: ``fstate = [ema]``, ``istate = [seeded]``."""
    return np.zeros(1), np.zeros(1, dtype=np.int64)


@njit(cache=True)
def book_imbalance_update_nb(bid_qty, ask_qty, n_levels, halflife_events, fstate, istate, out):
    """Imbalance ``(sum_bid - sum_ask) / (sum_bid + sum_ask)`` over the first ``n_levels`` columns.

    ``bid_qty``/``ask_qty`` are ``(n_rows, N)`` with level 0 the best. The raw value is 0 when both sums are 0.
    With ``halflife_events > 0`` the output is an EMA of the raw value (weight halves every ``halflife_events``
    rows), seeded with the first raw value; with 0 it is the raw value and the state is not used.
    """
    smooth = halflife_events > 0.0
    alpha = 1.0 - 0.5 ** (1.0 / halflife_events) if smooth else 1.0
    ema = fstate[0]
    seeded = istate[0]
    for i in range(bid_qty.shape[0]):
        sb = 0.0
        sa = 0.0
        for j in range(n_levels):
            sb += bid_qty[i, j]
            sa += ask_qty[i, j]
        tot = sb + sa
        raw = (sb - sa) / tot if tot > 0.0 else 0.0
        if not smooth:
            out[i] = raw
            continue
        if seeded == 0:
            ema = raw
            seeded = 1
        else:
            ema += alpha * (raw - ema)
        out[i] = ema
    fstate[0] = ema
    istate[0] = seeded


@njit(cache=True)
def book_imbalance_nb(bid_qty, ask_qty, n_levels, halflife_events):
    """Batch form of :func:`book_imbalance_update_nb`."""
    fstate, istate = book_imbalance_init_nb()
    out = np.empty(bid_qty.shape[0])
    book_imbalance_update_nb(bid_qty, ask_qty, n_levels, halflife_events, fstate, istate, out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# 2. Microprice (stateless: the streaming form is the same function)
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def microprice_nb(bid_px, bid_qty, ask_px, ask_qty):
    """Size-weighted mid ``(bid_px*ask_qty + ask_px*bid_qty) / (bid_qty + ask_qty)``; the mid when both sizes are 0.

    The price leans towards the side with *less* size: a thin ask is about to be lifted. Computed as
    ``bid_px + w * (ask_px - bid_px)`` with ``w = bid_qty / (bid_qty + ask_qty)``: the same value, but it stays
    between the two prices even for tiny (subnormal) sizes, where the products lose their digits.
    """
    n = bid_px.shape[0]
    out = np.empty(n)
    for i in range(n):
        tot = bid_qty[i] + ask_qty[i]
        if tot > 0.0:
            out[i] = bid_px[i] + (bid_qty[i] / tot) * (ask_px[i] - bid_px[i])
        else:
            out[i] = 0.5 * (bid_px[i] + ask_px[i])
    return out


# ---------------------------------------------------------------------------------------------------------------
# 3. Rolling VWAP over the last `window` trades
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def rolling_vwap_init_nb(window):
    """Fresh state: rings ``pq_buf``/``q_buf`` of ``(px - shift) * qty`` and ``qty``;
    ``fstate = [shift, sum_pq, sum_q]``, ``istate = [n_in_window, pos, started, n_nonzero_qty]``."""
    return np.zeros(window), np.zeros(window), np.zeros(3), np.zeros(4, dtype=np.int64)


@njit(cache=True)
def rolling_vwap_update_nb(px, qty, pq_buf, q_buf, fstate, istate, vwap_out, dev_out, dev_bp_out):
    """VWAP of the last ``window`` trades, ``px - vwap`` and ``1e4 * (px - vwap) / vwap`` (bp).

    Warm-up: the trades seen so far. When the window holds no quantity the VWAP is the current price (deviation 0);
    the bp deviation is 0 when the VWAP is 0. Prices are shifted by the first price seen so that ``px * qty`` keeps
    its digits, and the rolling sums are recomputed exactly each time the ring wraps so that add/remove rounding
    cannot accumulate over a long stream, and whenever a trade that held most of the window leaves it.
    """
    window = pq_buf.shape[0]
    if px.shape[0] == 0:
        return
    if istate[2] == 0:
        fstate[0] = px[0]
        istate[2] = 1
    shift = fstate[0]
    spq = fstate[1]
    sq = fstate[2]
    n = istate[0]
    pos = istate[1]
    nz = istate[3]
    for i in range(px.shape[0]):
        d = px[i] - shift
        q = qty[i]
        exact = False
        if n == window:
            old_pq = pq_buf[pos]
            old_q = q_buf[pos]
            # a trade that held most of the window leaving it: the difference keeps too few digits (1 + 1e-33 - 1
            # is 0), so the sums are taken again from the window itself
            exact = old_q > 0.5 * sq or abs(old_pq) > 0.5 * abs(spq)
            spq -= old_pq
            sq -= old_q
            if old_q != 0.0:
                nz -= 1
        else:
            n += 1
        pq = d * q
        pq_buf[pos] = pq
        q_buf[pos] = q
        spq += pq
        sq += q
        if q != 0.0:
            nz += 1
        pos += 1
        if exact and pos != window:
            spq = 0.0
            sq = 0.0
            for k in range(window):
                spq += pq_buf[k]
                sq += q_buf[k]
        if pos == window:
            pos = 0
            spq = 0.0
            sq = 0.0
            for k in range(window):
                spq += pq_buf[k]
                sq += q_buf[k]
        if nz == 0:
            # exactly empty: drop the rounding residue of the sums
            spq = 0.0
            sq = 0.0
        vw_d = spq / sq if (nz > 0 and sq != 0.0) else d
        vwap = shift + vw_d
        dev = d - vw_d
        vwap_out[i] = vwap
        dev_out[i] = dev
        # a VWAP so small that the ratio would overflow (subnormal prices) counts as 0, like an exact 0
        dev_bp_out[i] = 1e4 * dev / vwap if abs(vwap) >= 1e-300 else 0.0
    fstate[1] = spq
    fstate[2] = sq
    istate[0] = n
    istate[1] = pos
    istate[3] = nz


@njit(cache=True)
def rolling_vwap_nb(px, qty, window):
    """Batch form of :func:`rolling_vwap_update_nb`: returns ``(vwap, dev, dev_bp)``."""
    pq_buf, q_buf, fstate, istate = rolling_vwap_init_nb(window)
    n = px.shape[0]
    vwap = np.empty(n)
    dev = np.empty(n)
    dev_bp = np.empty(n)
    rolling_vwap_update_nb(px, qty, pq_buf, q_buf, fstate, istate, vwap, dev, dev_bp)
    return vwap, dev, dev_bp


# ---------------------------------------------------------------------------------------------------------------
# 4. Bollinger z-score (the performance-critical kernel)
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def bollinger_z_init_nb(window):
    """Fresh state: ring ``buf`` of shifted values (oldest at ``pos`` once full);
    ``fstate = [shift, mean, m2, prev]``, ``istate = [n_in_window, pos, run, started]``.

    ``mean``/``m2`` are the window's mean and sum of squared deviations of ``x - shift``; ``run`` counts equal
    consecutive values ending at ``prev``.
    """
    fstate = np.zeros(4)
    fstate[3] = np.nan  # no previous value: the first comparison is False
    return np.zeros(window), fstate, np.zeros(4, dtype=np.int64)


@njit(cache=True)
def bollinger_z_update_nb(x, buf, fstate, istate, out):
    """z-score ``(x - mean) / std`` over the last ``window`` events, current one included (population std).

    Warm-up: the events seen so far (the first z is 0). z is 0 when the std is 0; a window of equal values is
    detected exactly (run length) and resets mean and m2 to their exact values, so constant prices give 0, never
    noise divided by noise. A variance below the smallest normal double is treated as that value (only spreads
    near 1e-154 are affected). Numerics: values are shifted by the first value seen (prices near 60000 with a tiny
    spread keep their digits) and mean/m2 follow the add-remove form of Welford's update, which does not cancel
    the way ``sum(x^2)/n - mean^2`` does.

    Performance (this is the hot one): the same update is written out in three loops on purpose: warm-up (growing
    n); steady state while the value leaving the window sits in the ring (it came in an earlier chunk); steady
    state reading it straight from ``x``, which is where a long chunk spends its time. That last loop is blocked:
    the recurrence writes ``x - mean`` and the variance of a block, then a second loop without loop-carried state
    does sqrt and division, which LLVM vectorises (scalar sqrt + divide was the bottleneck: ~1.6x faster, measured).
    Every loop computes z with the same expression, so where a chunk boundary falls cannot change a bit.
    """
    window = buf.shape[0]
    n_x = x.shape[0]
    if n_x == 0:
        return
    if istate[3] == 0:
        fstate[0] = x[0]
        istate[3] = 1
    shift = fstate[0]
    mean = fstate[1]
    m2 = fstate[2]
    prev = fstate[3]
    n = istate[0]
    pos = istate[1]
    run = istate[2]
    i = 0
    # warm-up: Welford's add step
    while i < n_x and n < window:
        d = x[i] - shift
        buf[pos] = d
        pos += 1
        if pos == window:
            pos = 0
        n += 1
        delta = d - mean
        mean += delta / n
        m2 += delta * (d - mean)
        run = run + 1 if d == prev else 1
        prev = d
        if run >= n:
            mean = d
            m2 = 0.0
        var = m2 / n
        # max() keeps sqrt away from 0 (no division check, vectorisable); the factor zeroes var <= 0
        out[i] = ((d - mean) / sqrt(max(var, MIN_NORMAL))) * (var > 0.0)
        i += 1
    inv_n = 1.0 / window
    # steady state, leaving value from the ring
    i_ring_end = min(window, n_x)
    while i < i_ring_end:
        d = x[i] - shift
        old = buf[pos]
        buf[pos] = d
        pos += 1
        if pos == window:
            pos = 0
        delta = d - old
        mean_new = mean + delta * inv_n
        m2 += delta * ((d - mean_new) + (old - mean))
        mean = mean_new
        run = run + 1 if d == prev else 1
        prev = d
        if run >= window:
            mean = d
            m2 = 0.0
        var = m2 * inv_n
        out[i] = ((d - mean) / sqrt(max(var, MIN_NORMAL))) * (var > 0.0)
        i += 1
    # steady state, leaving value from this chunk, in blocks
    scratch = np.empty(BOLLINGER_BLOCK)
    b0 = i
    while b0 < n_x:
        b1 = min(b0 + BOLLINGER_BLOCK, n_x)
        for i in range(b0, b1):
            d = x[i] - shift
            old = x[i - window] - shift  # the same subtraction as when it entered: bit-identical to the ring value
            delta = d - old
            mean_new = mean + delta * inv_n
            m2 += delta * ((d - mean_new) + (old - mean))
            mean = mean_new
            run = run + 1 if d == prev else 1
            prev = d
            if run >= window:
                mean = d
                m2 = 0.0
            out[i] = d - mean
            scratch[i - b0] = m2 * inv_n
        ob = out[b0:b1]
        for j in range(b1 - b0):
            var = scratch[j]
            ob[j] = (ob[j] / sqrt(max(var, MIN_NORMAL))) * (var > 0.0)
        b0 = b1
    if n_x >= window:
        # the ring was bypassed: refill it with this chunk's last window values, oldest first
        for k in range(window):
            buf[k] = x[n_x - window + k] - shift
        pos = 0
    fstate[1] = mean
    fstate[2] = m2
    fstate[3] = prev
    istate[0] = n
    istate[1] = pos
    istate[2] = run


@njit(cache=True)
def bollinger_z_nb(x, window):
    """Batch form of :func:`bollinger_z_update_nb`."""
    buf, fstate, istate = bollinger_z_init_nb(window)
    out = np.empty(x.shape[0])
    bollinger_z_update_nb(x, buf, fstate, istate, out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# 5. Keltner channel position
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def keltner_position_init_nb():
    """Fresh state: ``fstate = [ema, atr, prev_x]``, ``istate = [started]``."""
    return np.zeros(3), np.zeros(1, dtype=np.int64)


@njit(cache=True)
def keltner_position_update_nb(x, alpha, alpha_atr, mult, fstate, istate, out):
    """Position in the Keltner channel ``(x - ema) / (mult * atr)``.

    ``ema`` is an EMA of x (weight ``alpha``, seeded with the first value), ``atr`` an EMA (weight ``alpha_atr``)
    of the true range ``|x_t - x_{t-1}|``, which is 0 for the first event (so the ATR is seeded with 0). Both
    include the current event. The position is 0 when ``mult * atr`` is 0 or below
    ``KELTNER_ATR_FLOOR_REL * |ema|``; the first event and constant prices therefore give 0.
    """
    ema = fstate[0]
    atr = fstate[1]
    prev = fstate[2]
    started = istate[0]
    for i in range(x.shape[0]):
        xi = x[i]
        if started == 0:
            ema = xi
            atr = 0.0
            started = 1
        else:
            ema += alpha * (xi - ema)
            atr += alpha_atr * (abs(xi - prev) - atr)
        prev = xi
        den = mult * atr
        if den > 0.0 and den > KELTNER_ATR_FLOOR_REL * abs(ema):
            out[i] = (xi - ema) / den
        else:
            out[i] = 0.0
    fstate[0] = ema
    fstate[1] = atr
    fstate[2] = prev
    istate[0] = started


@njit(cache=True)
def keltner_position_nb(x, alpha, alpha_atr, mult):
    """Batch form of :func:`keltner_position_update_nb`."""
    fstate, istate = keltner_position_init_nb()
    out = np.empty(x.shape[0])
    keltner_position_update_nb(x, alpha, alpha_atr, mult, fstate, istate, out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# 6. Volume delta (aggressor buy volume minus sell volume)
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def volume_delta_init_nb(window):
    """Fresh state: ring ``buf`` of signed quantities; ``fstate = [cum, win_sum]``, ``istate = [n_in_window, pos]``."""
    return np.zeros(window), np.zeros(2), np.zeros(2, dtype=np.int64)


@njit(cache=True)
def volume_delta_update_nb(qty, side, buf, fstate, istate, cum_out, win_out):
    """Signed volume ``qty * side`` (side 0 counts as 0): cumulative since the start, and summed over the last
    ``window`` trades (warm-up: the trades seen so far). The windowed sum is recomputed exactly each time the ring
    wraps, so add/remove rounding stays bounded over a long stream."""
    window = buf.shape[0]
    cum = fstate[0]
    ws = fstate[1]
    n = istate[0]
    pos = istate[1]
    for i in range(qty.shape[0]):
        s = side[i]
        v = qty[i] if s > 0 else (-qty[i] if s < 0 else 0.0)
        cum += v
        if n == window:
            ws -= buf[pos]
        else:
            n += 1
        buf[pos] = v
        ws += v
        pos += 1
        if pos == window:
            pos = 0
            ws = 0.0
            for k in range(window):
                ws += buf[k]
        cum_out[i] = cum
        win_out[i] = ws
    fstate[0] = cum
    fstate[1] = ws
    istate[0] = n
    istate[1] = pos


@njit(cache=True)
def volume_delta_nb(qty, side, window):
    """Batch form of :func:`volume_delta_update_nb`: returns ``(cum, windowed)``."""
    buf, fstate, istate = volume_delta_init_nb(window)
    cum = np.empty(qty.shape[0])
    win = np.empty(qty.shape[0])
    volume_delta_update_nb(qty, side, buf, fstate, istate, cum, win)
    return cum, win


# ---------------------------------------------------------------------------------------------------------------
# 7. Momentum breakout with a relative-volume filter
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def momentum_breakout_init_nb(window):
    """Fresh state: monotonic deques of the previous prices as rings of ``window + 1`` slots (``mx_val``/``mx_idx``
    decreasing for the max, ``mn_val``/``mn_idx`` increasing for the min), ring ``q_buf`` of quantities;
    ``fstate = [q_sum, baseline]``, ``istate = [t, mx_head, mx_len, mn_head, mn_len, n_q, q_pos]``
    (``t`` = events seen, the global index of the next event)."""
    cap = window + 1
    return (
        np.zeros(cap),
        np.zeros(cap, dtype=np.int64),
        np.zeros(cap),
        np.zeros(cap, dtype=np.int64),
        np.zeros(window),
        np.zeros(2),
        np.zeros(7, dtype=np.int64),
    )


@njit(cache=True)
def momentum_breakout_update_nb(
    px, qty, min_relvol, alpha_base, mx_val, mx_idx, mn_val, mn_idx, q_buf, fstate, istate, signal_out, relvol_out
):
    """Breakout signal: +1 when ``px`` exceeds the max of the previous ``window`` prices, -1 when it is below their
    min, in both cases only if ``relvol >= min_relvol``; 0 otherwise and 0 for the first event.

    ``relvol`` is the mean quantity of the last ``window`` events (current included; warm-up: those seen so far)
    over the baseline, an EMA of qty (weight ``alpha_base``) seeded with the first qty and updated *after* the
    comparison so that a burst does not raise its own bar. relvol is 0 while the baseline is 0 (no volume yet) and
    at most ``RATIO_CAP``.
    Max and min come from monotonic deques, O(1) amortised per event.
    """
    window = q_buf.shape[0]
    cap = window + 1
    qsum = fstate[0]
    base = fstate[1]
    t = istate[0]
    mxh = istate[1]
    mxl = istate[2]
    mnh = istate[3]
    mnl = istate[4]
    nq = istate[5]
    qpos = istate[6]
    for i in range(px.shape[0]):
        p = px[i]
        q = qty[i]
        # drop prices older than the previous `window` events
        while mxl > 0 and mx_idx[mxh] < t - window:
            mxh += 1
            if mxh == cap:
                mxh = 0
            mxl -= 1
        while mnl > 0 and mn_idx[mnh] < t - window:
            mnh += 1
            if mnh == cap:
                mnh = 0
            mnl -= 1
        # rolling quantity, current event included
        if nq == window:
            qsum -= q_buf[qpos]
        else:
            nq += 1
        q_buf[qpos] = q
        qsum += q
        qpos += 1
        if qpos == window:
            qpos = 0
            qsum = 0.0
            for k in range(window):
                qsum += q_buf[k]
        if t == 0:
            base = q
        # max(): a window of zeros after a huge size may sum to -1e-14 until the next exact recompute
        relvol = min(max(qsum, 0.0) / (nq * base), RATIO_CAP) if base > 0.0 else 0.0
        sig = 0
        if t > 0 and relvol >= min_relvol:
            # the previous price is always in both deques, so they are not empty here
            if p > mx_val[mxh]:
                sig = 1
            elif p < mn_val[mnh]:
                sig = -1
        signal_out[i] = sig
        relvol_out[i] = relvol
        base += alpha_base * (q - base)
        # push the current price: pop dominated values from the back
        while mxl > 0:
            back = mxh + mxl - 1
            if back >= cap:
                back -= cap
            if mx_val[back] <= p:
                mxl -= 1
            else:
                break
        back = mxh + mxl
        if back >= cap:
            back -= cap
        mx_val[back] = p
        mx_idx[back] = t
        mxl += 1
        while mnl > 0:
            back = mnh + mnl - 1
            if back >= cap:
                back -= cap
            if mn_val[back] >= p:
                mnl -= 1
            else:
                break
        back = mnh + mnl
        if back >= cap:
            back -= cap
        mn_val[back] = p
        mn_idx[back] = t
        mnl += 1
        t += 1
    fstate[0] = qsum
    fstate[1] = base
    istate[0] = t
    istate[1] = mxh
    istate[2] = mxl
    istate[3] = mnh
    istate[4] = mnl
    istate[5] = nq
    istate[6] = qpos


@njit(cache=True)
def momentum_breakout_nb(px, qty, window, min_relvol, alpha_base):
    """Batch form of :func:`momentum_breakout_update_nb`: returns ``(signal int8, relvol)``."""
    mx_val, mx_idx, mn_val, mn_idx, q_buf, fstate, istate = momentum_breakout_init_nb(window)
    n = px.shape[0]
    signal = np.empty(n, dtype=np.int8)
    relvol = np.empty(n)
    momentum_breakout_update_nb(
        px, qty, min_relvol, alpha_base, mx_val, mx_idx, mn_val, mn_idx, q_buf, fstate, istate, signal, relvol
    )
    return signal, relvol


# ---------------------------------------------------------------------------------------------------------------
# 8. Iceberg / absorption detection
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def iceberg_absorption_init_nb():
    """Fresh state ``fstate = [bid_level_px, bid_displayed, bid_traded, ask_level_px, ask_displayed, ask_traded]``;
    NaN level prices mean "not tracking" (any price differs from NaN)."""
    fstate = np.zeros(6)
    fstate[0] = np.nan
    fstate[3] = np.nan
    return fstate


@njit(cache=True)
def iceberg_absorption_update_nb(
    px, qty, side, bid_px, bid_qty, ask_px, ask_qty, min_ratio, fstate, ratio_out, flag_out
):
    """Absorption ratio (traded at a level / size displayed there when tracking started) and iceberg flag.

    A sell-aggressor trade (side -1) hits the bid: the resting level is ``bid_px``/``bid_qty`` as displayed just
    before the trade; a buy (side +1) lifts the ask. Each side tracks one level; tracking restarts (displayed size
    taken, traded reset to 0) when the trade's resting level price differs from the tracked one. Only trades printed
    at the tracked price add to the traded quantity. The ratio is 0 when the displayed size was 0, at most
    ``RATIO_CAP``. Flag: +1 (bid absorbs selling) or -1 (ask absorbs buying) when ``ratio > min_ratio`` and the
    trade printed at the level (the level holds); 0 otherwise. Side-0 trades give ratio 0, flag 0 and leave the
    state alone.
    """
    b_px = fstate[0]
    b_disp = fstate[1]
    b_cum = fstate[2]
    a_px = fstate[3]
    a_disp = fstate[4]
    a_cum = fstate[5]
    for i in range(px.shape[0]):
        s = side[i]
        if s < 0:
            lvl = bid_px[i]
            if lvl != b_px:
                b_px = lvl
                b_disp = bid_qty[i]
                b_cum = 0.0
            holds = px[i] == lvl
            if holds:
                b_cum += qty[i]
            r = min(b_cum / b_disp, RATIO_CAP) if b_disp > 0.0 else 0.0
            ratio_out[i] = r
            flag_out[i] = 1 if (holds and r > min_ratio) else 0
        elif s > 0:
            lvl = ask_px[i]
            if lvl != a_px:
                a_px = lvl
                a_disp = ask_qty[i]
                a_cum = 0.0
            holds = px[i] == lvl
            if holds:
                a_cum += qty[i]
            r = min(a_cum / a_disp, RATIO_CAP) if a_disp > 0.0 else 0.0
            ratio_out[i] = r
            flag_out[i] = -1 if (holds and r > min_ratio) else 0
        else:
            ratio_out[i] = 0.0
            flag_out[i] = 0
    fstate[0] = b_px
    fstate[1] = b_disp
    fstate[2] = b_cum
    fstate[3] = a_px
    fstate[4] = a_disp
    fstate[5] = a_cum


@njit(cache=True)
def iceberg_absorption_nb(px, qty, side, bid_px, bid_qty, ask_px, ask_qty, min_ratio):
    """Batch form of :func:`iceberg_absorption_update_nb`: returns ``(ratio, flag int8)``."""
    fstate = iceberg_absorption_init_nb()
    n = px.shape[0]
    ratio = np.empty(n)
    flag = np.empty(n, dtype=np.int8)
    iceberg_absorption_update_nb(px, qty, side, bid_px, bid_qty, ask_px, ask_qty, min_ratio, fstate, ratio, flag)
    return ratio, flag


# ---------------------------------------------------------------------------------------------------------------
# 9. Trade markouts against a reference mid series
# ---------------------------------------------------------------------------------------------------------------

# istate slots of the markout stream
MK_HEAD = 0  # first pending trade
MK_TAIL = 1  # one past the last pending trade
MK_UNDET = 2  # event mode: first pending trade whose "last mid at or before" is not known yet
MK_N_TRADES = 3  # trades seen (global index of the next trade)
MK_N_MIDS = 4  # mids seen
MK_LAST_MID_TS = 5  # timestamp of the last mid seen
MK_HORIZON_EVENTS = 6  # k >= 0, or -1 in time mode
MK_HORIZON_NS = 7


@njit(cache=True)
def markouts_init_nb(capacity, horizon_events, horizon_ns):
    """Fresh state: a FIFO of pending trades (``p_ts``, ``p_px``, ``p_side``, ``p_idx`` = global trade index,
    ``p_target`` = target mid index in event mode or target time in time mode), ``fstate = [last_mid]`` and
    ``istate`` (slots ``MK_*``). ``horizon_events >= 0`` selects event mode, -1 time mode with ``horizon_ns``."""
    istate = np.zeros(8, dtype=np.int64)
    istate[MK_HORIZON_EVENTS] = horizon_events
    istate[MK_HORIZON_NS] = horizon_ns
    return (
        np.zeros(capacity, dtype=np.int64),
        np.zeros(capacity),
        np.zeros(capacity, dtype=np.int8),
        np.zeros(capacity, dtype=np.int64),
        np.zeros(capacity, dtype=np.int64),
        np.zeros(1),
        istate,
    )


@njit(cache=True)
def markouts_update_nb(
    trade_ts_ns,
    trade_px,
    trade_side,
    mid_ts_ns,
    mid,
    p_ts,
    p_px,
    p_side,
    p_idx,
    p_target,
    fstate,
    istate,
    out_idx,
    out_markout,
    out_valid,
):
    """Append a chunk of trades, then consume a chunk of mids, resolving trades in FIFO order; returns n resolved.

    markout = ``side * (mid_then - trade_px)``. Event mode (k = ``horizon_events``): ``mid_then`` is the mid k
    updates after the last mid at or before the trade (index ``j + k``, ``j = -1`` when there is none). Time mode:
    the last mid at or before ``trade_ts + horizon_ns``. A trade is resolved as soon as the mids seen decide it;
    invalid ones (no such mid) come out with markout 0 and ``valid`` False.

    Caller's contract (checked by the friendly layer): trades and mids each sorted by time, every trade not older
    than the last mid of earlier calls, ``p_*`` with room for the new trades after ``MK_TAIL``, outputs with room
    for every pending trade. A trade's ``j`` is fixed by the first later mid (ts strictly greater), so ties between
    a trade and mids of the next chunk count the mids as "at or before", as in the batch form.
    """
    head = istate[MK_HEAD]
    tail = istate[MK_TAIL]
    und = istate[MK_UNDET]
    nt = istate[MK_N_TRADES]
    nm = istate[MK_N_MIDS]
    last_ts = istate[MK_LAST_MID_TS]
    k = istate[MK_HORIZON_EVENTS]
    h = istate[MK_HORIZON_NS]
    last_mid = fstate[0]
    for i in range(trade_ts_ns.shape[0]):
        p_ts[tail] = trade_ts_ns[i]
        p_px[tail] = trade_px[i]
        p_side[tail] = trade_side[i]
        p_idx[tail] = nt
        p_target[tail] = trade_ts_ns[i] + h if k < 0 else -1
        tail += 1
        nt += 1
    n_out = 0
    for m in range(mid_ts_ns.shape[0]):
        mts = mid_ts_ns[m]
        mv = mid[m]
        if k < 0:
            # a mid after the target time decides it: the answer is the mid before this one
            while head < tail and p_target[head] < mts:
                out_idx[n_out] = p_idx[head]
                if nm > 0:
                    out_markout[n_out] = p_side[head] * (last_mid - p_px[head])
                    out_valid[n_out] = True
                else:
                    out_markout[n_out] = 0.0
                    out_valid[n_out] = False
                n_out += 1
                head += 1
        else:
            # a mid after the trade fixes j = (mids before it) - 1, hence the target index
            while und < tail and p_ts[und] < mts:
                p_target[und] = nm - 1 + k
                und += 1
            while head < und and p_target[head] <= nm:
                tgt = p_target[head]
                out_idx[n_out] = p_idx[head]
                if tgt == nm:
                    out_markout[n_out] = p_side[head] * (mv - p_px[head])
                    out_valid[n_out] = True
                elif tgt >= 0:  # k == 0: the mid before this one
                    out_markout[n_out] = p_side[head] * (last_mid - p_px[head])
                    out_valid[n_out] = True
                else:  # k == 0 and no mid at or before the trade
                    out_markout[n_out] = 0.0
                    out_valid[n_out] = False
                n_out += 1
                head += 1
        last_mid = mv
        last_ts = mts
        nm += 1
    istate[MK_HEAD] = head
    istate[MK_TAIL] = tail
    istate[MK_UNDET] = und
    istate[MK_N_TRADES] = nt
    istate[MK_N_MIDS] = nm
    istate[MK_LAST_MID_TS] = last_ts
    fstate[0] = last_mid
    return n_out


@njit(cache=True)
def markouts_finish_nb(p_ts, p_px, p_side, p_idx, p_target, fstate, istate, out_idx, out_markout, out_valid):
    """End of data: resolve every pending trade; returns how many were written.

    The ones the data still decides (target at exactly the last mid's time, or k = 0 with a mid at or before the
    trade) are valid; the rest ran past the end of the data and come out invalid with markout 0.
    """
    head = istate[MK_HEAD]
    tail = istate[MK_TAIL]
    und = istate[MK_UNDET]
    nm = istate[MK_N_MIDS]
    last_ts = istate[MK_LAST_MID_TS]
    k = istate[MK_HORIZON_EVENTS]
    last_mid = fstate[0]
    n_out = 0
    for r in range(head, tail):
        if k < 0:
            # every mid seen is at or before the target: valid only if the data reaches the target itself
            ok = nm > 0 and p_target[r] <= last_ts
        else:
            # determined ones wait for a mid that never came; undetermined ones have j = nm - 1
            ok = r >= und and k == 0 and nm > 0
        out_idx[n_out] = p_idx[r]
        out_markout[n_out] = p_side[r] * (last_mid - p_px[r]) if ok else 0.0
        out_valid[n_out] = ok
        n_out += 1
    istate[MK_HEAD] = tail
    istate[MK_UNDET] = tail
    return n_out


@njit(cache=True)
def markouts_nb(trade_ts_ns, trade_px, trade_side, mid_ts_ns, mid, horizon_events, horizon_ns):
    """Batch form: fresh state, one update with everything, finish. Returns ``(markout, valid)`` per trade."""
    n = trade_ts_ns.shape[0]
    p_ts, p_px, p_side, p_idx, p_target, fstate, istate = markouts_init_nb(n, horizon_events, horizon_ns)
    out_idx = np.empty(n, dtype=np.int64)
    out_markout = np.empty(n)
    out_valid = np.empty(n, dtype=np.bool_)
    n1 = markouts_update_nb(
        trade_ts_ns,
        trade_px,
        trade_side,
        mid_ts_ns,
        mid,
        p_ts,
        p_px,
        p_side,
        p_idx,
        p_target,
        fstate,
        istate,
        out_idx,
        out_markout,
        out_valid,
    )
    markouts_finish_nb(
        p_ts, p_px, p_side, p_idx, p_target, fstate, istate, out_idx[n1:], out_markout[n1:], out_valid[n1:]
    )
    markout = np.empty(n)
    valid = np.empty(n, dtype=np.bool_)
    for r in range(n):
        markout[out_idx[r]] = out_markout[r]
        valid[out_idx[r]] = out_valid[r]
    return markout, valid


# ---------------------------------------------------------------------------------------------------------------
# 10. OHLC bars from a time-stamped series (batch only)
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def ohlc_bars_nb(ts_ns, x, bar_ns):
    """Time bars of ``bar_ns`` nanoseconds aligned on multiples of ``bar_ns`` (bar ``[k*bar_ns, (k+1)*bar_ns)``).

    ``ts_ns`` sorted (int64), ``x`` float64 of the same length, ``bar_ns >= 1``. Only bars holding at least one
    value are returned (empty intervals are skipped): ``(start_ns, open, high, low, close, count)``, int64 for
    ``start_ns`` and ``count``, float64 otherwise. Negative timestamps are floored too (``-1`` falls in the bar
    starting at ``-bar_ns``). Values are taken as given: a NaN is not skipped (open/close may be NaN, and a NaN
    first value sticks in high/low). Two passes (count, then fill) so the outputs have their exact size.
    No streaming form: a bar is only final once a later timestamp arrives, which a caller can handle by cutting
    its input on bar boundaries.
    """
    n = ts_ns.shape[0]
    n_bars = 0
    cur = 0
    for i in range(n):
        t = ts_ns[i]
        r = t % bar_ns
        if r < 0:  # Python's % (numba follows it) is already >= 0 here; kept so the floor never depends on it
            r += bar_ns
        s = t - r
        if i == 0 or s != cur:
            n_bars += 1
            cur = s
    start = np.empty(n_bars, dtype=np.int64)
    open_ = np.empty(n_bars)
    high = np.empty(n_bars)
    low = np.empty(n_bars)
    close = np.empty(n_bars)
    count = np.empty(n_bars, dtype=np.int64)
    b = -1
    for i in range(n):
        t = ts_ns[i]
        r = t % bar_ns
        if r < 0:
            r += bar_ns
        s = t - r
        v = x[i]
        if b < 0 or s != start[b]:
            b += 1
            start[b] = s
            open_[b] = v
            high[b] = v
            low[b] = v
            count[b] = 0
        elif v > high[b]:
            high[b] = v
        elif v < low[b]:
            low[b] = v
        close[b] = v
        count[b] += 1
    return start, open_, high, low, close, count


# ---------------------------------------------------------------------------------------------------------------
# 11. Keltner channel position on bars (classic true range)
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def keltner_bars_init_nb():
    """Fresh state: ``fstate = [ema, atr, prev_close]``, ``istate = [started]``."""
    return np.zeros(3), np.zeros(1, dtype=np.int64)


@njit(cache=True)
def keltner_bars_update_nb(high, low, close, alpha, alpha_atr, mult, fstate, istate, out):
    """Position of each bar's close in the Keltner channel ``(close - ema) / (mult * atr)``.

    ``ema`` is an EMA of the close (weight ``alpha``, seeded with the first close); ``atr`` an EMA (weight
    ``alpha_atr``) of the classic true range ``max(high, prev_close) - min(low, prev_close)``, seeded with the
    first bar's ``high - low``. Both include the current bar. The position is 0 when ``mult * atr`` is 0 or below
    ``KELTNER_ATR_FLOOR_REL * |ema|`` (the rule of :func:`keltner_position_update_nb`); the first bar (close =
    ema) and constant prices therefore give 0. Unlike the per-event kernel, the range inside a bar counts, so on
    bars of tick data the ATR measures the bars' real dispersion.
    """
    ema = fstate[0]
    atr = fstate[1]
    prev = fstate[2]
    started = istate[0]
    for i in range(close.shape[0]):
        h = high[i]
        lo = low[i]
        c = close[i]
        if started == 0:
            ema = c
            atr = h - lo
            started = 1
        else:
            ema += alpha * (c - ema)
            tr = max(h, prev) - min(lo, prev)
            atr += alpha_atr * (tr - atr)
        prev = c
        den = mult * atr
        if den > 0.0 and den > KELTNER_ATR_FLOOR_REL * abs(ema):
            out[i] = (c - ema) / den
        else:
            out[i] = 0.0
    fstate[0] = ema
    fstate[1] = atr
    fstate[2] = prev
    istate[0] = started


@njit(cache=True)
def keltner_bars_nb(high, low, close, alpha, alpha_atr, mult):
    """Batch form of :func:`keltner_bars_update_nb`."""
    fstate, istate = keltner_bars_init_nb()
    out = np.empty(close.shape[0])
    keltner_bars_update_nb(high, low, close, alpha, alpha_atr, mult, fstate, istate, out)
    return out
