"""Signal kernels against plain-Python references (straightforward loops over deques), compiled and uncompiled.

The references are written from the specification, not from the kernels: full sums over the window each event,
``max``/``min`` scans, ``bisect`` for markouts. Other test modules import them from here.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import workbench.signals as sig
from workbench.signals import nb

# ---------------------------------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------------------------------


def ref_book_imbalance(bid, ask, n_levels, halflife_events):
    out, ema = [], None
    for b_row, a_row in zip(bid, ask):
        sb, sa = sum(b_row[:n_levels]), sum(a_row[:n_levels])
        raw = (sb - sa) / (sb + sa) if sb + sa > 0 else 0.0
        if halflife_events == 0:
            out.append(raw)
            continue
        alpha = 1 - 0.5 ** (1 / halflife_events)
        ema = raw if ema is None else ema + alpha * (raw - ema)
        out.append(ema)
    return np.array(out)


def ref_microprice(bid_px, bid_qty, ask_px, ask_qty):
    out = []
    for bp, bq, ap, aq in zip(bid_px, bid_qty, ask_px, ask_qty):
        out.append((bp * aq + ap * bq) / (bq + aq) if bq + aq > 0 else (bp + ap) / 2)
    return np.array(out)


def ref_rolling_vwap(px, qty, window):
    win = deque(maxlen=window)
    vwap, dev, dev_bp = [], [], []
    for p, q in zip(px, qty):
        win.append((p, q))
        sq = math.fsum(w[1] for w in win)
        v = math.fsum(w[0] * w[1] for w in win) / sq if sq > 0 else p
        vwap.append(v)
        dev.append(p - v)
        dev_bp.append(1e4 * (p - v) / v if abs(v) >= 1e-300 else 0.0)
    return np.array(vwap), np.array(dev), np.array(dev_bp)


def ref_bollinger_z(x, window):
    win = deque(maxlen=window)
    out = []
    for v in x:
        win.append(v)
        mean = math.fsum(win) / len(win)
        var = math.fsum((w - mean) ** 2 for w in win) / len(win)
        out.append((v - mean) / math.sqrt(var) if var > 0 else 0.0)
    return np.array(out)


def ref_keltner_position(x, span, mult, atr_span):
    a, a_atr = 2 / (span + 1), 2 / (atr_span + 1)
    out, ema, atr, prev = [], None, 0.0, None
    for v in x:
        if ema is None:
            ema = v
        else:
            ema += a * (v - ema)
            atr += a_atr * (abs(v - prev) - atr)
        prev = v
        den = mult * atr
        out.append((v - ema) / den if den > 0 and den > 1e-12 * abs(ema) else 0.0)
    return np.array(out)


def ref_keltner_bars(high, low, close, span, mult, atr_span):
    a, a_atr = 2 / (span + 1), 2 / (atr_span + 1)
    out, ema, atr, prev = [], None, None, None
    for h, lo, c in zip(high, low, close):
        if ema is None:
            ema, atr = c, h - lo
        else:
            ema += a * (c - ema)
            atr += a_atr * (max(h, prev) - min(lo, prev) - atr)
        prev = c
        den = mult * atr
        out.append((c - ema) / den if den > 0 and den > 1e-12 * abs(ema) else 0.0)
    return np.array(out)


def ref_ohlc_bars(ts_ns, x, bar_ns):
    """Plain Python: group by ``floor(ts / bar_ns)``; only bars holding values exist."""
    groups = {}
    for t, v in zip(ts_ns.tolist(), x.tolist()):
        groups.setdefault((t // bar_ns) * bar_ns, []).append(v)
    starts = sorted(groups)
    vals = [groups[k] for k in starts]
    return sig.Bars(
        np.array(starts, dtype=np.int64),
        np.array([v[0] for v in vals]),
        np.array([max(v) for v in vals]),
        np.array([min(v) for v in vals]),
        np.array([v[-1] for v in vals]),
        np.array([len(v) for v in vals], dtype=np.int64),
    )


def pandas_ohlc_bars(ts_ns, x, bar_ns):
    """The same through pandas: ``resample(...).ohlc()`` on the epoch grid, empty bars dropped."""
    r = pd.Series(x, index=pd.to_datetime(ts_ns)).resample(pd.Timedelta(bar_ns, "ns"), origin="epoch")
    o = r.ohlc()
    o["count"] = r.count()
    o = o[o["count"] > 0]
    return sig.Bars(
        o.index.asi8.astype(np.int64),
        *(o[k].to_numpy(np.float64) for k in ("open", "high", "low", "close")),
        o["count"].to_numpy(np.int64),
    )


def ref_volume_delta(qty, side, window):
    win = deque(maxlen=window)
    cum, c, windowed = [], 0.0, []
    for q, s in zip(qty, side):
        v = q * s
        c += v
        win.append(v)
        cum.append(c)
        windowed.append(math.fsum(win))
    return np.array(cum), np.array(windowed)


def ref_momentum_breakout(px, qty, window, min_relvol, baseline_span):
    alpha = 2 / (baseline_span + 1)
    prev_px = deque(maxlen=window)
    win_q = deque(maxlen=window)
    base = None
    signal, relvol = [], []
    for p, q in zip(px, qty):
        win_q.append(q)
        if base is None:
            base = q
        rv = min(math.fsum(win_q) / (len(win_q) * base), 1e300) if base > 0 else 0.0  # capped: subnormal base
        s = 0
        if prev_px and rv >= min_relvol:
            if p > max(prev_px):
                s = 1
            elif p < min(prev_px):
                s = -1
        signal.append(s)
        relvol.append(rv)
        base += alpha * (q - base)
        prev_px.append(p)
    return np.array(signal, dtype=np.int8), np.array(relvol)


def ref_iceberg_absorption(px, qty, side, bid_px, bid_qty, ask_px, ask_qty, min_ratio):
    tracked = {+1: None, -1: None}  # resting side -> [level_px, displayed, traded]
    ratio, flag = [], []
    for i in range(len(px)):
        if side[i] == 0:
            ratio.append(0.0)
            flag.append(0)
            continue
        resting = -side[i]  # a sell hits the bid (+1), a buy lifts the ask (-1)
        lvl, shown = (bid_px[i], bid_qty[i]) if resting == 1 else (ask_px[i], ask_qty[i])
        t = tracked[resting]
        if t is None or t[0] != lvl:
            t = tracked[resting] = [lvl, shown, 0.0]
        if px[i] == lvl:
            t[2] += qty[i]
        r = min(t[2] / t[1], 1e300) if t[1] > 0 else 0.0  # capped: subnormal displayed size
        ratio.append(r)
        flag.append(resting if (px[i] == lvl and r > min_ratio) else 0)
    return np.array(ratio), np.array(flag, dtype=np.int8)


def ref_markouts(trade_ts, trade_px, trade_side, mid_ts, mid, horizon_events=None, horizon_ns=None):
    mid_ts = list(mid_ts)
    markout, valid = [], []
    for ts, px, s in zip(trade_ts, trade_px, trade_side):
        if horizon_events is not None:
            j = bisect_right(mid_ts, ts) - 1  # last mid at or before the trade (-1: none)
            t = j + horizon_events
            ok = 0 <= t < len(mid_ts)
        else:
            end = ts + horizon_ns
            t = bisect_right(mid_ts, end) - 1
            ok = t >= 0 and end <= mid_ts[-1]
        markout.append(s * (mid[t] - px) if ok else 0.0)
        valid.append(ok)
    return np.array(markout), np.array(valid, dtype=bool)


# ---------------------------------------------------------------------------------------------------------------
# random data
# ---------------------------------------------------------------------------------------------------------------


def walk(rng, n, start=100.0, tick=0.01):
    """Tick-grid random walk (repeated prices, like trades) as float64."""
    return start + tick * np.cumsum(rng.integers(-2, 3, n)).astype(np.float64)


def tick_bars(rng, n_ticks, bar_ns=1_000, start=100.0):
    """Bars of a tick-grid walk at random times (gaps of several bars included), through :func:`sig.ohlc_bars`."""
    ts = np.cumsum(rng.exponential(150.0, n_ticks) * (rng.random(n_ticks) < 0.9) + (rng.random(n_ticks) < 0.01) * 5e3)
    return sig.ohlc_bars(ts.astype(np.int64), walk(rng, n_ticks, start=start), bar_ns)


def book_rows(rng, n, levels):
    bid = rng.exponential(5.0, (n, levels))
    ask = rng.exponential(5.0, (n, levels))
    bid[rng.random((n, levels)) < 0.1] = 0.0
    ask[rng.random((n, levels)) < 0.1] = 0.0
    bid[rng.random(n) < 0.05] = 0.0  # whole book side empty
    both = rng.random(n) < 0.03
    bid[both] = 0.0
    ask[both] = 0.0
    return bid, ask


def absorption_tape(rng, n, tick=0.5):
    """Trades at or through a touch that moves rarely, so levels are tracked for a while."""
    mid = 1000.0 + tick * np.cumsum(rng.random(n) < 0.05) * rng.choice([-1, 1], n)
    bid_px = np.round(mid / tick) * tick - tick
    ask_px = bid_px + tick * rng.integers(1, 3, n)
    bid_qty = rng.integers(0, 8, n).astype(np.float64)
    ask_qty = rng.integers(0, 8, n).astype(np.float64)
    side = rng.choice(np.array([-1, 0, 1], dtype=np.int8), n, p=[0.45, 0.1, 0.45])
    through = rng.random(n) < 0.15
    px = np.where(side < 0, bid_px - tick * through, ask_px + tick * through)
    qty = rng.integers(1, 6, n).astype(np.float64)
    return px, qty, side, bid_px, bid_qty, ask_px, ask_qty


def markout_data(rng, n_trades, n_mids):
    trade_ts = np.sort(rng.integers(0, 10_000, n_trades)).astype(np.int64)
    mid_ts = np.sort(rng.integers(300, 9_700, n_mids)).astype(np.int64)  # trades before the first, after the last
    mid_ts[10:20] = mid_ts[10]  # duplicate timestamps
    mid_ts = np.sort(mid_ts)
    mid = walk(rng, n_mids)
    trade_px = mid[np.clip(np.searchsorted(mid_ts, trade_ts), 0, n_mids - 1)] + rng.normal(0, 0.02, n_trades)
    trade_side = rng.choice(np.array([-1, 0, 1], dtype=np.int8), n_trades)
    return trade_ts, trade_px, trade_side, mid_ts, mid


TOL = dict(rtol=1e-9, atol=1e-9)

# ---------------------------------------------------------------------------------------------------------------
# (a) compiled batch kernels vs references on random data
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_levels,halflife", [(1, 0.0), (3, 0.0), (5, 4.0), (2, 0.5)])
def test_book_imbalance_matches_reference(n_levels, halflife):
    rng = np.random.default_rng(1)
    bid, ask = book_rows(rng, 2000, 5)
    got = sig.book_imbalance(bid, ask, n_levels, halflife)
    np.testing.assert_allclose(got, ref_book_imbalance(bid, ask, n_levels, halflife), **TOL)


def test_microprice_matches_reference():
    rng = np.random.default_rng(2)
    bid_px = walk(rng, 2000)
    ask_px = bid_px + 0.01 * rng.integers(1, 4, 2000)
    bid_qty, ask_qty = rng.exponential(3.0, 2000), rng.exponential(3.0, 2000)
    bid_qty[::7] = 0.0
    ask_qty[::5] = 0.0
    got = sig.microprice(bid_px, bid_qty, ask_px, ask_qty)
    np.testing.assert_allclose(got, ref_microprice(bid_px, bid_qty, ask_px, ask_qty), rtol=1e-13)
    assert np.all((got >= bid_px - 1e-12) & (got <= ask_px + 1e-12))


@pytest.mark.parametrize("window", [1, 3, 50, 2000])
def test_rolling_vwap_matches_reference(window):
    rng = np.random.default_rng(3)
    px, qty = walk(rng, 1500, start=60000.0), rng.exponential(1.0, 1500)
    qty[rng.random(1500) < 0.3] = 0.0  # windows with no quantity at all for small windows
    got = sig.rolling_vwap(px, qty, window)
    want = ref_rolling_vwap(px, qty, window)
    np.testing.assert_allclose(got.vwap, want[0], rtol=1e-13)
    np.testing.assert_allclose(got.dev, want[1], rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(got.dev_bp, want[2], rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("window", [1, 2, 20, 600, 2000])
def test_bollinger_z_matches_reference(window):
    rng = np.random.default_rng(4)
    x = 60000.0 + np.cumsum(rng.normal(0, 0.3, 1500))  # large level, small spread: the shift must work
    np.testing.assert_allclose(sig.bollinger_z(x, window), ref_bollinger_z(x, window), rtol=1e-7, atol=1e-7)


def test_bollinger_z_tiny_spread_at_large_level():
    # A spread of 1e-7 at 60000 (about 1e4 ulps): sum(x^2)/n - mean^2 would lose every digit, and even a float
    # mean rounds to the ulp, so the reference here is exact rational arithmetic.
    rng = np.random.default_rng(5)
    x = 60000.0 + 1e-7 * rng.normal(size=300)
    window = 30
    exact = []
    for i in range(len(x)):
        win = [Fraction(v) for v in x[max(0, i - window + 1) : i + 1]]
        mean = sum(win) / len(win)
        var = sum((v - mean) ** 2 for v in win) / len(win)
        exact.append(float((Fraction(x[i]) - mean) / Fraction(math.sqrt(var))) if var > 0 else 0.0)
    np.testing.assert_allclose(sig.bollinger_z(x, window), exact, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("span,mult,atr_span", [(1.0, 1.0, 1.0), (10.0, 2.0, 10.0), (20.0, 1.5, 5.0), (3, 0.5, 50)])
def test_keltner_position_matches_reference(span, mult, atr_span):
    rng = np.random.default_rng(6)
    x = walk(rng, 3000)
    x[500:700] = x[500]  # a flat stretch: the ATR decays
    got = sig.keltner_position(x, span, mult, atr_span)
    np.testing.assert_allclose(got, ref_keltner_position(x, span, mult, atr_span), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("span,mult,atr_span", [(1.0, 1.0, 1.0), (20.0, 2.0, 20.0), (20.0, 1.5, 5.0), (3, 0.5, 50)])
def test_keltner_position_bars_matches_reference(span, mult, atr_span):
    rng = np.random.default_rng(15)
    b = tick_bars(rng, 20_000)
    close, high, low = b.close.copy(), b.high.copy(), b.low.copy()
    close[300:400] = high[300:400] = low[300:400] = close[300]  # flat bars: the ATR decays
    got = sig.keltner_position_bars(high, low, close, span, mult, atr_span)
    np.testing.assert_allclose(got, ref_keltner_bars(high, low, close, span, mult, atr_span), **TOL)
    assert got[0] == 0.0


def test_keltner_bars_use_the_range_of_the_bar():
    # The per-event kernel on tick data: consecutive prices mostly equal, the ATR tiny, |position| mostly > 1
    # (88% here). Bars of the same ticks with the classic true range put most closes inside the channel (26% out
    # here; a Brownian path gives about 20% with 20 moves per bar and 13% in the continuous limit).
    rng = np.random.default_rng(16)
    ts = np.cumsum(rng.integers(1, 50, 200_000)).astype(np.int64)
    px = walk(rng, 200_000, tick=0.01)
    px = np.repeat(px[::10], 10)  # ten equal prints per move, like trades at a price level
    per_event = sig.keltner_position(px, 20, 2.0)
    b = sig.ohlc_bars(ts, px, 5_000)
    on_bars = sig.keltner_position_bars(b.high, b.low, b.close, 20, 2.0)
    assert np.mean(np.abs(per_event) > 1) > 0.5
    assert np.mean(np.abs(on_bars) > 1) < 0.35


@pytest.mark.parametrize("bar_ns", [1, 7, 1000, 10**9])
def test_ohlc_bars_match_pandas_resample(bar_ns):
    rng = np.random.default_rng(17)
    # about 3000 bar intervals (pandas materialises every one of them, empty or not), some before the epoch
    ts = np.sort(rng.integers(-20 * bar_ns - 13, 3000 * bar_ns, 5_000)).astype(np.int64)
    ts[4000:] += 200 * bar_ns  # a gap: empty intervals
    ts[100:130] = ts[100]  # equal timestamps
    ts[200:202] = (ts[201] // bar_ns) * bar_ns  # values exactly on a bar boundary
    ts = np.sort(ts)
    x = walk(rng, 5_000)
    got = sig.ohlc_bars(ts, x, bar_ns)
    want = pandas_ohlc_bars(ts, x, bar_ns)
    for g, w, name in zip(got, want, sig.Bars._fields):
        np.testing.assert_array_equal(g, w, err_msg=name)
        assert g.dtype == w.dtype, name
    assert got.count.sum() == len(x) and np.all(got.count >= 1)
    assert np.all(got.start_ns % bar_ns == 0) and np.all(np.diff(got.start_ns) >= bar_ns)
    assert np.any(np.diff(got.start_ns) > bar_ns)  # empty intervals were skipped


@pytest.mark.parametrize("window", [1, 10, 4000])
def test_volume_delta_matches_reference(window):
    rng = np.random.default_rng(7)
    qty = rng.exponential(2.0, 3000)
    side = rng.choice(np.array([-1, 0, 1], dtype=np.int8), 3000)
    got = sig.volume_delta(qty, side, window)
    cum, win = ref_volume_delta(qty, side, window)
    np.testing.assert_allclose(got.cum, cum, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got.windowed, win, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("window,min_relvol,baseline_span", [(1, 0.0, 1.0), (5, 1.0, 50.0), (30, 1.3, 500.0)])
def test_momentum_breakout_matches_reference(window, min_relvol, baseline_span):
    rng = np.random.default_rng(8)
    px = walk(rng, 4000)
    qty = rng.exponential(1.0, 4000)
    qty[:3] = [0.0, 0.0, 2.0]  # a zero baseline at the start
    got = sig.momentum_breakout(px, qty, window, min_relvol=min_relvol, baseline_span=baseline_span)
    signal, relvol = ref_momentum_breakout(px, qty, window, min_relvol, baseline_span)
    np.testing.assert_allclose(got.relvol, relvol, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(got.signal, signal)
    assert got.signal.dtype == np.int8
    assert (got.signal == 1).sum() > 10 and (got.signal == -1).sum() > 10  # the test exercises both breaks


@pytest.mark.parametrize("min_ratio", [0.0, 1.0, 2.5])
def test_iceberg_absorption_matches_reference(min_ratio):
    rng = np.random.default_rng(9)
    tape = absorption_tape(rng, 4000)
    got = sig.iceberg_absorption(*tape, min_ratio=min_ratio)
    ratio, flag = ref_iceberg_absorption(*tape, min_ratio)
    np.testing.assert_allclose(got.ratio, ratio, rtol=1e-14)
    np.testing.assert_array_equal(got.flag, flag)
    assert (flag == 1).sum() > 5 and (flag == -1).sum() > 5


@pytest.mark.parametrize("horizon", [dict(horizon_events=0), dict(horizon_events=1), dict(horizon_events=7),
                                     dict(horizon_ns=0), dict(horizon_ns=137), dict(horizon_ns=5000)])
def test_markouts_match_reference(horizon):
    rng = np.random.default_rng(10)
    data = markout_data(rng, 1500, 800)
    got = sig.markouts(*data, **horizon)
    markout, valid = ref_markouts(*data, **horizon)
    np.testing.assert_array_equal(got.valid, valid)
    np.testing.assert_allclose(got.markout, markout, rtol=1e-14)
    assert valid.any() and not valid.all()  # both kinds occur


# ---------------------------------------------------------------------------------------------------------------
# the same kernels uncompiled (.py_func): the logic is covered without the JIT
# ---------------------------------------------------------------------------------------------------------------


def py(kernel):
    return kernel.py_func


def test_bollinger_update_uncompiled_matches_reference():
    rng = np.random.default_rng(11)
    x = 60000.0 + np.cumsum(rng.normal(0, 0.3, 1200))
    x[300:340] = x[300]  # a constant window: z must be exactly 0
    for window in (1, 25):
        buf, fstate, istate = py(nb.bollinger_z_init_nb)(window)
        out = np.empty(len(x))
        for lo in range(0, len(x), 700):  # two chunks: ring phase, blocked phase, ring refill
            py(nb.bollinger_z_update_nb)(x[lo : lo + 700], buf, fstate, istate, out[lo : lo + 700])
        np.testing.assert_allclose(out, ref_bollinger_z(x, window), rtol=1e-7, atol=1e-7)
        np.testing.assert_array_equal(out, sig.bollinger_z(x, window))  # compiled gives the same bits
    assert np.all(out[300 + 25 - 1 : 340] == 0.0)


def test_vwap_update_uncompiled_matches_reference():
    rng = np.random.default_rng(12)
    px, qty = walk(rng, 500, start=60000.0), rng.exponential(1.0, 500)
    qty[100:120] = 0.0
    state = py(nb.rolling_vwap_init_nb)(8)
    out = [np.empty(500) for _ in range(3)]
    py(nb.rolling_vwap_update_nb)(px, qty, *state, *out)
    want = ref_rolling_vwap(px, qty, 8)
    np.testing.assert_allclose(out[0], want[0], rtol=1e-13)
    np.testing.assert_allclose(out[1], want[1], rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(out[2], want[2], rtol=1e-7, atol=1e-8)


def test_other_kernels_uncompiled_match_reference():
    rng = np.random.default_rng(13)
    n = 400
    bid, ask = book_rows(rng, n, 3)
    fs, ist = py(nb.book_imbalance_init_nb)()
    out = np.empty(n)
    py(nb.book_imbalance_update_nb)(bid, ask, 2, 3.0, fs, ist, out)
    np.testing.assert_allclose(out, ref_book_imbalance(bid, ask, 2, 3.0), **TOL)

    bp, ap = walk(rng, n), walk(rng, n) + 1.0
    bq, aq = rng.exponential(1.0, n), rng.exponential(1.0, n)
    np.testing.assert_allclose(py(nb.microprice_nb)(bp, bq, ap, aq), ref_microprice(bp, bq, ap, aq), rtol=1e-13)

    x = walk(rng, n)
    fs, ist = py(nb.keltner_position_init_nb)()
    py(nb.keltner_position_update_nb)(x, 2 / 11, 2 / 6, 2.0, fs, ist, out)
    np.testing.assert_allclose(out, ref_keltner_position(x, 10, 2.0, 5), **TOL)

    qty, side = rng.exponential(1.0, n), rng.choice(np.array([-1, 0, 1], dtype=np.int8), n)
    state = py(nb.volume_delta_init_nb)(9)
    cum, win = np.empty(n), np.empty(n)
    py(nb.volume_delta_update_nb)(qty, side, *state, cum, win)
    np.testing.assert_allclose(win, ref_volume_delta(qty, side, 9)[1], **TOL)

    state = py(nb.momentum_breakout_init_nb)(6)
    signal, relvol = np.empty(n, dtype=np.int8), np.empty(n)
    py(nb.momentum_breakout_update_nb)(x, qty, 0.8, 2 / 51, *state, signal, relvol)
    want = ref_momentum_breakout(x, qty, 6, 0.8, 50)
    np.testing.assert_array_equal(signal, want[0])
    np.testing.assert_allclose(relvol, want[1], **TOL)

    tape = absorption_tape(rng, n)
    fs = py(nb.iceberg_absorption_init_nb)()
    ratio, flag = np.empty(n), np.empty(n, dtype=np.int8)
    py(nb.iceberg_absorption_update_nb)(*tape, 1.0, fs, ratio, flag)
    np.testing.assert_array_equal(flag, ref_iceberg_absorption(*tape, 1.0)[1])

    data = markout_data(rng, 300, 200)
    for k, h in ((3, 0), (0, 0), (-1, 250)):
        got = py(nb.markouts_nb)(*data, k, h)
        want = ref_markouts(*data, **({"horizon_events": k} if k >= 0 else {"horizon_ns": h}))
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-14)


def test_bar_kernels_uncompiled_match_reference():
    rng = np.random.default_rng(18)
    ts = np.sort(rng.integers(-5_000, 20_000, 600)).astype(np.int64)  # negative times: floored, not truncated
    x = walk(rng, 600)
    for bar_ns in (1, 333):
        got = sig.Bars(*py(nb.ohlc_bars_nb)(ts, x, bar_ns))
        for g, w, c in zip(got, ref_ohlc_bars(ts, x, bar_ns), sig.Bars(*nb.ohlc_bars_nb(ts, x, bar_ns))):
            np.testing.assert_array_equal(g, w)
            np.testing.assert_array_equal(g, c)  # compiled gives the same
    empty = py(nb.ohlc_bars_nb)(np.empty(0, dtype=np.int64), np.empty(0), 10)
    assert all(a.shape == (0,) for a in empty)

    b = tick_bars(rng, 3000)
    fs, ist = py(nb.keltner_bars_init_nb)()
    out = np.empty(len(b.close))
    for lo in range(0, len(out), 50):  # in chunks: the state carries over
        hi = lo + 50
        py(nb.keltner_bars_update_nb)(b.high[lo:hi], b.low[lo:hi], b.close[lo:hi], 2 / 11, 2 / 6, 2.0, fs, ist,
                                      out[lo:hi])
    np.testing.assert_allclose(out, ref_keltner_bars(b.high, b.low, b.close, 10, 2.0, 5), **TOL)
    np.testing.assert_array_equal(out, sig.keltner_position_bars(b.high, b.low, b.close, 10, 2.0, 5))


def test_rolling_sums_do_not_drift_after_huge_sizes():
    # Add/remove sums keep the rounding of every size that ever passed: after a few 1e12 lots, windows of
    # unit sizes would be noise. The kernels recompute their sums each time the ring wraps.
    rng = np.random.default_rng(14)
    n, window = 400, 10
    px, qty = walk(rng, n, start=60000.0), rng.exponential(1.0, n)
    qty[:30] = rng.uniform(1e11, 1e12, 30)
    side = rng.choice(np.array([-1, 1], dtype=np.int8), n)
    late = slice(60, None)
    vwap = sig.rolling_vwap(px, qty, window)
    np.testing.assert_allclose(vwap.dev[late], ref_rolling_vwap(px, qty, window)[1][late], rtol=1e-9, atol=1e-9)
    win = sig.volume_delta(qty, side, window).windowed
    np.testing.assert_allclose(win[late], ref_volume_delta(qty, side, window)[1][late], rtol=1e-9, atol=1e-9)
    relvol = sig.momentum_breakout(px, qty, window, baseline_span=5.0).relvol
    want = ref_momentum_breakout(px, qty, window, 1.0, 5.0)[1]
    np.testing.assert_allclose(relvol[late], want[late], rtol=1e-9, atol=1e-12)
