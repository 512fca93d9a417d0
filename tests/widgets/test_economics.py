"""The calculator through its state: set an input's value as the browser would, read the result traits, the text
shown and the plot's marks. No browser, no kernel (ipywidgets' comms are inert without one)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from widgets.economics import EconomicsCalculator, fills_from_journal, fills_from_snapshot
from workbench.economics import UnitEconomics, compare, economics_from_fills
from workbench.live import Snapshot

T0 = 1_723_161_600_000_000_000
S = 1_000_000_000


def css(w) -> set[str]:
    return set(w._dom_classes)


def test_the_seeds_example_gives_480_gross_255_net_and_3_bp():
    calc = EconomicsCalculator()
    assert calc.gross_per_day == pytest.approx(480.0)
    assert calc.net_per_day == pytest.approx(255.0)
    assert calc.commissions_per_day == pytest.approx(225.0)
    assert calc.net_per_month == pytest.approx(255.0 * 21)
    assert calc.net_bp_taker == pytest.approx(3.0)          # 12 - 5 - 3 - 1
    assert calc.cost_bp_taker == pytest.approx(9.0)
    assert calc.net_bp_maker == pytest.approx(12.0)         # 12 + 1 rebate - 1 other
    assert calc.recovery_per_month == pytest.approx(1_000.0)  # 5 M a month, 2 bp
    assert calc.recovery_per_year == pytest.approx(12_000.0)
    assert calc.error == ""
    assert calc.fields["net_per_day"].value == "$255.00"
    assert calc.fields["gross_per_day"].value == "$480.00"
    assert calc.fields["net_bp_taker"].value == "3.00 bp"
    assert "wb-calc-net-day" in css(calc.fields["net_per_day"])
    assert "wb-calc" in css(calc)


def test_every_input_recomputes_through_workbench_economics():
    calc = EconomicsCalculator()
    n = calc.recomputed
    calc.inputs["win_rate"].value = 50           # percent, as typed
    assert calc.recomputed == n + 1
    want = UnitEconomics(trades_per_day=150, win_rate=0.5, avg_win=12, avg_loss=10, cost_per_round_trip=1.5)
    assert calc.net_per_day == pytest.approx(want.net_per_day) == pytest.approx(-75.0)
    assert calc.fields["net_per_day"].value == "-$75.00"
    calc.inputs["trades_per_day"].value = 300
    assert calc.net_per_day == pytest.approx(-150.0)
    calc.inputs["commission"].value = -0.5       # rebates beyond the costs
    assert calc.net_per_day == pytest.approx(300 * (0.5 * 12 - 0.5 * 10 + 0.5))
    calc.inputs["days_per_month"].value = 30
    assert calc.net_per_month == pytest.approx(calc.net_per_day * 30)
    calc.inputs["slippage_bp"].value = 1
    assert calc.net_bp_taker == pytest.approx(5.0)
    calc.inputs["maker_rebate_bp"].value = -2    # a maker fee instead of a rebate
    assert calc.net_bp_maker == pytest.approx(9.0) and calc.cost_bp_maker == pytest.approx(3.0)
    calc.inputs["monthly_volume"].value = 1e6
    calc.inputs["bps_lost"].value = 5
    assert calc.recovery_per_month == pytest.approx(500.0)


def test_inputs_have_stable_descriptions_and_dom_classes():
    calc = EconomicsCalculator()
    want = {"trades_per_day": "wb-calc-trades-per-day", "win_rate": "wb-calc-win-rate", "avg_win": "wb-calc-avg-win",
            "avg_loss": "wb-calc-avg-loss", "commission": "wb-calc-commission",
            "gross_edge_bp": "wb-calc-gross-edge-bp", "taker_fee_bp": "wb-calc-taker-fee-bp",
            "maker_rebate_bp": "wb-calc-maker-rebate-bp", "slippage_bp": "wb-calc-slippage-bp",
            "other_bp": "wb-calc-other-bp", "monthly_volume": "wb-calc-monthly-volume", "bps_lost": "wb-calc-bps-lost"}
    for name, cls in want.items():
        w = calc.inputs[name]
        assert cls in css(w) and w.description and not w.continuous_update, name
    assert calc.inputs["win_rate"].description == "Win rate (%)"
    for name, (_, cls, _) in __import__("widgets.economics", fromlist=["_RESULTS"])._RESULTS.items():
        assert cls in css(calc.fields[name])
    # the module docstring lists every class a browser test may look for
    doc = __import__("widgets.economics", fromlist=["__doc__"]).__doc__
    for w in [*calc.inputs.values(), *calc.fields.values(), calc.figure, calc.vary, calc.period, calc.compare_side,
              calc.compare_table, calc.edge_table, calc.error_field, calc.realised_box]:
        for c in css(w) - {"wb-calc-input", "wb-calc-result"}:
            assert f"``{c}``" in doc, c


def test_the_plot_shows_net_profit_as_an_input_varies_with_the_current_point_marked():
    calc = EconomicsCalculator()
    x, y = calc._curve.x, calc._curve.y
    assert len(x) == len(y) > 10 and x[0] == 0 and x[-1] == 100       # win rate 0..100 %
    assert calc._now.x.tolist() == [60.0] and calc._now.y[0] == pytest.approx(255.0)
    # the current point sits on the curve, and the curve crosses 0 at the breakeven win rate
    assert np.interp(60.0, x, y) == pytest.approx(255.0)
    assert np.interp(100 * calc.breakeven_win_rate, x, y) == pytest.approx(0.0, abs=1e-9)
    calc.period.value = "month"
    assert calc._now.y[0] == pytest.approx(255.0 * 21) and "month" in calc._ax_y.label
    calc.vary.value = "trades_per_day"
    assert calc._now.x.tolist() == [150.0] and calc._curve.x[-1] == pytest.approx(300.0)
    assert np.interp(150.0, calc._curve.x, calc._curve.y) == pytest.approx(255.0 * 21)
    calc.vary.value = "avg_loss"
    assert calc._curve.x[0] > 0                                        # a loss of 0 is not a plan
    calc.inputs["avg_loss"].value = 12
    assert calc._now.x.tolist() == [12.0] and calc._now.y[0] == pytest.approx(calc.net_per_month)


def test_inputs_that_make_no_plan_show_why_and_keep_the_rest():
    calc = EconomicsCalculator()
    calc.inputs["avg_win"].value = 0
    assert "avg_win" in calc.error and "avg_win" in calc.error_field.value
    assert math.isnan(calc.net_per_day) and calc.fields["net_per_day"].value == "&mdash;"
    assert len(calc._curve.x) == 0
    assert calc.net_bp_taker == pytest.approx(3.0) and calc.recovery_per_month == pytest.approx(1000.0)
    calc.inputs["avg_win"].value = 12
    assert calc.error == "" and calc.net_per_day == pytest.approx(255.0)


def fills_frame() -> pd.DataFrame:
    # two round trips on one day: +2.0 and -1.0 gross, fees 0.1 a fill
    rows = [(T0, "BTCUSDT", 1, 100.0, 1.0, 0.1, 100.0), (T0 + S, "BTCUSDT", -1, 102.0, 1.0, 0.1, 102.0),
            (T0 + 2 * S, "BTCUSDT", -1, 101.0, 1.0, 0.1, 101.0), (T0 + 3 * S, "BTCUSDT", 1, 102.0, 1.0, 0.1, 102.0)]
    return pd.DataFrame(rows, columns=["ts_ns", "symbol", "side", "px", "qty", "fee", "mid_px"])


def test_planned_vs_realised_from_a_fills_table():
    calc = EconomicsCalculator()
    assert calc.realised is None and calc.comparison is None and calc.realised_box.layout.display == "none"
    r = calc.set_fills(fills_frame(), days=1.0)
    assert r.n_round_trips == 2 and calc.realised_box.layout.display is None
    assert calc.realised_net_per_day == pytest.approx(2.0 - 1.0 - 0.4)
    assert calc.realised_field.value == "$0.60"
    want = compare(calc.plan, economics_from_fills(fills_frame(), days=1.0), calc.budget)
    pd.testing.assert_frame_equal(calc.comparison, want)
    assert "net per day" in calc.compare_table.value and "realised" in calc.compare_table.value
    assert "2 round trips" in calc.realised_title.value
    # the plan side follows the inputs; the realised side stays
    calc.inputs["win_rate"].value = 50
    assert calc.comparison.loc["net per day", "planned"] == pytest.approx(-75.0)
    assert calc.comparison.loc["net per day", "realised"] == pytest.approx(0.6)
    calc.compare_side.value = "maker"
    assert calc.comparison.loc["net (bp)", "planned"] == pytest.approx(12.0)
    calc.clear_realised()
    assert calc.comparison is None and calc.compare_table.value == "" and math.isnan(calc.realised_net_per_day)


def test_the_live_sides_fills_in_the_fills_contract():
    fills = [[1, T0, "BTCUSDT", 1, 10_000, 100_000_000, 0.1, True],
             [2, T0 + S, "BTCUSDT", -1, 10_200, 100_000_000, 0.1, True]]
    snap = Snapshot(ts_ns=T0 + 2 * S, running=True, paused=False, guard_state="ACTIVE", halted_by=None, tops={},
                    in_sync={}, positions={"BTCUSDT": 0}, cash=0.0, fees=0.2, equity_change=1.8, open_orders=0,
                    counters={}, last_error=None, instruments={"BTCUSDT": ["0.01", "0.00000001"]}, fills=fills)
    f = fills_from_snapshot(snap)
    assert f["px"].tolist() == [100.0, 102.0] and f["qty"].tolist() == [1.0, 1.0] and f["side"].dtype == np.int8
    calc = EconomicsCalculator()
    r = calc.set_snapshot(snap, days=1.0)
    assert r.n_round_trips == 1 and r.net_pnl == pytest.approx(2.0 - 0.2)
    assert "live" in calc.realised_title.value
    # the journal keeps fees in units of tick x lot (1e-10 USDT here)
    journal = pd.DataFrame({"seq": [1, 2], "ts_ns": [T0, T0 + S], "symbol": ["BTCUSDT"] * 2, "side": [1, -1],
                            "px_ticks": [10_000, 10_200], "qty_lots": [100_000_000] * 2,
                            "fee_units": [1_000_000_000] * 2, "is_maker": [1, 1]})
    j = fills_from_journal(journal, {"BTCUSDT": ["0.01", "0.00000001"]})
    assert j["fee"].tolist() == pytest.approx([0.1, 0.1]) and j["px"].tolist() == [100.0, 102.0]
    r = calc.set_journal_fills(journal, {"BTCUSDT": ["0.01", "0.00000001"]}, days=1.0)
    assert r.net_pnl == pytest.approx(1.8)
    empty = fills_from_snapshot(SimpleNamespace(fills=[], instruments={}))
    assert calc.set_fills(empty).n_round_trips == 0
    with pytest.raises(Exception, match="no instrument"):
        fills_from_snapshot(SimpleNamespace(fills=fills, instruments={}))


def test_a_backtest_result_feeds_the_realised_side():
    from workbench.backtest import BacktestResult

    f = fills_frame()
    eq = pd.DataFrame({"ts_ns": [T0, T0 + 4 * S], "equity": [1e5, 1e5], "cash": [1e5, 1e5], "position": [0.0, 0.0],
                       "mid_px": [100.0, 102.0]})
    empty = pd.DataFrame()
    res = BacktestResult(f, empty, eq, empty, empty, {}, {}, {})
    calc = EconomicsCalculator()
    r = calc.set_backtest(res)
    assert r.n_round_trips == 2 and r.days == pytest.approx(4 / 86_400)   # the run's length
    assert calc.realised_net_per_day == pytest.approx(0.6 * 86_400 / 4)
    assert "backtest" in calc.realised_title.value
