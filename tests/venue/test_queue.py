"""Queue-position models on hand-built level histories with answers worked out by hand, hftbacktest's formula
written out independently, and the order of pessimism between the models on random histories."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.exceptions import ConfigError
from workbench.venue.queue import ConservativeQueue, NoQueue, ProbabilisticQueue, QueuePos


def hft_depth(front: float, prev: float, new: float, traded: float, n: float) -> float:
    """hftbacktest's ProbQueueModel::depth with PowerProbQueueFunc(n), transcribed literally (f64 arithmetic)."""
    chg = prev - new - traded
    if chg < 0:
        return min(front, new)
    back = prev - front
    f = lambda x: x**n  # noqa: E731
    prob = f(back) / (f(back) + f(front))
    est = front - (1 - prob) * chg + min(back - prob * chg, 0)
    return min(est, new)


# -- the scenario of the brief: a level of 10, our order of 2, trades of 4, 5, then 3 -------------------------------
@pytest.mark.parametrize("model", [ConservativeQueue(), ProbabilisticQueue(3)], ids=repr)
def test_trades_only_advance_then_fill(model):
    pos = model.join(10)
    assert pos.ahead == 10
    assert model.on_trade(pos, 4) == 0
    model.on_level(pos, 10, 6)          # the diff that shows the trade
    assert model.on_trade(pos, 5) == 0
    model.on_level(pos, 6, 1)
    assert pos.ahead == pytest.approx(1)  # no fill yet, 1 lot ahead
    assert model.on_trade(pos, 3) == 2    # 1 to the queue ahead, 2 reach our order
    assert pos.ahead == 0


def test_conservative_ignores_cancels_unless_the_level_is_smaller():
    m = ConservativeQueue()
    pos = m.join(10)
    m.on_level(pos, 10, 20)   # orders join behind
    m.on_level(pos, 20, 14)   # 6 cancelled: assumed behind us
    assert pos.ahead == 10
    m.on_level(pos, 14, 4)    # the level is smaller than what we thought was ahead
    assert pos.ahead == 4


def test_probabilistic_cancel_in_between_moves_by_the_expectation():
    m = ProbabilisticQueue(power=2)
    pos = m.join(10)
    m.on_level(pos, 10, 20)   # 10 join behind: 10 ahead, 10 behind
    m.on_level(pos, 20, 14)   # 6 cancelled: prob behind = 10^2 / (10^2 + 10^2) = 1/2
    assert pos.ahead == pytest.approx(10 - 0.5 * 6)  # 7
    assert m.on_trade(pos, 4) == 0
    m.on_level(pos, 14, 10)   # the trade's own decrease: not a cancel, not counted twice
    assert pos.ahead == pytest.approx(3)
    assert m.on_trade(pos, 5) == 2
    # the conservative model on the same history is still 1 lot from a fill
    c = ConservativeQueue()
    cp = c.join(10)
    for prev, new in ((10, 20), (20, 14)):
        c.on_level(cp, prev, new)
    c.on_trade(cp, 4)
    c.on_level(cp, 14, 10)
    assert c.on_trade(cp, 5) == 0 and cp.ahead == 1


@pytest.mark.parametrize(
    "front,prev,new,n,expected",
    [
        (2.0, 10, 5, 3, 2 - (8 / 520) * 5),        # mostly behind us: prob = 8^3 / (8^3 + 2^3) = 512 / 520
        (8.0, 10, 4, 1, 8 - 0.8 * 6),              # prob = 2 / 10: 4.8 lots from ahead, 1.2 from behind
        (8.0, 10, 1, 1, 8 - 0.8 * 9),              # 9 cancelled: 7.2 from ahead, 1.8 behind (of 2): 0.8 left
        (8.0, 10, 0, 1, 0.0),                      # the level is gone: nothing ahead
        (2.0, 10, 1, 1, 2 - 0.2 * 9),              # 9 cancelled, prob 8/10: 1.8 from ahead, 7.2 behind
        (5.0, 10, 6, 0, 5 - 0.5 * 4),              # n = 0: half and half
    ],
)
def test_probabilistic_matches_hftbacktest(front, prev, new, n, expected):
    m = ProbabilisticQueue(power=n)
    pos = QueuePos(front)
    m.on_level(pos, prev, new)
    assert pos.ahead == pytest.approx(expected)
    assert pos.ahead == pytest.approx(max(hft_depth(front, prev, new, 0.0, n), 0.0))


def test_probabilistic_no_overflow_for_huge_levels():
    m = ProbabilisticQueue(power=3)
    pos = QueuePos(4e11)
    m.on_level(pos, 10**12, 10**12 - 10**9)
    expected = hft_depth(4e11, 1e12, 1e12 - 1e9, 0.0, 3)
    assert math.isfinite(pos.ahead) and pos.ahead == pytest.approx(expected)


def test_probabilistic_sampled_is_seeded_and_unbiased():
    m = ProbabilisticQueue(power=1, sampled=True)

    def draws(seed, n=4000):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            pos = QueuePos(30.0)
            m.on_level(pos, 100, 80, rng)  # 20 cancelled: prob behind = 70 / 100
            out.append(pos.ahead)
        return np.array(out)

    a, b = draws(7), draws(7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, draws(8))
    assert np.all(a == np.round(a)) and a.min() >= 10 and a.max() <= 30  # whole lots, at most 20 taken ahead
    expected = 30 - 20 * 0.3
    sd = math.sqrt(20 * 0.3 * 0.7 / len(a))
    assert abs(a.mean() - expected) < 4 * sd


def test_no_queue_fills_at_touch():
    m = NoQueue()
    pos = m.join(10)
    assert pos.ahead == 0
    assert m.on_trade(pos, 3) == 3
    m.on_level(pos, 10, 50)
    assert pos.ahead == 0


def test_bad_power():
    with pytest.raises(ConfigError):
        ProbabilisticQueue(power=-1)
    with pytest.raises(ConfigError):
        ProbabilisticQueue(power=float("nan"))


# -- random histories ------------------------------------------------------------------------------------------------
steps = st.lists(
    st.one_of(
        st.tuples(st.just("trade"), st.integers(1, 30)),
        st.tuples(st.just("level"), st.integers(-30, 30)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 50), history=steps, power=st.sampled_from([0.5, 1, 2, 3]))
def test_models_stay_in_bounds_and_in_order(start, history, power):
    """0 <= ahead <= level after every update, and no-queue <= probabilistic <= conservative, always: a more
    pessimistic model never has less ahead, nor fills more."""
    models = [NoQueue(), ProbabilisticQueue(power), ConservativeQueue()]
    pos = [m.join(start) for m in models]
    fills = [0, 0, 0]
    level = start
    for what, x in history:
        if what == "trade":
            x = min(x, level) if level else x
            for k, m in enumerate(models):
                fills[k] += m.on_trade(pos[k], x)
            new = max(level - x, 0)
        else:
            new = max(level + x, 0)
        for k, m in enumerate(models):
            m.on_level(pos[k], level, new)
            assert 0 <= pos[k].ahead <= new + 1e-9
        level = new
        assert pos[0].ahead <= pos[1].ahead + 1e-9 <= pos[2].ahead + 2e-9
        assert fills[0] >= fills[1] >= fills[2]
