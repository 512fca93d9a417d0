"""Unit economics: the plan (per-trade averages -> per day), the edge budget in bp, and measurement from fills."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench.economics as econ
from workbench.backtest.metrics import round_trips
from workbench.economics import (
    EdgeBudget,
    RealizedEconomics,
    UnitEconomics,
    ValueRecovery,
    compare,
    economics_from_fills,
    value_recovery,
)
from workbench.exceptions import ConfigError

S = 1_000_000_000
DAY = 86_400 * S
JAN1 = 19_723 * DAY  # 2024-01-01T00:00Z


def desk(**kw) -> UnitEconomics:
    args = dict(trades_per_day=150, win_rate=0.6, avg_win=12.0, avg_loss=10.0, cost_per_round_trip=1.5)
    return UnitEconomics(**(args | kw))


def test_public_names():
    assert sorted(econ.__all__) == sorted([
        "UnitEconomics", "EdgeBudget", "ValueRecovery", "value_recovery", "RealizedEconomics",
        "economics_from_fills", "compare",
    ])


# --- the plan ---------------------------------------------------------------------------------------------------------

def test_check_150_trades_480_gross_255_net():
    u = desk()
    assert u.gross_per_day == pytest.approx(480.0)
    assert u.commissions_per_day == pytest.approx(225.0)
    assert u.net_per_day == pytest.approx(255.0)
    assert u.gross_per_month == pytest.approx(480.0 * 21)
    assert u.net_per_month == pytest.approx(255.0 * 21)
    assert u.expectancy_per_trade == pytest.approx(255.0 / 150)
    # (avg_loss + cost) / (avg_win + avg_loss) = 11.5 / 22
    assert u.breakeven_win_rate == pytest.approx(11.5 / 22)
    assert desk(days_per_month=30).net_per_month == pytest.approx(255.0 * 30)


def test_breakeven_win_rate_nets_zero():
    u = desk()
    assert desk(win_rate=u.breakeven_win_rate).net_per_day == pytest.approx(0.0, abs=1e-9)
    # costs that no win rate can pay for
    assert desk(avg_win=1.0, avg_loss=1.0, cost_per_round_trip=2.0).breakeven_win_rate > 1


def test_table_shows_inputs_and_results():
    t = desk().table()
    assert list(t.columns) == ["value", "unit"]
    assert t.loc["gross per day", "value"] == pytest.approx(480.0)
    assert t.loc["net per day", "value"] == pytest.approx(255.0)
    assert t.loc["win rate", "value"] == pytest.approx(0.6)
    assert t.loc["win rate", "unit"] == "fraction"
    assert t.loc["net per month", "value"] == pytest.approx(255.0 * 21)


def test_frozen_and_keyword_only():
    u = desk()
    with pytest.raises(dataclasses.FrozenInstanceError):
        u.win_rate = 0.9
    with pytest.raises(TypeError):
        UnitEconomics(150, 0.6, 12.0, 10.0, 1.5)


@pytest.mark.parametrize("field,value", [
    ("trades_per_day", -1), ("trades_per_day", math.nan), ("trades_per_day", True),
    ("win_rate", 1.01), ("win_rate", -0.01), ("win_rate", math.nan),
    ("avg_win", 0.0), ("avg_win", math.inf), ("avg_loss", -10.0), ("avg_loss", math.nan),
    ("cost_per_round_trip", math.nan), ("cost_per_round_trip", "1.5"), ("days_per_month", 0),
])
def test_plan_rejects_bad_inputs(field, value):
    with pytest.raises(ConfigError, match=field):
        desk(**{field: value})


def test_plan_accepts_edges_and_a_net_rebate():
    assert desk(win_rate=0.0).gross_per_day == pytest.approx(-1500.0)
    assert desk(win_rate=1).gross_per_day == pytest.approx(1800.0)
    assert desk(trades_per_day=0).net_per_day == 0.0
    assert desk(cost_per_round_trip=-0.5).net_per_day == pytest.approx(480.0 + 75.0)


# --- the edge budget --------------------------------------------------------------------------------------------------

def test_check_edge_budget_taker_3bp_maker_12bp():
    b = EdgeBudget(gross_edge_bp=12, taker_fee_bp=5, slippage_bp=3, other_bp=1, maker_rebate_bp=1)
    assert b.net_bp_taker == pytest.approx(3.0)
    assert b.net_bp_maker == pytest.approx(12.0)
    t = b.side_by_side()
    assert list(t.columns) == ["taker", "maker"]
    assert list(t.index) == ["gross edge", "fee/rebate", "slippage", "other", "net"]
    assert t.loc["net", "taker"] == pytest.approx(3.0)
    assert t.loc["net", "maker"] == pytest.approx(12.0)
    assert t.loc["fee/rebate", "taker"] == -5.0 and t.loc["fee/rebate", "maker"] == 1.0
    assert t.loc["slippage", "maker"] == 0.0
    # each column adds up to its net row
    assert t.drop(index="net").sum().to_list() == pytest.approx(t.loc["net"].to_list())


def test_edge_budget_maker_slippage_and_maker_fee():
    b = EdgeBudget(gross_edge_bp=4, taker_fee_bp=5, slippage_bp=2, maker_rebate_bp=-1, maker_slippage_bp=0.5)
    assert b.net_bp_taker == pytest.approx(-3.0)
    assert b.net_bp_maker == pytest.approx(2.5)
    assert b.side_by_side().loc["fee/rebate", "maker"] == -1.0


@pytest.mark.parametrize("field,value", [
    ("gross_edge_bp", math.nan), ("taker_fee_bp", -5), ("slippage_bp", -1), ("other_bp", -0.1),
    ("maker_rebate_bp", math.inf), ("maker_slippage_bp", -1),
])
def test_edge_budget_rejects_bad_inputs(field, value):
    args = dict(gross_edge_bp=12, taker_fee_bp=5, slippage_bp=3) | {field: value}
    with pytest.raises(ConfigError, match=field):
        EdgeBudget(**args)


def test_value_recovery():
    v = value_recovery(5_000_000, 2)
    assert isinstance(v, ValueRecovery)
    assert v.per_month == pytest.approx(1_000.0) and v.per_year == pytest.approx(12_000.0)
    per_month, per_year = value_recovery(1_000_000, 0.5, months_per_year=6)
    assert (per_month, per_year) == pytest.approx((50.0, 300.0))
    for bad in ((-1, 2), (1e6, -2), (math.nan, 1), (1e6, math.nan)):
        with pytest.raises(ConfigError):
            value_recovery(*bad)


# --- measured from fills ----------------------------------------------------------------------------------------------

def fills_frame(rows) -> pd.DataFrame:
    """Fills from (ts_ns, symbol, side, px, qty, fee, mid_px) tuples, with the contract's other columns."""
    f = pd.DataFrame(rows, columns=["ts_ns", "symbol", "side", "px", "qty", "fee", "mid_px"])
    f["ts_ns"] = f["ts_ns"].astype(np.int64)
    f["side"] = f["side"].astype(np.int8)
    f["is_maker"] = f["fee"] < 0
    return f


# two days: a winner on day 1; on day 2 one buy of 2 closed by a loser and a winner (the second at a rebate)
TWO_DAYS = [
    (JAN1 + 1 * S, "A", +1, 100.0, 1.0, 0.02, 99.99),
    (JAN1 + 2 * S, "A", -1, 101.0, 1.0, 0.02, 101.01),
    (JAN1 + DAY + 1 * S, "A", +1, 100.0, 2.0, 0.04, 99.95),
    (JAN1 + DAY + 2 * S, "A", -1, 99.0, 1.0, 0.02, 99.05),
    (JAN1 + DAY + 3 * S, "A", -1, 102.0, 1.0, -0.01, 101.99),
]


def test_economics_from_fills_by_hand():
    r = economics_from_fills(fills_frame(TWO_DAYS), other_costs=0.3)
    assert isinstance(r, RealizedEconomics)
    assert r.days == 2 and r.n_round_trips == 3 and r.wins == 2
    assert r.trades_per_day == pytest.approx(1.5)
    assert r.win_rate == pytest.approx(2 / 3)
    assert r.avg_win == pytest.approx(1.5)   # +1 and +2
    assert r.avg_loss == pytest.approx(1.0)  # the -1
    assert r.gross_pnl == pytest.approx(2.0)
    assert r.fees == pytest.approx(0.09)     # 0.04 + (0.02 + 0.02) + (0.02 - 0.01)
    assert r.commissions == pytest.approx(0.39)
    assert r.net_pnl == pytest.approx(1.61)
    assert r.cost_per_round_trip == pytest.approx(0.13)
    assert r.gross_per_day == pytest.approx(1.0)
    assert r.commissions_per_day == pytest.approx(0.195)
    assert r.net_per_day == pytest.approx(0.805)
    assert r.net_per_month == pytest.approx(0.805 * 21)
    assert r.expectancy_per_trade == pytest.approx(1.61 / 3)
    # bp of the entry notional (3 round trips of 100): fee 0.09, slippage against the mid 0.02 + 0.10 + 0.04
    # (the rebated sell was above the mid: it earned 0.01 of spread), other 0.3
    assert r.notional == pytest.approx(300.0)
    assert r.gross_bp == pytest.approx(2 / 300 * 1e4)
    assert r.fee_bp == pytest.approx(3.0)
    assert r.slippage_bp == pytest.approx(0.16 / 300 * 1e4)
    assert r.other_bp == pytest.approx(10.0)
    assert r.edge_bp == pytest.approx(72.0)
    assert r.net_bp == pytest.approx(1.61 / 300 * 1e4)
    assert r.net_bp == pytest.approx(r.edge_bp - r.cost_bp)
    t = r.table()
    assert t.loc["net per day", "value"] == pytest.approx(0.805)
    assert t.loc["edge at mid", "value"] == pytest.approx(72.0) and t.loc["edge at mid", "unit"] == "bp"


def test_economics_from_fills_order_days_and_missing_mids():
    f = fills_frame(TWO_DAYS)
    shuffled = f.iloc[[4, 1, 3, 0, 2]]
    assert economics_from_fills(shuffled) == economics_from_fills(f)
    r = economics_from_fills(f, days=10)
    assert r.days == 10 and r.trades_per_day == pytest.approx(0.3)
    f.loc[3, "mid_px"] = np.nan
    r = economics_from_fills(f)
    assert math.isnan(r.slippage_bp) and math.isnan(r.edge_bp)
    assert r.net_bp == pytest.approx((2 - 0.09) / 300 * 1e4)
    r = economics_from_fills(f.drop(columns="mid_px"))
    assert math.isnan(r.slippage_bp) and r.gross_pnl == pytest.approx(2.0)


def test_a_scratch_counts_as_a_loss_of_zero():
    f = fills_frame([(1, "A", 1, 100.0, 1.0, 0.0, np.nan), (2, "A", -1, 100.0, 1.0, 0.0, np.nan),
                     (3, "A", 1, 100.0, 1.0, 0.0, np.nan), (4, "A", -1, 104.0, 1.0, 0.0, np.nan)])
    r = economics_from_fills(f)
    assert (r.n_round_trips, r.wins, r.win_rate, r.avg_win, r.avg_loss) == (2, 1, 0.5, 4.0, 0.0)
    assert r.days == 1  # timestamps without a date: all on one day


def test_open_positions_are_left_out():
    f = fills_frame([(1, "A", 1, 100.0, 3.0, 0.3, np.nan), (2, "A", -1, 101.0, 1.0, 0.1, np.nan)])
    r = economics_from_fills(f)
    assert r.n_round_trips == 1 and r.gross_pnl == pytest.approx(1.0)
    assert r.fees == pytest.approx(0.1 + 0.1)  # a third of the entry's fee


def test_empty_fills_give_nan_not_errors():
    for empty in (pd.DataFrame(), fills_frame([])):
        r = economics_from_fills(empty)
        assert r.n_round_trips == 0 and r.days == 0
        assert math.isnan(r.win_rate) and math.isnan(r.trades_per_day) and math.isnan(r.net_bp)
        assert r.net_pnl == 0.0
        assert r.table()["value"].isna().any()


@pytest.mark.parametrize("change,match", [
    (lambda f: f.drop(columns="fee"), "fee"),
    (lambda f: f.assign(px=[np.nan] + [100.0] * 4), "px"),
    (lambda f: f.assign(qty=[1.0, 1.0, -2.0, 1.0, 1.0]), "qty"),
    (lambda f: f.assign(side=[1, -1, 0, -1, -1]), "side"),
    (lambda f: f.assign(fee=[np.nan] * 5), "fee"),
])
def test_bad_fills_raise(change, match):
    with pytest.raises(ConfigError, match=match):
        economics_from_fills(change(fills_frame(TWO_DAYS)))


@pytest.mark.parametrize("kw", [dict(days=0), dict(days=-1), dict(days=math.nan), dict(other_costs=-1),
                                dict(days_per_month=0)])
def test_bad_arguments_raise(kw):
    with pytest.raises(ConfigError):
        economics_from_fills(fills_frame(TWO_DAYS), **kw)


def test_compare_plan_and_measurement():
    plan = desk()
    real = economics_from_fills(fills_frame(TWO_DAYS), other_costs=0.3)
    c = compare(plan, real)
    assert list(c.columns) == ["planned", "realised", "difference", "unit"]
    assert c.loc["net per day", "planned"] == pytest.approx(255.0)
    assert c.loc["net per day", "realised"] == pytest.approx(0.805)
    assert c.loc["net per day", "difference"] == pytest.approx(0.805 - 255.0)
    assert c.loc["win rate", "realised"] == pytest.approx(2 / 3)
    assert math.isnan(c.loc["fee (bp)", "planned"]) and c.loc["fee (bp)", "realised"] == pytest.approx(3.0)
    b = EdgeBudget(gross_edge_bp=12, taker_fee_bp=5, slippage_bp=3, other_bp=1, maker_rebate_bp=1)
    taker = compare(plan, real, b)
    assert taker.loc["fee (bp)", "planned"] == 5.0 and taker.loc["net (bp)", "planned"] == pytest.approx(3.0)
    maker = compare(plan, real, b, maker=True)
    assert maker.loc["fee (bp)", "planned"] == -1.0 and maker.loc["net (bp)", "planned"] == pytest.approx(12.0)
    # the planned bp rows obey the same identity as the realised ones: net = edge - fee - slippage - other
    for frame in (taker, maker):
        p = frame["planned"]
        assert p["net (bp)"] == pytest.approx(p["edge at mid (bp)"] - p["fee (bp)"] - p["spread/slippage (bp)"]
                                              - p["other (bp)"])
    with pytest.raises(ConfigError):
        compare(real, plan)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("AB"), st.sampled_from([1, -1]), st.integers(1, 5),
                          st.integers(90, 110), st.integers(-2, 5)), min_size=1, max_size=40))
def test_realised_totals_agree_with_round_trips(rows):
    f = fills_frame([(i * S, s, d, float(p), q * 0.1, c * 0.01, p - 0.5 * d) for i, (s, d, q, p, c) in enumerate(rows)])
    r = economics_from_fills(f, days=2)
    rt = round_trips(f)
    assert r.n_round_trips == len(rt)
    assert r.gross_pnl == pytest.approx(rt["gross_pnl"].sum(), abs=1e-9)
    assert r.fees == pytest.approx(rt["fees"].sum(), abs=1e-9)
    if r.n_round_trips:
        # the identity that makes the realised numbers comparable with a plan
        gross = r.n_round_trips * r.gross_per_trade
        wins = r.win_rate * np.nan_to_num(r.avg_win) - (1 - r.win_rate) * np.nan_to_num(r.avg_loss)
        assert gross == pytest.approx(r.n_round_trips * wins, abs=1e-9)
        assert r.net_per_day * r.days == pytest.approx(r.net_pnl, abs=1e-9)
        # every fill paid half a unit against its mid: slippage = 1 per unit of quantity per round trip
        assert r.slippage == pytest.approx(rt["qty"].sum() * 1.0, abs=1e-9)
        assert r.net_bp == pytest.approx(r.edge_bp - r.cost_bp, abs=1e-9)
