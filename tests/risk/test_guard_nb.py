"""The compiled guard (workbench.risk.nb, driven step by step by CompiledGuard) against the Python RiskGuard: for any
sequence of books, fills, equity marks, ticks and orders, the same verdicts, states, events (reasons, values and
thresholds, word for word) and actions. This is what lets the compiled backtest run the guard's rules in its
kernel: they are held equal to the guard that runs live."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.risk import RiskConfig, RiskGuard
from workbench.risk.compiled import CompiledGuard

SYM = "BTCUSDT"
MS = 1_000_000

configs = st.builds(
    lambda dd, hl, x, win, ns, stale, frac, action, stop: RiskConfig(
        max_daily_drawdown_frac=dd, max_hourly_loss_frac=hl, spread_widen_x=x, spread_window_ns=win * 1000 * MS,
        spread_min_samples=ns, spread_sample_ns=10 * MS, stale_after_ns=stale * MS, max_depth_frac=frac,
        concentration_action=action, trade_stop_ticks=stop),
    st.sampled_from([0.0001, 0.001, 0.015]), st.sampled_from([0.0002, 0.002, 0.02]),
    st.sampled_from([1.2, 1.5, 3.0]), st.integers(1, 5), st.integers(1, 8), st.integers(5, 400),
    st.sampled_from([0.05, 0.1, 0.29, 0.5, 1.0]), st.sampled_from(["resize", "reject"]),
    st.one_of(st.none(), st.integers(1, 6)))

op = st.one_of(
    # (an empty side now and then: most books are two-sided, or nothing but the pauses would ever be seen)
    st.tuples(st.just("book"), st.integers(0, 300), st.integers(987, 1010).map(lambda v: None if v < 990 else v),
              st.integers(-2, 12).map(lambda v: None if v < 0 else v), st.integers(0, 60), st.integers(0, 60)),
    st.tuples(st.just("fill"), st.integers(0, 50), st.sampled_from([1, -1]), st.integers(985, 1015),
              st.integers(1, 9)),
    st.tuples(st.just("mark"), st.integers(0, 2000), st.integers(-3_000, 3_000)),
    st.tuples(st.just("tick"), st.integers(0, 500)),
    st.tuples(st.just("order"), st.integers(0, 50), st.sampled_from([1, -1]), st.integers(1, 12),
              st.sampled_from(["strategy", "strategy", "guard"])),
)


def run(config, ops, t0):
    py, nb = RiskGuard(config, (SYM,)), CompiledGuard(config, SYM)
    t = t0
    for o in ops:
        t += o[1] * MS
        if o[0] == "book":
            bid = o[2]
            ask = None if bid is None or o[3] is None else bid + o[3]
            if bid is None and o[3] is not None:
                ask = 1000 + o[3]
            for g in (py, nb):
                g.on_book(t, SYM, bid, ask, o[4], o[5])
        elif o[0] == "fill":
            for g in (py, nb):
                g.on_fill(t, SYM, o[2], o[3], o[4])
        elif o[0] == "mark":
            for g in (py, nb):
                g.on_mark(t, 1_000_000 + o[2] * 10)
        elif o[0] == "tick":
            for g in (py, nb):
                g.tick(t)
        else:
            a = py.check_order(t, SYM, o[2], o[3], source=o[4])
            b = nb.check_order(t, SYM, o[2], o[3], source=o[4])
            assert (a.allowed, a.qty_lots) == (b.allowed, b.qty_lots), o
        assert not nb.bailed
        assert py.state == nb.state
        assert py.position_lots(SYM) == nb.position_lots()
        assert py.drain_events() == nb.drain_events(), o
        assert [a.kind for a in py.drain_actions()] == [a.kind for a in nb.drain_actions()], o


@settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 300)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(configs, st.lists(op, max_size=120), st.sampled_from([0, 86_400_000 * MS - 3_000 * MS]))
def test_compiled_guard_equals_the_python_guard(config, ops, t0):
    run(config, ops, t0)


def test_compiled_guard_trips_every_rule_it_runs():
    cfg = RiskConfig(max_daily_drawdown_frac=0.001, max_hourly_loss_frac=0.002, spread_widen_x=1.5,
                     spread_window_ns=1000 * MS, spread_min_samples=2, spread_sample_ns=10 * MS,
                     stale_after_ns=50 * MS, max_depth_frac=0.1, trade_stop_ticks=2)
    ops = [("book", 0, 1000, 2, 50, 50), ("book", 20, 1000, 2, 50, 50), ("book", 20, 1000, 9, 50, 50),
           ("book", 20, 1000, 2, 50, 50), ("order", 1, 1, 9, "strategy"), ("fill", 1, 1, 1001, 3),
           ("book", 1, 997, 2, 50, 50), ("order", 1, 1, 2, "strategy"), ("tick", 100), ("book", 1, None, 2, 5, 5),
           ("mark", 1, 0), ("mark", 1, -300), ("order", 1, -1, 3, "guard"), ("order", 1, 1, 3, "strategy")]
    py = RiskGuard(cfg, (SYM,))
    run(cfg, ops, 0)
    # the same sequence through the Python guard alone, to see what it covered
    t = 0
    rules = set()
    for o in ops:
        t += o[1] * MS
        if o[0] == "book":
            py.on_book(t, SYM, o[2], None if o[2] is None else o[2] + o[3], o[4], o[5])
        elif o[0] == "fill":
            py.on_fill(t, SYM, o[2], o[3], o[4])
        elif o[0] == "mark":
            py.on_mark(t, 1_000_000 + o[2] * 10)
        elif o[0] == "tick":
            py.tick(t)
        else:
            py.check_order(t, SYM, o[2], o[3], source=o[4])
        rules |= {e.rule for e in py.drain_events()}
    assert {"spread", "stale", "concentration", "trade_stop", "daily_drawdown", "hourly_loss"} <= rules, rules


def test_configs_the_kernels_cannot_run_are_refused():
    from workbench.risk.nb import guard_state

    with pytest.raises(ValueError, match="spread_sample_ns"):
        guard_state(RiskConfig(spread_sample_ns=0))
    with pytest.raises(ValueError, match="too large"):
        guard_state(RiskConfig(max_depth_frac=0.1234567891234))
