"""Hypothesis properties of the signals: empty and one-event inputs, constant prices, windows longer than the data,
finite outputs for finite inputs, agreement with the references on grid prices, and any chunking equals the batch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import workbench.signals as sig
from tests.signals.test_reference import (
    ref_bollinger_z,
    ref_book_imbalance,
    ref_iceberg_absorption,
    ref_keltner_bars,
    ref_keltner_position,
    ref_markouts,
    ref_momentum_breakout,
    ref_ohlc_bars,
    ref_rolling_vwap,
    ref_volume_delta,
)

SETTINGS = settings(max_examples=40, deadline=None)

# prices on a 0.25 grid around 100: repeats, flat stretches and constants are common
grid_px = st.integers(-8, 8).map(lambda k: 100.0 + 0.25 * k)
# any finite price or size of sane magnitude (squares stay finite), including 0, subnormals and sign changes
wild = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
wild_qty = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
grid_qty = st.integers(0, 20).map(lambda k: 0.5 * k)
sides = st.sampled_from([-1, 0, 1])
windows = st.integers(1, 60)  # often longer than the data


def vec(elements, max_size=40, min_size=0):
    return st.integers(min_size, max_size).flatmap(
        lambda n: arrays(np.float64, n, elements=elements)
    )


@st.composite
def px_qty(draw, px=grid_px, qty=grid_qty, max_size=40):
    n = draw(st.integers(0, max_size))
    return draw(arrays(np.float64, n, elements=px)), draw(arrays(np.float64, n, elements=qty))


@st.composite
def splits(draw, n):
    """Random chunk boundaries over n events (empty chunks allowed)."""
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    return [0, *cuts, n]


def feed(obj, bounds, *arrays):
    outs = [obj.update(*(a[lo:hi] for a in arrays)) for lo, hi in zip(bounds[:-1], bounds[1:])]
    if isinstance(outs[0], tuple):
        return type(outs[0])(*(np.concatenate(f) for f in zip(*outs)))
    return np.concatenate(outs)


def all_finite(*arrays):
    return all(np.all(np.isfinite(a)) for a in arrays)


# ---------------------------------------------------------------------------------------------------------------
# Bollinger z
# ---------------------------------------------------------------------------------------------------------------


@SETTINGS
@given(x=vec(grid_px), window=windows)
def test_bollinger_matches_reference_on_grid(x, window):
    z = sig.bollinger_z(x, window)
    np.testing.assert_allclose(z, ref_bollinger_z(x, window), rtol=1e-9, atol=1e-9)
    # |z| <= sqrt(n - 1) for a population z-score of n values
    assert np.all(np.abs(z) <= math.sqrt(max(window - 1, 0)) + 1e-9)
    if len(x):
        assert z[0] == 0.0


@SETTINGS
@given(x=vec(wild), window=windows, data=st.data())
def test_bollinger_finite_and_chunking_free(x, window, data):
    z = sig.bollinger_z(x, window)
    assert z.shape == x.shape and all_finite(z)
    np.testing.assert_array_equal(feed(sig.BollingerZ(window), data.draw(splits(len(x))), x), z)


@SETTINGS
@given(value=wild, n=st.integers(0, 1200), window=st.integers(1, 700))
def test_bollinger_constant_is_zero(value, n, window):
    # n up to 1200 crosses the 512-event blocks of the fast loop
    assert np.all(sig.bollinger_z(np.full(n, value), window) == 0.0)


@SETTINGS
@given(x=vec(grid_px, min_size=1), extra=st.integers(0, 50))
def test_bollinger_window_longer_than_data(x, extra):
    # while warming up nothing leaves the window: any window >= len(x) gives the same bits
    np.testing.assert_array_equal(sig.bollinger_z(x, len(x) + extra), sig.bollinger_z(x, len(x)))


# ---------------------------------------------------------------------------------------------------------------
# Keltner
# ---------------------------------------------------------------------------------------------------------------

spans = st.floats(min_value=1.0, max_value=200.0)
mults = st.floats(min_value=0.1, max_value=5.0)


@SETTINGS
@given(x=vec(grid_px), span=spans, mult=mults)
def test_keltner_matches_reference_and_is_bounded(x, span, mult):
    pos = sig.keltner_position(x, span, mult)
    np.testing.assert_allclose(pos, ref_keltner_position(x, span, mult, span), rtol=1e-9, atol=1e-9)
    # with one alpha for both EMAs, |x - ema| <= (1 - a) / a * atr term by term
    a = 2.0 / (span + 1.0)
    assert np.all(np.abs(pos) <= (1 - a) / (a * mult) * (1 + 1e-9) + 1e-12)


@SETTINGS
@given(x=vec(wild), span=spans, mult=mults, atr_span=spans, data=st.data())
def test_keltner_finite_and_chunking_free(x, span, mult, atr_span, data):
    pos = sig.keltner_position(x, span, mult, atr_span)
    assert all_finite(pos)
    got = feed(sig.KeltnerPosition(span, mult, atr_span), data.draw(splits(len(x))), x)
    np.testing.assert_array_equal(got, pos)
    if len(x):
        assert pos[0] == 0.0


@SETTINGS
@given(value=wild, n=st.integers(0, 100), span=spans)
def test_keltner_constant_is_zero(value, n, span):
    assert np.all(sig.keltner_position(np.full(n, value), span) == 0.0)


# ---------------------------------------------------------------------------------------------------------------
# Keltner on bars, OHLC bars
# ---------------------------------------------------------------------------------------------------------------

grid_ext = st.integers(0, 4).map(lambda k: 0.25 * k)  # how far high / low reach beyond the close
wild_ext = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def hlc(draw, px=grid_px, ext=grid_ext, max_size=40):
    """Bars as (high, low, close) with low <= close <= high."""
    n = draw(st.integers(0, max_size))
    close = draw(arrays(np.float64, n, elements=px))
    return close + draw(arrays(np.float64, n, elements=ext)), close - draw(arrays(np.float64, n, elements=ext)), close


@SETTINGS
@given(bars=hlc(), span=spans, mult=mults)
def test_keltner_bars_match_reference_and_are_bounded(bars, span, mult):
    pos = sig.keltner_position_bars(*bars, span, mult)
    np.testing.assert_allclose(pos, ref_keltner_bars(*bars, span, mult, span), rtol=1e-9, atol=1e-9)
    # the true range covers |close_t - close_{t-1}|, so the per-event bound holds too
    a = 2.0 / (span + 1.0)
    assert np.all(np.abs(pos) <= (1 - a) / (a * mult) * (1 + 1e-9) + 1e-12)


@SETTINGS
@given(bars=hlc(px=wild, ext=wild_ext), span=spans, mult=mults, atr_span=spans, data=st.data())
def test_keltner_bars_finite_and_chunking_free(bars, span, mult, atr_span, data):
    pos = sig.keltner_position_bars(*bars, span, mult, atr_span)
    assert pos.shape == bars[2].shape and all_finite(pos)
    got = feed(sig.KeltnerPositionBars(span, mult, atr_span), data.draw(splits(len(pos))), *bars)
    np.testing.assert_array_equal(got, pos)
    if len(pos):
        assert pos[0] == 0.0  # one bar: its close is the EMA


@SETTINGS
@given(value=wild, n=st.integers(0, 100), span=spans, data=st.data())
def test_keltner_bars_constant_is_zero(value, n, span, data):
    c = np.full(n, value)
    assert np.all(sig.keltner_position_bars(c, c, c, span) == 0.0)
    # constant closes stay on the EMA whatever the bars' ranges
    up, dn = data.draw(arrays(np.float64, n, elements=grid_ext)), data.draw(arrays(np.float64, n, elements=grid_ext))
    assert np.all(sig.keltner_position_bars(c + up, c - dn, c, span) == 0.0)


@st.composite
def stamped(draw, max_size=40):
    n = draw(st.integers(0, max_size))
    ts = np.sort(draw(arrays(np.int64, n, elements=st.integers(-100, 100))))
    return ts, draw(arrays(np.float64, n, elements=grid_px))


@SETTINGS
@given(tx=stamped(), bar_ns=st.integers(1, 30))
def test_ohlc_bars_reference_and_invariants(tx, bar_ns):
    ts, x = tx
    got = sig.ohlc_bars(ts, x, bar_ns)
    for g, w in zip(got, ref_ohlc_bars(ts, x, bar_ns)):
        np.testing.assert_array_equal(g, w)
        assert g.dtype == w.dtype
    assert got.count.sum() == len(x) and np.all(got.count >= 1)
    assert np.all(got.start_ns % bar_ns == 0) and np.all(np.diff(got.start_ns) >= bar_ns)
    assert np.all(got.low <= np.minimum(got.open, got.close)) and np.all(got.high >= np.maximum(got.open, got.close))
    if len(x):
        assert got.open[0] == x[0] and got.close[-1] == x[-1]


# ---------------------------------------------------------------------------------------------------------------
# VWAP, volume delta, breakout
# ---------------------------------------------------------------------------------------------------------------


@SETTINGS
@given(pq=px_qty(), window=windows, data=st.data())
def test_vwap_reference_chunking_window(pq, window, data):
    px, qty = pq
    got = sig.rolling_vwap(px, qty, window)
    want = ref_rolling_vwap(px, qty, window)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-10)
    r = feed(sig.RollingVwap(window), data.draw(splits(len(px))), px, qty)
    for g, w in zip(r, got):
        np.testing.assert_array_equal(g, w)
    if len(px):
        assert got.vwap[0] == px[0] and got.dev[0] == 0.0
        big = sig.rolling_vwap(px, qty, len(px) + window)
        np.testing.assert_allclose(big.vwap, sig.rolling_vwap(px, qty, len(px)).vwap, rtol=1e-13)


@SETTINGS
@given(pq=px_qty(px=wild, qty=wild_qty), window=windows)
def test_vwap_finite_and_within_range(pq, window):
    px, qty = pq
    got = sig.rolling_vwap(px, qty, window)
    assert all_finite(*got)
    if len(px):
        span = px.max() - px.min()
        assert np.all(got.vwap >= px.min() - 1e-9 * (span + abs(px).max())) and np.all(
            got.vwap <= px.max() + 1e-9 * (span + abs(px).max()))


@SETTINGS
@given(qty=vec(grid_qty), window=windows, data=st.data())
def test_volume_delta_reference_and_chunking(qty, window, data):
    side = data.draw(arrays(np.int8, len(qty), elements=sides))
    got = sig.volume_delta(qty, side, window)
    cum, win = ref_volume_delta(qty, side, window)
    np.testing.assert_allclose(got.cum, cum, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got.windowed, win, rtol=1e-12, atol=1e-9)
    r = feed(sig.VolumeDelta(window), data.draw(splits(len(qty))), qty, side)
    np.testing.assert_array_equal(r.cum, got.cum)
    np.testing.assert_array_equal(r.windowed, got.windowed)


@SETTINGS
@given(qty=vec(wild_qty), window=windows, data=st.data())
def test_volume_delta_finite(qty, window, data):
    side = data.draw(arrays(np.int8, len(qty), elements=sides))
    got = sig.volume_delta(qty, side, window)
    assert all_finite(*got)
    if len(qty):
        assert np.all(np.abs(got.windowed) <= qty.sum() * (1 + 1e-9))


@SETTINGS
@given(pq=px_qty(), window=windows, min_relvol=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
       baseline_span=st.sampled_from([1.0, 3.0, 20.0]), data=st.data())
def test_breakout_reference_and_chunking(pq, window, min_relvol, baseline_span, data):
    px, qty = pq
    kw = dict(min_relvol=min_relvol, baseline_span=baseline_span)
    got = sig.momentum_breakout(px, qty, window, **kw)
    signal, relvol = ref_momentum_breakout(px, qty, window, min_relvol, baseline_span)
    np.testing.assert_array_equal(got.signal, signal)
    np.testing.assert_allclose(got.relvol, relvol, rtol=1e-12, atol=1e-12)
    r = feed(sig.MomentumBreakout(window, **kw), data.draw(splits(len(px))), px, qty)
    np.testing.assert_array_equal(r.signal, got.signal)
    np.testing.assert_array_equal(r.relvol, got.relvol)
    if len(px):
        assert got.signal[0] == 0


@SETTINGS
@given(pq=px_qty(px=wild, qty=wild_qty), window=windows)
def test_breakout_finite(pq, window):
    px, qty = pq
    got = sig.momentum_breakout(px, qty, window, min_relvol=0.0)
    assert all_finite(got.relvol) and np.all(got.relvol >= 0.0)
    assert set(np.unique(got.signal)) <= {-1, 0, 1}


@SETTINGS
@given(value=wild, qty=vec(grid_qty), window=windows)
def test_breakout_constant_price_never_breaks(value, qty, window):
    got = sig.momentum_breakout(np.full(len(qty), value), qty, window, min_relvol=0.0)
    assert np.all(got.signal == 0)


# ---------------------------------------------------------------------------------------------------------------
# book imbalance, microprice, absorption, markouts
# ---------------------------------------------------------------------------------------------------------------


@SETTINGS
@given(n=st.integers(0, 30), levels=st.integers(1, 4), halflife=st.sampled_from([0.0, 0.5, 3.0]), data=st.data())
def test_book_imbalance_properties(n, levels, halflife, data):
    bid = data.draw(arrays(np.float64, (n, levels), elements=wild_qty))
    ask = data.draw(arrays(np.float64, (n, levels), elements=wild_qty))
    k = data.draw(st.integers(1, levels))
    got = sig.book_imbalance(bid, ask, k, halflife)
    assert got.shape == (n,) and all_finite(got) and np.all(np.abs(got) <= 1.0 + 1e-12)
    np.testing.assert_allclose(got, ref_book_imbalance(bid, ask, k, halflife), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(feed(sig.BookImbalance(k, halflife), data.draw(splits(n)), bid, ask), got)


@SETTINGS
@given(n=st.integers(0, 30), data=st.data())
def test_microprice_properties(n, data):
    bp = data.draw(arrays(np.float64, n, elements=st.floats(1.0, 1e6)))
    ap = bp + data.draw(arrays(np.float64, n, elements=st.floats(0.0, 100.0)))
    bq = data.draw(arrays(np.float64, n, elements=wild_qty))
    aq = data.draw(arrays(np.float64, n, elements=wild_qty))
    got = sig.microprice(bp, bq, ap, aq)
    assert all_finite(got)
    assert np.all(got >= bp * (1 - 1e-12)) and np.all(got <= ap * (1 + 1e-12))
    both_empty = (bq == 0) & (aq == 0)
    np.testing.assert_array_equal(got[both_empty], ((bp + ap) / 2)[both_empty])


@st.composite
def tapes(draw, max_size=40, sizes=grid_qty):
    n = draw(st.integers(0, max_size))
    lvl = st.integers(0, 3).map(lambda k: 10.0 + k)
    bid_px = draw(arrays(np.float64, n, elements=lvl))
    ask_px = bid_px + 1.0
    side = draw(arrays(np.int8, n, elements=sides))
    through = draw(arrays(np.bool_, n))
    px = np.where(side < 0, bid_px - through, ask_px + through)
    qty = draw(arrays(np.float64, n, elements=sizes))
    bid_qty = draw(arrays(np.float64, n, elements=sizes))
    ask_qty = draw(arrays(np.float64, n, elements=sizes))
    return px, qty, side, bid_px, bid_qty, ask_px, ask_qty


@SETTINGS
@given(tape=tapes(), min_ratio=st.sampled_from([0.0, 1.0, 1.5]), data=st.data())
def test_absorption_properties(tape, min_ratio, data):
    got = sig.iceberg_absorption(*tape, min_ratio=min_ratio)
    ratio, flag = ref_iceberg_absorption(*tape, min_ratio)
    np.testing.assert_array_equal(got.flag, flag)
    np.testing.assert_allclose(got.ratio, ratio, rtol=1e-14)
    assert all_finite(got.ratio) and np.all(got.ratio >= 0)
    side = tape[2]
    assert np.all(got.flag[side == 0] == 0) and np.all(got.ratio[side == 0] == 0)
    assert np.all(got.flag * side <= 0)  # a flag is always on the resting side, opposite the aggressor
    r = feed(sig.IcebergAbsorption(min_ratio), data.draw(splits(len(side))), *tape)
    np.testing.assert_array_equal(r.ratio, got.ratio)
    np.testing.assert_array_equal(r.flag, got.flag)


@SETTINGS
@given(tape=tapes(sizes=wild_qty), min_ratio=st.sampled_from([0.0, 1.0]))
def test_absorption_finite_for_any_sizes(tape, min_ratio):
    got = sig.iceberg_absorption(*tape, min_ratio=min_ratio)
    assert all_finite(got.ratio) and np.all(got.ratio >= 0)


@st.composite
def markout_inputs(draw):
    n_t, n_m = draw(st.integers(0, 25)), draw(st.integers(0, 25))
    ts = st.integers(0, 40)
    trade_ts = np.sort(draw(arrays(np.int64, n_t, elements=ts)))
    mid_ts = np.sort(draw(arrays(np.int64, n_m, elements=ts)))
    trade_px = draw(arrays(np.float64, n_t, elements=grid_px))
    mid = draw(arrays(np.float64, n_m, elements=grid_px))
    trade_side = draw(arrays(np.int8, n_t, elements=sides))
    return trade_ts, trade_px, trade_side, mid_ts, mid


@SETTINGS
@given(data_=markout_inputs(), k=st.integers(0, 4), h=st.integers(0, 15), use_k=st.booleans(), data=st.data())
def test_markouts_reference_and_random_interleaving(data_, k, h, use_k, data):
    horizon = dict(horizon_events=k) if use_k else dict(horizon_ns=h)
    trade_ts, trade_px, trade_side, mid_ts, mid = data_
    got = sig.markouts(*data_, **horizon)
    want = ref_markouts(*data_, **horizon) if len(mid_ts) else (np.zeros(len(trade_ts)), np.zeros(len(trade_ts), bool))
    np.testing.assert_array_equal(got.valid, want[1])
    np.testing.assert_array_equal(got.markout, want[0])
    assert np.all(got.markout[~got.valid] == 0.0)
    # stream: walk the time-merged tape, cutting it at random points
    ts = np.concatenate([trade_ts, mid_ts])
    is_mid = np.concatenate([np.zeros(len(trade_ts), bool), np.ones(len(mid_ts), bool)])
    order = np.lexsort((is_mid if data.draw(st.booleans()) else ~is_mid, ts))
    bounds = data.draw(splits(len(order)))
    mk = sig.Markouts(capacity=data.draw(st.integers(1, 8)), **horizon)
    parts, n_t, n_m = [], 0, 0
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        k_t = int((~is_mid[order[lo:hi]]).sum())
        k_m = hi - lo - k_t
        parts.append(mk.update(trade_ts[n_t:n_t + k_t], trade_px[n_t:n_t + k_t], trade_side[n_t:n_t + k_t],
                               mid_ts[n_m:n_m + k_m], mid[n_m:n_m + k_m]))
        n_t, n_m = n_t + k_t, n_m + k_m
    parts.append(mk.finish())
    idx, markout, valid = (np.concatenate(f) for f in zip(*parts))
    np.testing.assert_array_equal(idx, np.arange(len(trade_ts)))
    np.testing.assert_array_equal(markout, got.markout)
    np.testing.assert_array_equal(valid, got.valid)


# ---------------------------------------------------------------------------------------------------------------
# empty and one-event inputs, batch and streaming
# ---------------------------------------------------------------------------------------------------------------

E = np.empty(0)
E8 = np.empty(0, dtype=np.int8)
EI = np.empty(0, dtype=np.int64)


@pytest.mark.parametrize(
    "batch,stream",
    [
        (lambda: sig.bollinger_z(E, 5), lambda: sig.BollingerZ(5).update(E)),
        (lambda: sig.keltner_position(E, 5), lambda: sig.KeltnerPosition(5).update(E)),
        (lambda: sig.keltner_position_bars(E, E, E, 5), lambda: sig.KeltnerPositionBars(5).update(E, E, E)),
        (lambda: sig.ohlc_bars(EI, E, 10), lambda: sig.ohlc_bars([], [], 1)),  # batch only: twice the batch
        (lambda: sig.rolling_vwap(E, E, 5), lambda: sig.RollingVwap(5).update(E, E)),
        (lambda: sig.volume_delta(E, E8, 5), lambda: sig.VolumeDelta(5).update(E, E8)),
        (lambda: sig.momentum_breakout(E, E, 5), lambda: sig.MomentumBreakout(5).update(E, E)),
        (
            lambda: sig.iceberg_absorption(E, E, E8, E, E, E, E),
            lambda: sig.IcebergAbsorption().update(E, E, E8, E, E, E, E),
        ),
        (lambda: sig.book_imbalance(np.empty((0, 3)), np.empty((0, 3))),
         lambda: sig.BookImbalance().update(np.empty((0, 3)), np.empty((0, 3)))),
        (lambda: sig.microprice(E, E, E, E), lambda: sig.Microprice().update(E, E, E, E)),
        (lambda: sig.markouts(EI, E, E8, EI, E, horizon_events=1), lambda: sig.Markouts(horizon_ns=5).update()),
    ],
)
def test_empty_inputs(batch, stream):
    for out in (batch(), stream()):
        for a in out if isinstance(out, tuple) else (out,):
            assert a.shape == (0,)


def test_one_event():
    x = np.array([60000.25])
    q = np.array([2.0])
    assert sig.bollinger_z(x, 10).tolist() == [0.0]
    assert sig.keltner_position(x, 10).tolist() == [0.0]
    assert sig.keltner_position_bars([60001.0], [59999.5], x, 10).tolist() == [0.0]
    b = sig.ohlc_bars([1_500_000_000], x, 1_000_000_000)
    assert [f.tolist() for f in b] == [[1_000_000_000], [60000.25], [60000.25], [60000.25], [60000.25], [1]]
    v = sig.rolling_vwap(x, q, 10)
    assert (v.vwap.tolist(), v.dev.tolist(), v.dev_bp.tolist()) == ([60000.25], [0.0], [0.0])
    b = sig.momentum_breakout(x, q, 10)
    assert (b.signal.tolist(), b.relvol.tolist()) == ([0], [1.0])
    d = sig.volume_delta(q, np.array([-1], dtype=np.int8), 10)
    assert (d.cum.tolist(), d.windowed.tolist()) == ([-2.0], [-2.0])
    m = sig.markouts([5], [100.0], [1], [5], [100.5], horizon_events=0)
    assert (m.markout.tolist(), m.valid.tolist()) == ([0.5], [True])
    m = sig.markouts([5], [100.0], [-1], [5], [100.5], horizon_ns=1)
    assert (m.markout.tolist(), m.valid.tolist()) == ([0.0], [False])  # the horizon runs past the last mid
    a = sig.iceberg_absorption([10.0], [3.0], [-1], [10.0], [2.0], [11.0], [1.0])
    assert (a.ratio.tolist(), a.flag.tolist()) == ([1.5], [1])


def test_vwap_after_a_dominant_trade_leaves_the_window():
    # found by hypothesis: 1 + 3.4e-33 - 1 is 0 in floats, so removing the big trade by subtraction left a VWAP of 2
    # for a window of two trades at 1
    got = sig.rolling_vwap(np.array([0.0, 1.0, 1.0]), np.array([1.0, 3.3652161e-33, 3.3652161e-33]), 2)
    assert got.vwap.tolist() == [0.0, pytest.approx(3.3652161e-33), 1.0]
