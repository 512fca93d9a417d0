"""The heatmap through its state: the size grid against a plain-Python reference, the window that follows the mid,
trades and fills drawn once each however frames are skipped, the log toggle."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from tests.widgets.snapshots import snap
from widgets import BookHeatmap

T0 = 1_700_000_000_000_000_000


def reference_grid(frames, lo, tpr, rows):
    grid = np.zeros((rows, len(frames)))
    for c, (bids, asks) in enumerate(frames):
        for px, q in list(bids) + list(asks):
            r = (px - lo) // tpr
            if 0 <= r < rows and q > 0:
                grid[r, c] += q
    return grid


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.lists(st.tuples(st.integers(900, 1000), st.integers(1, 50)), min_size=1, max_size=6),
                          st.lists(st.tuples(st.integers(1001, 1100), st.integers(1, 50)), min_size=1, max_size=6)),
                min_size=2, max_size=12),
       st.integers(1, 4), st.integers(3, 8))
def test_the_grid_is_the_sum_of_sizes_per_row_and_column(frames, tpr, columns):
    frames = [(sorted(set(b), reverse=True), sorted(set(a))) for b, a in frames]
    h = BookHeatmap(rows=40, columns=columns, ticks_per_row=tpr)
    for i, (b, a) in enumerate(frames):
        h.update(snap(T0 + i * 10**8, bids=b, asks=a))
    times, prices, grid = h.matrix()
    kept = frames[-columns:]
    assert len(times) == len(kept) and times[-1] == np.datetime64((T0 + (len(frames) - 1) * 10**8) // 10**6, "ms")
    np.testing.assert_array_equal(grid, reference_grid(kept, h._lo_ticks, tpr, 40))
    assert np.allclose(np.diff(prices), tpr * 0.5)  # rows of tpr ticks of 0.5


def test_the_window_follows_the_mid_without_jitter():
    h = BookHeatmap(rows=20, columns=10, ticks_per_row=1)
    h.update(snap(T0, bids=[(100, 1)], asks=[(101, 1)]))
    lo = h._lo_ticks
    assert lo <= 100 < 101 < lo + 20
    h.update(snap(T0 + 1, bids=[(103, 1)], asks=[(104, 1)]))  # still in the middle half: no move
    assert h._lo_ticks == lo
    h.update(snap(T0 + 2, bids=[(140, 1)], asks=[(141, 1)]))  # far away: re-centred on the mid
    assert h._lo_ticks <= 140 < 141 < h._lo_ticks + 20 and abs(h._lo_ticks + 10 - 140.5) <= 1


def test_trades_and_fills_are_drawn_once_each_and_coloured_by_side():
    h = BookHeatmap(columns=50)
    t1 = [(1, T0, "X", 101, 3, 1), (2, T0 + 1, "X", 100, 2, -1)]
    h.update(snap(T0, trades=t1))
    t2 = t1 + [(3, T0 + 2, "X", 101, 7, 1), (4, T0 + 3, "Y", 5, 1, 1)]  # the ring still holds the old ones
    h.update(snap(T0 + 10**8, trades=t2, fills=[(5, T0 + 3, "X", 1, 100, 1, 0.01, True)],
                  own_orders=[("X", -1, 102, 2, "c1"), ("Y", 1, 1, 1, "c2")]))
    assert list(h.buys.size) == [3, 7] and list(h.sells.size) == [2]
    assert list(h.buys.y) == [50.5, 50.5] and list(h.sells.y) == [50.0]
    assert list(h.own_fills.y) == [50.0] and list(h.orders.y) == [51.0]
    h.update(snap(T0 + 2 * 10**8, trades=t2, fills=[(5, T0 + 3, "X", 1, 100, 1, 0.01, True)]))
    assert len(h.buys.x) == 2 and len(h.own_fills.x) == 1 and len(h.orders.y) == 0


def test_log_scale_is_a_toggle_of_the_drawing_only():
    h = BookHeatmap(columns=5, ticks_per_row=1)
    for i in range(3):
        h.update(snap(T0 + i, bids=[(100, 9)], asks=[(101, 99)]))
    assert np.nanmax(h.heat.color) == np.float32(np.log1p(99))
    h.log_toggle.value = False
    assert np.nanmax(h.heat.color) == 99 and np.isnan(h.heat.color).any()  # empty levels are background
    assert h.matrix()[2].max() == 99
