"""The L2 book kernels and facade against a plain-Python dict book."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.book.reference import RefBook
from workbench.book import nb
from workbench.book.book import L2Book, TopOfBook
from workbench.enums import (
    F_BATCH_END,
    F_CLEAR,
    K_DEPTH,
    K_ORDER_ADD,
    K_ORDER_DELETE,
    K_ORDER_EXEC,
    K_SNAPSHOT,
    K_TRADE,
)
from workbench.exceptions import ConfigError
from workbench.types import event_dt


def make_events(rows):
    """rows: (kind, side, px, qty, flags)"""
    ev = np.zeros(len(rows), event_dt)
    if rows:
        k, s, p, q, f = zip(*rows)
        ev["kind"], ev["side"], ev["px_ticks"], ev["qty_lots"], ev["flags"] = k, s, p, q, f
    return ev


def ref_top(ref, n):
    b, a = ref.top(n)
    out = np.zeros((4, n), np.int64)
    out[0] = nb.EMPTY_BID_PX
    out[2] = nb.EMPTY_ASK_PX
    for c, (p, q) in enumerate(b):
        out[0, c], out[1, c] = p, q
    for c, (p, q) in enumerate(a):
        out[2, c], out[3, c] = p, q
    return out


def check_against_reference(rows, *, n=3, max_levels=1 << 22, initial_levels=16):
    """Replay ``rows`` batch by batch through L2Book and RefBook and compare everything after each batch.

    The window-only outputs (top-N rows, crossed count) are compared while no level has gone to the overflow map;
    top(), side levels and clamps always.
    """
    book = L2Book(initial_levels=initial_levels, max_levels=max_levels)
    ref = RefBook()
    if not rows:
        assert book.replay(make_events(rows), n).event_ix.shape == (0,)
        return book
    ends = [i for i, r in enumerate(rows) if r[4] & F_BATCH_END]
    start = 0
    for end in ends + ([len(rows) - 1] if not ends or ends[-1] != len(rows) - 1 else []):
        chunk = rows[start : end + 1]
        rec = book.replay(make_events(chunk), n)
        for r in chunk:
            ref.apply_row(*r)
        if chunk[-1][4] & F_BATCH_END:
            assert rec.event_ix.tolist() == [len(chunk) - 1]
            if book.far_levels == 0:
                np.testing.assert_array_equal(rec.levels[0], ref_top(ref, n), err_msg=f"batch end at event {end}")
        bb, bq, ba, aq = ref.best()
        t = book.top()
        # Phantom removal reads the window; a crossed book parked in overflow (never seen in real data) may differ.
        if not (book.far_levels and ref.uncrossed):
            assert (t.bid_px_ticks, t.bid_qty_lots, t.ask_px_ticks, t.ask_qty_lots) == (bb, bq, ba, aq), end
        start = end + 1
    for side, levels in ((1, ref.bids), (-1, ref.asks)):
        px, qty = book.side_levels(side)
        want = sorted(levels.items(), reverse=side > 0)
        if not (book.far_levels and ref.uncrossed):
            assert list(zip(px.tolist(), qty.tolist())) == want
    if book.far_levels == 0:
        assert book.n_crossed == ref.crossed
    if not (book.far_levels and ref.uncrossed):
        assert book.n_clamped == ref.clamped
    if book.far_levels == 0:
        assert book.n_uncrossed == ref.uncrossed
    return book


def test_absolute_levels_and_deletes():
    B = F_BATCH_END
    rows = [
        (K_SNAPSHOT, 1, 100, 5, F_CLEAR), (K_SNAPSHOT, 1, 98, 2, 0), (K_SNAPSHOT, -1, 102, 7, 0),
        (K_SNAPSHOT, -1, 105, 1, B),
        (K_DEPTH, 1, 100, 0, B),            # best bid deleted: next is 98
        (K_DEPTH, -1, 101, 3, B),           # better ask
        (K_DEPTH, -1, 101, 0, 0), (K_DEPTH, -1, 102, 0, B),  # two deletes in one message: best ask 105
        (K_DEPTH, 1, 98, 0, B),             # bid side empty
        (K_TRADE, 1, 105, 1, B),            # trades leave the book alone
    ]
    book = check_against_reference(rows)
    assert book.top().bid_px_ticks is None and book.top().ask_px_ticks == 105


def test_deleting_unknown_far_level_does_not_grow_the_window():
    book = check_against_reference([(K_DEPTH, 1, 100, 5, F_BATCH_END), (K_DEPTH, 1, 10**15, 0, F_BATCH_END)])
    assert book.bid.shape[0] == 16


def test_prices_far_apart_use_the_overflow_map_and_stay_exact():
    rows = [(K_DEPTH, 1, 1_000_000, 5, 0), (K_DEPTH, -1, 1_000_001, 5, F_BATCH_END),
            (K_DEPTH, 1, 3, 1, F_BATCH_END),              # far bid (a quarter of the price and less)
            (K_DEPTH, -1, 10**12, 2, F_BATCH_END),        # absurd ask
            (K_DEPTH, 1, 1_000_000, 0, F_BATCH_END),      # the window's bid side empties: overflow is the best
            (K_DEPTH, 1, 3, 0, F_BATCH_END)]
    book = L2Book(initial_levels=16, max_levels=1024)
    book.replay(make_events(rows[:4]), 1)
    assert book.far_levels == 2 and book.bid.shape[0] <= 1024
    assert book.top().bid_px_ticks == 1_000_000
    book.apply(make_events(rows[4:5]))
    assert book.top().bid_px_ticks == 3  # from the overflow map
    assert book.side_levels(-1)[0].tolist() == [1_000_001, 10**12]


def test_window_follows_a_trending_price():
    # a price walking 10x the window width, levels left behind: the window recentres, nothing is lost
    rows = [(K_DEPTH, 1, 9_000, 1, 0), (K_DEPTH, -1, 50_000, 1, F_BATCH_END)]  # deep levels on both sides
    for t in range(0, 10_000, 7):
        rows.append((K_DEPTH, 1, 10_000 + t, 1, 0))
        rows.append((K_DEPTH, -1, 10_001 + t, 1, 0))
        if t:
            rows.append((K_DEPTH, -1, 10_001 + t - 7, 0, 0))
        rows.append((K_DEPTH, 1, 10_000 + t - 500, 0, F_BATCH_END))
    book = check_against_reference(rows, max_levels=1024, n=2)
    assert book.bid.shape[0] <= 1024 and book.far_levels > 0
    assert book.top().ask_px_ticks == 10_001 + 9_996 and book.levels(1)[2, 0] == 10_001 + 9_996


def test_order_level_deltas_clamp_and_stale_flags():
    B = F_BATCH_END
    rows = [
        (K_ORDER_ADD, 1, 100, 5, B), (K_ORDER_ADD, 1, 99, 4, B), (K_ORDER_ADD, -1, 101, 3, B),
        (K_ORDER_EXEC, 1, 100, 5, B),    # best bid level emptied: side goes stale (99 may be out of date)
    ]
    book = check_against_reference(rows)
    assert book.stale == (True, False)
    book.apply(make_events([(K_ORDER_ADD, 1, 100, 2, B)]))  # a better price than 99: trusted again
    assert book.stale == (False, False)
    book.apply(make_events([(K_ORDER_DELETE, -1, 101, 9, B)]))  # more than the level held
    assert book.n_clamped == 1 and book.stale == (False, True)


def test_an_order_added_through_the_opposite_side_removes_phantoms():
    B = F_BATCH_END
    rows = [(K_ORDER_ADD, -1, 105, 1, B), (K_ORDER_ADD, -1, 107, 1, B), (K_ORDER_ADD, 1, 100, 1, B),
            (K_ORDER_ADD, 1, 106, 4, B)]  # through 105: that ask was a phantom; 107 stays
    book = check_against_reference(rows)
    assert book.n_uncrossed == 1 and book.top().ask_px_ticks == 107 and book.stale == (False, True)
    assert book.n_crossed == 0


def test_scans_across_wide_gaps_and_window_growth():
    """The next best level is found across gaps of every width around the 8-level steps of the scans, on both
    sides, after deletes and after phantom removal, while the window grows from 2 levels (its state carried over)."""
    B = F_BATCH_END
    rows = [(K_DEPTH, 1, 500, 1, 0), (K_DEPTH, -1, 5000, 1, 0)]  # deep levels the scans may have to reach
    px = 1000
    for gap in (1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 200):
        rows += [(K_DEPTH, 1, px, 1, 0), (K_DEPTH, 1, px - gap, 2, 0), (K_DEPTH, -1, px + 1, 3, 0),
                 (K_DEPTH, -1, px + 1 + gap, 4, B),
                 (K_DEPTH, 1, px, 0, B), (K_DEPTH, -1, px + 1, 0, B),  # best levels deleted: scans across the gap
                 (K_ORDER_ADD, 1, px + gap, 1, B),
                 (K_ORDER_ADD, -1, px - gap, 5, B),  # the bids at px + gap and px - gap were phantoms
                 (K_DEPTH, -1, px - gap, 0, 0), (K_DEPTH, -1, px + 1 + gap, 0, B)]
        px += 3 * gap + 50
    book = check_against_reference(rows, n=2, initial_levels=2)
    assert book.n_uncrossed == 2 * 12 and book.bid.shape[0] > 2
    assert book.top() == TopOfBook(500, 1, 5000, 1)


def test_crossed_books_are_counted_and_can_stop_the_replay():
    B = F_BATCH_END
    ev = make_events([(K_DEPTH, 1, 100, 1, 0), (K_DEPTH, -1, 101, 1, B), (K_DEPTH, 1, 101, 1, B),
                      (K_DEPTH, 1, 101, 0, B)])
    book = L2Book()
    assert book.apply(ev, stop_on_crossed=True) == 3
    assert book.crossed and book.n_crossed == 1
    assert book.apply(ev, 3) == 4 and not book.crossed


def test_levels_and_depth_within():
    B = F_BATCH_END
    book = L2Book()
    book.apply(make_events([(K_DEPTH, 1, 100, 1, 0), (K_DEPTH, 1, 97, 2, 0), (K_DEPTH, 1, 90, 4, 0),
                            (K_DEPTH, -1, 103, 5, 0), (K_DEPTH, -1, 104, 6, B)]))
    lv = book.levels(4)
    assert lv[0].tolist() == [100, 97, 90, nb.EMPTY_BID_PX] and lv[1].tolist() == [1, 2, 4, 0]
    assert lv[2].tolist()[:2] == [103, 104] and lv[3].tolist() == [5, 6, 0, 0]
    assert book.depth_within(3) == (3, 11)
    assert book.depth_within(0) == (1, 5)
    assert L2Book().levels(2)[1].tolist() == [0, 0] and L2Book().top().bid_px_ticks is None


def test_bad_config():
    with pytest.raises(ConfigError):
        L2Book(initial_levels=10, max_levels=5)


kinds = st.sampled_from([K_DEPTH, K_DEPTH, K_SNAPSHOT, K_ORDER_ADD, K_ORDER_EXEC, K_ORDER_DELETE, K_TRADE])
row = st.tuples(
    kinds,
    st.sampled_from([1, -1, 0]),
    st.one_of(st.integers(0, 60), st.integers(-(10**6), 10**6), st.integers(-(2**40), 2**40)),
    st.integers(0, 9),
    st.sampled_from([0, F_BATCH_END, F_BATCH_END, F_CLEAR]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(row, max_size=80), st.sampled_from([64, 1024, 1 << 22]))
def test_matches_reference_on_any_sequence(rows, max_levels):
    check_against_reference(rows, max_levels=max_levels)


def test_kernel_without_jit_matches():
    """The kernel's Python source (numba's py_func) gives the same result: its logic does not hinge on the JIT."""
    rows = [(K_DEPTH, 1, 5, 3, 0), (K_DEPTH, -1, 9, 2, F_BATCH_END), (K_DEPTH, 1, 5, 0, F_BATCH_END)]
    ev = make_events(rows)
    outs = []
    for fn in (nb.apply_events_nb, nb.apply_events_nb.py_func):
        bid, ask = np.zeros(16, np.int64), np.zeros(16, np.int64)
        state = np.zeros(nb.ST_SIZE, np.int64)
        state[nb.ST_BEST_BID] = state[nb.ST_BEST_ASK] = -1
        out_ix, out_lv = np.zeros(2, np.int64), np.zeros((2, 4, 2), np.int64)
        res = fn(ev["kind"], ev["side"], ev["px_ticks"], ev["qty_lots"], ev["flags"], 0, bid, ask, state,
                 False, out_ix, out_lv)
        outs.append((tuple(res), out_ix.tolist(), out_lv.tolist(), state.tolist()))
    assert outs[0] == outs[1]
