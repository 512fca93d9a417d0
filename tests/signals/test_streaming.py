"""Streaming equals batch: every signal fed in chunks of 1, 7 and 1000 events gives the batch result bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import workbench.signals as sig
from tests.signals.test_reference import absorption_tape, book_rows, markout_data, tick_bars, walk

CHUNKS = [1, 7, 1000]
N = 2500


def chunked(n: int, size: int):
    for lo in range(0, n, size):
        yield slice(lo, min(lo + size, n))


def stream(obj, size: int, *arrays):
    """Feed ``arrays`` to ``obj.update`` in chunks; concatenate each output field."""
    outs = [obj.update(*(a[s] for a in arrays)) for s in chunked(len(arrays[0]), size)]
    if isinstance(outs[0], tuple):
        return type(outs[0])(*(np.concatenate(f) for f in zip(*outs)))
    return np.concatenate(outs)


def assert_same(got, want):
    if isinstance(want, tuple):
        assert type(got) is type(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
            assert g.dtype == w.dtype
    else:
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(42)


@pytest.mark.parametrize("size", CHUNKS)
@pytest.mark.parametrize("halflife", [0.0, 10.0])
def test_book_imbalance(rng, size, halflife):
    bid, ask = book_rows(rng, N, 4)
    want = sig.book_imbalance(bid, ask, 3, halflife)
    assert_same(stream(sig.BookImbalance(3, halflife), size, bid, ask), want)


@pytest.mark.parametrize("size", CHUNKS)
def test_microprice(rng, size):
    bp = walk(rng, N)
    ap, bq, aq = bp + 0.01, rng.exponential(1.0, N), rng.exponential(1.0, N)
    assert_same(stream(sig.Microprice(), size, bp, bq, ap, aq), sig.microprice(bp, bq, ap, aq))


@pytest.mark.parametrize("size", CHUNKS)
@pytest.mark.parametrize("window", [1, 13, 1500])
def test_rolling_vwap(rng, size, window):
    px, qty = walk(rng, N, start=60000.0), rng.exponential(1.0, N)
    qty[rng.random(N) < 0.2] = 0.0
    assert_same(stream(sig.RollingVwap(window), size, px, qty), sig.rolling_vwap(px, qty, window))


@pytest.mark.parametrize("size", CHUNKS + [512, 513])
@pytest.mark.parametrize("window", [1, 2, 20, 600, 3000])
def test_bollinger_z(rng, size, window):
    x = walk(rng, N, start=60000.0)
    x[800:1500] = x[800]  # a flat stretch longer than most windows: exact zeros and reset
    want = sig.bollinger_z(x, window)
    assert_same(stream(sig.BollingerZ(window), size, x), want)
    # the out= path writes the same bits
    z = np.empty(N)
    bz = sig.BollingerZ(window)
    for s in chunked(N, size):
        view = z[s]
        assert bz.update(x[s], out=view) is view
    np.testing.assert_array_equal(z, want)


@pytest.mark.parametrize("size", CHUNKS)
def test_keltner_position(rng, size):
    x = walk(rng, N)
    x[100:400] = x[100]
    want = sig.keltner_position(x, 20, 1.5, atr_span=5)
    assert_same(stream(sig.KeltnerPosition(20, 1.5, atr_span=5), size, x), want)


@pytest.mark.parametrize("size", CHUNKS)
@pytest.mark.parametrize("atr_span", [None, 5])
def test_keltner_position_bars(rng, size, atr_span):
    b = tick_bars(rng, 20_000)
    high, low, close = b.high[:N].copy(), b.low[:N].copy(), b.close[:N].copy()
    high[100:400] = low[100:400] = close[100:400] = close[100]  # flat bars: the ATR decays towards the floor
    want = sig.keltner_position_bars(high, low, close, 20, 1.5, atr_span)
    assert len(want) == N
    assert_same(stream(sig.KeltnerPositionBars(20, 1.5, atr_span), size, high, low, close), want)


@pytest.mark.parametrize("size", CHUNKS)
@pytest.mark.parametrize("window", [1, 9, 3000])
def test_volume_delta(rng, size, window):
    qty = rng.exponential(1.0, N)
    side = rng.choice(np.array([-1, 0, 1], dtype=np.int8), N)
    assert_same(stream(sig.VolumeDelta(window), size, qty, side), sig.volume_delta(qty, side, window))


@pytest.mark.parametrize("size", CHUNKS)
@pytest.mark.parametrize("window", [1, 8, 40, 3000])
def test_momentum_breakout(rng, size, window):
    px, qty = walk(rng, N), rng.exponential(1.0, N)
    kw = dict(min_relvol=0.9, baseline_span=100)
    want = sig.momentum_breakout(px, qty, window, **kw)
    assert (want.signal != 0).any()
    assert_same(stream(sig.MomentumBreakout(window, **kw), size, px, qty), want)


@pytest.mark.parametrize("size", CHUNKS)
def test_iceberg_absorption(rng, size):
    tape = absorption_tape(rng, N)
    want = sig.iceberg_absorption(*tape, min_ratio=1.0)
    assert (want.flag != 0).any()
    assert_same(stream(sig.IcebergAbsorption(1.0), size, *tape), want)


# ---------------------------------------------------------------------------------------------------------------
# markouts: trades and mids cut from one time-ordered stream
# ---------------------------------------------------------------------------------------------------------------


def stream_markouts(data, size: int, *, mids_first: bool, capacity: int = 1024, **horizon):
    """Merge trades and mids by time, cut the merged stream every ``size`` events, feed each piece; returns the
    concatenation of everything resolved and finished."""
    trade_ts, trade_px, trade_side, mid_ts, mid = data
    ts = np.concatenate([trade_ts, mid_ts])
    is_mid = np.concatenate([np.zeros(len(trade_ts), bool), np.ones(len(mid_ts), bool)])
    # ties: mids first or trades first; both are valid time orders
    order = np.lexsort((~is_mid if mids_first else is_mid, ts))
    mk = sig.Markouts(capacity=capacity, **horizon)
    parts, n_t, n_m = [], 0, 0
    for s in chunked(len(order), size):
        piece = order[s]
        k_t, k_m = int((~is_mid[piece]).sum()), int(is_mid[piece].sum())
        parts.append(
            mk.update(trade_ts[n_t : n_t + k_t], trade_px[n_t : n_t + k_t], trade_side[n_t : n_t + k_t],
                      mid_ts[n_m : n_m + k_m], mid[n_m : n_m + k_m])
        )
        n_t, n_m = n_t + k_t, n_m + k_m
        assert mk.n_pending <= n_t
    parts.append(mk.finish())
    return sig.ResolvedMarkouts(*(np.concatenate(f) for f in zip(*parts)))


HORIZONS = [dict(horizon_events=0), dict(horizon_events=3), dict(horizon_ns=0), dict(horizon_ns=400)]


@pytest.mark.parametrize("size", CHUNKS)
@pytest.mark.parametrize("mids_first", [True, False])
@pytest.mark.parametrize("horizon", HORIZONS)
def test_markouts(rng, size, mids_first, horizon):
    data = markout_data(rng, 900, 700)
    data[0][100:110] = data[3][50]  # trades exactly at a mid's timestamp
    data = (np.sort(data[0]),) + data[1:]
    want = sig.markouts(*data, **horizon)
    got = stream_markouts(data, size, mids_first=mids_first, capacity=1, **horizon)
    np.testing.assert_array_equal(got.trade_index, np.arange(len(data[0])))
    np.testing.assert_array_equal(got.valid, want.valid)
    np.testing.assert_array_equal(got.markout, want.markout)


@pytest.mark.parametrize("horizon", HORIZONS)
def test_markouts_pending_grows_without_dropping(rng, horizon):
    trade_ts, trade_px, trade_side, mid_ts, mid = markout_data(rng, 3000, 500)
    mk = sig.Markouts(capacity=4, **horizon)
    first = mk.update(trade_ts, trade_px, trade_side)  # no mid yet: nothing can be decided
    assert len(first.trade_index) == 0 and mk.n_pending == 3000
    # the mids arrive later; the contract only bounds trades by earlier mids, so this is allowed
    rest = mk.update(mid_ts_ns=mid_ts, mid=mid)
    end = mk.finish()
    idx = np.concatenate([rest.trade_index, end.trade_index])
    np.testing.assert_array_equal(idx, np.arange(3000))
    want = sig.markouts(trade_ts, trade_px, trade_side, mid_ts, mid, **horizon)
    np.testing.assert_array_equal(np.concatenate([rest.markout, end.markout]), want.markout)
    np.testing.assert_array_equal(np.concatenate([rest.valid, end.valid]), want.valid)
