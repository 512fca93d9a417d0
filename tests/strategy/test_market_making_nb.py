"""The market maker's decision kernel against the rule written plainly (the Python body MarketMaker had before the
kernel), compiled and uncompiled: the same cancels and the same quotes for any book, position and open orders."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.strategy.nb import NONE, mm_decide_nb
from workbench.strategy.orders import OrderState


def reference(bid, ask, pos, q, half, skew_ticks, max_pos, orders):
    """MarketMaker.requote as it was written in Python: returns (cancelled indices, sends [(side, px)])."""
    if bid is None or ask is None:
        return [], []
    skew = int(round(skew_ticks * pos / q))
    targets = {1: bid - half - skew, -1: ask + half - skew}
    on = {1: pos + q <= max_pos * q, -1: pos - q >= -max_pos * q}
    kept, cancelled = {}, []
    for i, (side, px, state) in enumerate(orders):
        if state in (OrderState.PENDING_NEW, OrderState.PENDING_CANCEL):
            continue
        if on[side] and px == targets[side] and side not in kept:
            kept[side] = i
        else:
            cancelled.append(i)
    busy = {side for side, _, state in orders if state is OrderState.PENDING_NEW}
    return cancelled, [(side, targets[side]) for side in (1, -1) if on[side] and side not in kept and side not in busy]


orders_st = st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(95, 106),
                               st.sampled_from([OrderState.PENDING_NEW, OrderState.NEW, OrderState.PARTIALLY_FILLED,
                                                OrderState.PENDING_CANCEL])), max_size=6)


def kernel(fn, bid, ask, pos, q, half, skew_ticks, max_pos, orders):
    n = len(orders)
    cancel = np.zeros(n, np.int64)
    sb, pb, sa, pa = fn(NONE if bid is None else bid, NONE if ask is None else ask, pos, q, half, skew_ticks, max_pos,
                        np.array([o[0] for o in orders], np.int64), np.array([o[1] for o in orders], np.int64),
                        np.array([int(o[2]) for o in orders], np.int64), n, cancel)
    sends = ([(1, int(pb))] if sb else []) + ([(-1, int(pa))] if sa else [])
    return [i for i in range(n) if cancel[i]], sends


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.none(), st.integers(98, 102)), st.integers(0, 3), st.integers(-40, 40), st.integers(1, 10),
       st.integers(0, 3), st.sampled_from([0.0, 0.5, 1.5, 2.0, 0.25]), st.integers(0, 5), orders_st)
def test_decision_kernel_equals_the_plain_rule(bid, spread, pos, q, half, skew, max_pos, orders):
    ask = None if bid is None else bid + 1 + spread
    want = reference(bid, ask, pos, q, half, skew, max_pos, orders)
    assert kernel(mm_decide_nb, bid, ask, pos, q, half, skew, max_pos, orders) == want
    assert kernel(mm_decide_nb.py_func, bid, ask, pos, q, half, skew, max_pos, orders) == want
