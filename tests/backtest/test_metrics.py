"""Backtest metrics: FIFO round trips, markouts and the summary dict, on small frames worked out by hand, plus
properties over random fill sequences."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench.backtest.metrics as metrics
from workbench.backtest.metrics import compute_metrics, horizon_label, markouts, round_trips
from workbench.exceptions import ConfigError

MS = 1_000_000
S = 1_000_000_000
MIN = 60 * S


def fills_frame(rows) -> pd.DataFrame:
    """A fills table in the contract's columns from (ts_ns, symbol, side, px, qty, fee) tuples."""
    f = pd.DataFrame(rows, columns=["ts_ns", "symbol", "side", "px", "qty", "fee"])
    n = len(f)
    f["ts_ns"] = f["ts_ns"].astype(np.int64)
    f["side"] = f["side"].astype(np.int8)
    f["px_ticks"] = (f["px"].fillna(0) * 100).round().astype(np.int64)
    f["qty_lots"] = (f["qty"] * 1000).round().astype(np.int64)
    f["is_maker"] = f["fee"] < 0
    f["client_order_id"] = [f"c{i}" for i in range(n)]
    f["order_id"] = np.arange(n, dtype=np.int64)
    f["mid_px"] = np.nan
    f["tag"] = ""
    return f


def equity_frame(ts, eq) -> pd.DataFrame:
    return pd.DataFrame({"ts_ns": np.asarray(ts, np.int64), "equity": np.asarray(eq, float), "cash": np.nan,
                         "position": np.nan, "mid_px": np.nan})


def test_public_names():
    assert sorted(metrics.__all__) == sorted(["round_trips", "markouts", "compute_metrics", "DEFAULT_HORIZONS_NS",
                                              "horizon_label"])


# --- round trips ------------------------------------------------------------------------------------------------------

# two buys, one sell of 4 that closes both and opens a short of 1 (the flip), a buy that closes the short
FLIP = [
    (1, "X", +1, 100.0, 2.0, 0.2),
    (2, "X", +1, 101.0, 1.0, 0.1),
    (3, "X", -1, 103.0, 4.0, 0.4),
    (4, "X", +1, 102.0, 1.0, 0.1),
]


def test_round_trips_fifo_partials_and_flip_by_hand():
    rt = round_trips(fills_frame(FLIP))
    assert list(rt.columns) == ["entry_ts_ns", "exit_ts_ns", "symbol", "direction", "qty", "entry_px", "exit_px",
                                "gross_pnl", "fees", "net_pnl", "holding_ns"]
    # FIFO: the oldest entry (ts 1) closes first; LIFO would start with ts 2
    assert rt["entry_ts_ns"].tolist() == [1, 2, 3]
    assert rt["exit_ts_ns"].tolist() == [3, 3, 4]
    assert rt["direction"].tolist() == [1, 1, -1]
    assert rt["qty"].tolist() == [2.0, 1.0, 1.0]
    assert rt["entry_px"].tolist() == [100.0, 101.0, 103.0]
    assert rt["exit_px"].tolist() == [103.0, 103.0, 102.0]
    assert rt["gross_pnl"].tolist() == pytest.approx([6.0, 2.0, 1.0])
    # the sell's 0.4 fee splits 2:1:1 over its three parts
    assert rt["fees"].tolist() == pytest.approx([0.2 + 0.2, 0.1 + 0.1, 0.1 + 0.1])
    assert rt["net_pnl"].tolist() == pytest.approx([5.6, 1.8, 0.8])
    assert rt["holding_ns"].tolist() == [2, 1, 1]
    assert (rt["symbol"] == "X").all()
    assert rt["direction"].dtype == np.int8 and rt["holding_ns"].dtype == np.int64


def test_round_trips_symbols_are_matched_apart_and_rows_sorted_by_time():
    f = fills_frame([
        (5, "B", -1, 50.0, 1.0, 0.0),
        (1, "A", +1, 10.0, 1.0, 0.0),
        (2, "B", +1, 49.0, 1.0, 0.0),
        (3, "A", +1, 11.0, 1.0, 0.0),
        (4, "A", -1, 13.0, 1.5, 0.0),
    ])
    rt = round_trips(f)
    assert rt[["symbol", "entry_ts_ns", "exit_ts_ns"]].values.tolist() == [["A", 1, 4], ["A", 3, 4], ["B", 2, 5]]
    assert rt["qty"].tolist() == [1.0, 0.5, 1.0]
    assert rt["gross_pnl"].tolist() == pytest.approx([3.0, 1.0, 1.0])


def test_round_trips_float_quantities_leave_no_crumbs():
    # 0.1 + 0.2 != 0.3 in floats: the close of 0.3 must not leave an open lot of 5e-17 behind
    f = fills_frame([(1, "A", 1, 100.0, 0.1, 0.0), (2, "A", 1, 100.0, 0.2, 0.0), (3, "A", -1, 101.0, 0.3, 0.0),
                     (4, "A", 1, 100.0, 0.7, 0.0), (5, "A", -1, 102.0, 0.7, 0.0)])
    rt = round_trips(f)
    assert len(rt) == 3
    assert rt["qty"].tolist() == pytest.approx([0.1, 0.2, 0.7])
    assert rt["entry_ts_ns"].tolist() == [1, 2, 4]


def test_round_trips_short_first_and_open_remainder():
    f = fills_frame([(1, "A", -1, 100.0, 2.0, 0.0), (2, "A", 1, 98.0, 1.0, 0.0)])
    rt = round_trips(f)
    assert rt[["direction", "qty", "gross_pnl"]].values.tolist() == [[-1, 1.0, 2.0]]


def test_round_trips_empty_and_bad():
    for empty in (pd.DataFrame(), fills_frame([])):
        rt = round_trips(empty)
        assert len(rt) == 0 and "net_pnl" in rt.columns
    with pytest.raises(ConfigError, match="side"):
        round_trips(fills_frame([(1, "A", 2, 100.0, 1.0, 0.0)]))
    with pytest.raises(ConfigError, match="px"):
        round_trips(fills_frame([(1, "A", 1, math.nan, 1.0, 0.0)]))
    with pytest.raises(ConfigError, match="qty"):
        round_trips(fills_frame([(1, "A", 1, 100.0, 0.0, 0.0)]))
    with pytest.raises(ConfigError, match="columns"):
        round_trips(fills_frame([(1, "A", 1, 100.0, 1.0, 0.0)]).drop(columns="symbol"))


def unit_fifo(rows):
    """Reference: every fill cut into unit lots (``qty`` counts units), matched one unit at a time; returns
    ``{(entry fill, exit fill): units}`` in the order the pairs first matched."""
    open_units: dict[str, deque] = {}
    pairs: dict[tuple[int, int], int] = {}
    for i, (sym, side, units) in enumerate(rows):
        q = open_units.setdefault(sym, deque())  # (fill index, side) per open unit
        for _ in range(units):
            if q and q[0][1] != side:
                j, _ = q.popleft()
                pairs[(j, i)] = pairs.get((j, i), 0) + 1
            else:
                q.append((i, side))
    return pairs


fill_rows = st.lists(
    st.tuples(st.sampled_from("AB"), st.sampled_from([1, -1]), st.integers(1, 6), st.integers(95, 105),
              st.integers(-3, 6)),
    min_size=0, max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(fill_rows)
def test_round_trips_match_a_unit_by_unit_reference(rows):
    # quantities in tenths: the float path must give what integer units give
    f = fills_frame([(i * 10, s, d, float(p), u * 0.1, c * 0.01) for i, (s, d, u, p, c) in enumerate(rows)])
    rt = round_trips(f)
    ref = unit_fifo([(s, d, u) for s, d, u, _, _ in rows])
    got = [(e // 10, x // 10) for e, x in zip(rt["entry_ts_ns"], rt["exit_ts_ns"])]
    assert got == list(ref)
    assert rt["qty"].to_numpy() == pytest.approx(np.array(list(ref.values())) * 0.1)
    assert (rt["direction"].to_numpy() == [rows[e][1] for e, _ in got]).all()


@settings(max_examples=150, deadline=None)
@given(fill_rows, st.integers(90, 110))
def test_round_trip_net_pnl_adds_up_to_the_cash_flows(rows, mark):
    """Flatten each symbol at ``mark`` (no fee): the round trips' net P&L is then the whole net P&L."""
    f = [(i, s, d, float(p), u * 0.1, c * 0.01) for i, (s, d, u, p, c) in enumerate(rows)]
    for sym in "AB":
        pos = sum(d * q for _, s, d, _, q, _ in f if s == sym)
        if abs(pos) > 1e-9:
            f.append((len(f), sym, -1 if pos > 0 else 1, float(mark), abs(pos), 0.0))
    frame = fills_frame(f)
    cash = -(frame["side"] * frame["px"] * frame["qty"]).sum() - frame["fee"].sum()
    rt = round_trips(frame)
    assert rt["net_pnl"].sum() == pytest.approx(cash, abs=1e-9)
    assert rt["fees"].sum() == pytest.approx(frame["fee"].sum(), abs=1e-9)
    # without an equity curve the metrics take the same number from the fills
    m = compute_metrics(frame, pd.DataFrame())
    assert m["net_pnl"] == pytest.approx(cash, abs=1e-9)
    assert m["gross_pnl"] == pytest.approx(rt["gross_pnl"].sum(), abs=1e-9)


def test_round_trips_of_100k_fills_across_three_symbols():
    rng = np.random.default_rng(7)
    n = 100_000
    f = pd.DataFrame({
        "ts_ns": np.arange(n, dtype=np.int64) * MS,
        "symbol": rng.choice(["BTCUSDT", "ETHUSDT", "SOLUSDT"], n),
        "side": rng.choice(np.array([1, -1], np.int8), n),
        "px": 100 + rng.standard_normal(n).cumsum() * 0.01,
        "qty": rng.integers(1, 10, n) * 0.001,
        "fee": rng.random(n) * 0.01,
    })
    rt = round_trips(f)  # (its speed is measured in benchmarks/, not asserted here)
    assert len(rt) > 50_000


# --- markouts ---------------------------------------------------------------------------------------------------------

def test_markouts_by_hand():
    f = fills_frame([(0, "A", 1, 100.0, 1.0, 0.0), (0, "A", -1, 100.0, 1.0, 0.0), (0, "B", 1, 50.0, 1.0, 0.0),
                     (0, "C", 1, 10.0, 1.0, 0.0), (-1 * S, "A", 1, 100.0, 1.0, 0.0)])
    f.index = [10, 11, 12, 13, 14]
    mids = pd.DataFrame({
        "ts_ns": [0, 50 * MS, 100 * MS, 1 * S, 2 * S, 0],
        "symbol": ["A", "A", "A", "A", "B", "B"],
        "mid_px": [100.0, 100.5, 101.0, 99.0, 50.5, 50.0],
    })
    m = markouts(f, mids, horizons_ns=(100 * MS, 1 * S, 2 * S))
    assert list(m.columns) == ["markout_100ms", "markout_1s", "markout_2s"]
    assert list(m.index) == [10, 11, 12, 13, 14]
    nan = math.nan
    expected = [
        [100.0, -100.0, nan],   # A buy: mid 101 at 100 ms, 99 at 1 s; 2 s is past A's last mid
        [-100.0, 100.0, nan],   # A sell: the mirror image
        [0.0, 0.0, 100.0],      # B buy at 50: mids are unsorted in the input; 50.5 stamped exactly at 2 s counts
        [nan, nan, nan],        # C: no mids at all
        [nan, 0.0, -100.0],     # a fill 1 s before A's first mid: none at -0.9 s, then 100 at 0 s, 99 at 1 s
    ]
    np.testing.assert_allclose(m.to_numpy(), np.array(expected), equal_nan=True)


def test_markouts_take_the_last_mid_at_a_stamp_and_skip_nan_mids():
    f = fills_frame([(0, "A", 1, 100.0, 1.0, 0.0)])
    mids = pd.DataFrame({"ts_ns": [0, S, S, 2 * S, 3 * S], "symbol": "A", "mid_px": [100.0, 101.0, 102.0, np.nan,
                                                                                  100.0]})
    m = markouts(f, mids, horizons_ns=(S, 2 * S))
    assert m.iloc[0].tolist() == pytest.approx([200.0, 200.0])


def test_markouts_empty_and_bad():
    mids = pd.DataFrame({"ts_ns": [0], "symbol": ["A"], "mid_px": [1.0]})
    assert markouts(pd.DataFrame(), mids).shape == (0, 4)
    assert markouts(fills_frame([(0, "A", 1, 1.0, 1.0, 0.0)]), pd.DataFrame()).isna().all().all()
    for bad in ((0,), (-1,), (1.5,), (S, S)):
        with pytest.raises(ConfigError):
            markouts(fills_frame([]), mids, horizons_ns=bad)
    with pytest.raises(ConfigError, match="mids"):
        markouts(fills_frame([(0, "A", 1, 1.0, 1.0, 0.0)]), mids.drop(columns="mid_px"))


def test_horizon_labels():
    assert [horizon_label(h) for h in (100 * MS, S, 5 * S, 30 * S, MIN, 250_000, 1500)] == [
        "100ms", "1s", "5s", "30s", "1min", "250us", "1500ns"]


# --- the summary ------------------------------------------------------------------------------------------------------

# a long closed at a gain with a rebate on the exit, then a short of 2 closed at a loss
SESSION = [
    (0, "X", +1, 100.0, 1.0, 0.1),
    (1 * MIN, "X", -1, 102.0, 1.0, -0.05),
    (2 * MIN, "X", -1, 101.0, 2.0, 0.2),
    (3 * MIN, "X", +1, 103.0, 2.0, 0.2),
]
SESSION_EQUITY = equity_frame([0, MIN, 2 * MIN, 3 * MIN, 4 * MIN], [1000, 1002, 1001, 999, 997.55])
ORDERS = pd.DataFrame({
    "client_order_id": ["a", "b", "c", "d"], "symbol": "X", "side": [1, -1, -1, 1], "type": "LIMIT",
    "px": 100.0, "qty": 1.0, "filled_qty": [1.0, 0.5, 0.0, 0.0],
    "state": ["FILLED", "CANCELED", "CANCELED", "REJECTED"], "created_ns": 0, "updated_ns": 0, "reason": "",
})


def test_compute_metrics_by_hand():
    m = compute_metrics(fills_frame(SESSION), SESSION_EQUITY, ORDERS)
    assert m["net_pnl"] == pytest.approx(-2.45)
    assert m["fees_paid"] == pytest.approx(0.5)
    assert m["rebates"] == pytest.approx(0.05)
    assert m["gross_pnl"] == pytest.approx(-2.0)  # +2 on the long, -4 on the short
    assert m["n_fills"] == 4 and m["traded_notional"] == pytest.approx(610.0)
    # round trips: +2 - 0.05 (0.1 paid, 0.05 back) = 1.95; -4 - 0.4 = -4.4
    assert m["n_round_trips"] == 2
    assert m["pnl_per_trade"] == pytest.approx(-1.225)
    assert m["win_rate"] == 0.5
    assert m["avg_win"] == pytest.approx(1.95)
    assert m["avg_loss"] == pytest.approx(4.4)
    assert m["expectancy_per_trade"] == pytest.approx(-1.225)
    assert m["expectancy_per_dollar_at_risk"] == pytest.approx(-1.225 / 4.4)
    r = np.array([1002 / 1000, 1001 / 1002, 999 / 1001, 997.55 / 999]) - 1
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(525_600))
    assert m["sharpe"] < 0
    assert m["max_drawdown"] == pytest.approx(1002 - 997.55)
    assert m["max_drawdown_frac"] == pytest.approx((1002 - 997.55) / 1002)
    assert m["turnover"] == pytest.approx(610.0 / np.mean([1000, 1002, 1001, 999, 997.55]))
    assert m["fill_ratio"] == pytest.approx(2 / 3)  # a and b have fills; d was rejected, so never accepted
    assert not [k for k in m if k.startswith("markout")]
    assert all(isinstance(v, float) for v in m.values())


def test_compute_metrics_markout_averages():
    f = fills_frame([(0, "A", 1, 100.0, 1.0, 0.0), (0, "A", -1, 100.0, 1.0, 0.0), (0, "A", 1, 100.0, 1.0, 0.0)])
    mids = pd.DataFrame({"ts_ns": [0, S, 10 * S], "symbol": "A", "mid_px": [100.0, 101.0, 101.0]})
    m = compute_metrics(f, pd.DataFrame(), mids=mids, horizons_ns=(S, 20 * S))
    assert m["markout_1s"] == pytest.approx((100 - 100 + 100) / 3)
    assert math.isnan(m["markout_20s"])


def test_sharpe_samples_the_last_equity_of_each_minute_and_carries_quiet_minutes():
    # minute 0 ends at 110 (the 150 inside it does not count), minutes 1 and 2 are quiet, minute 3 ends at 121:
    # returns 0, 0, 0.1 -> mean 1/30, sample sd 0.1/sqrt(3)
    e = equity_frame([0, 30 * S, 59 * S, 3 * MIN + 5 * S], [100, 150, 110, 121])
    m = compute_metrics(pd.DataFrame(), e)
    assert m["sharpe"] == pytest.approx((1 / 30) / (0.1 / math.sqrt(3)) * math.sqrt(525_600))
    # the drawdown sees every row, not just the minute samples
    assert m["max_drawdown"] == pytest.approx(40.0) and m["max_drawdown_frac"] == pytest.approx(40 / 150)
    assert m["turnover"] == 0.0


@pytest.mark.filterwarnings("error")  # and without numpy warning about a std of one number
def test_sharpe_is_zero_with_too_few_samples_or_a_flat_curve():
    assert compute_metrics(pd.DataFrame(), equity_frame([0, 30 * S, MIN], [100, 90, 120]))["sharpe"] == 0.0
    assert compute_metrics(pd.DataFrame(), equity_frame([0, MIN, 2 * MIN], [100, 100, 100]))["sharpe"] == 0.0
    assert compute_metrics(pd.DataFrame(), equity_frame([0, MIN, 2 * MIN], [100, 101, 103]))["sharpe"] > 0


def test_turnover_divides_by_the_mean_over_time():
    # a burst of rows at 300 inside minute 0 ends at 100: over the three minutes equity was 100, not 180 on average
    e = equity_frame([0, 10 * S, 20 * S, 59 * S, 2 * MIN], [100, 300, 300, 100, 100])
    f = fills_frame([(5 * S, "A", 1, 10.0, 2.0, 0.0), (6 * S, "A", -1, 10.0, 3.0, 0.0)])
    assert compute_metrics(f, e)["turnover"] == pytest.approx(50.0 / 100.0)


def test_without_equity_open_positions_are_marked_at_their_last_fill():
    f = fills_frame([
        (0, "A", 1, 100.0, 2.0, 0.1),
        (1, "B", -1, 50.0, 2.0, 0.0),
        (2, "A", -1, 103.0, 1.0, 0.1),
        (4, "B", 1, 48.0, 1.0, 0.0),
    ])
    m = compute_metrics(f, pd.DataFrame())
    # A: +3 closed, +3 open (bought at 100, marked at 103), fees 0.2; B: +2 closed, +2 open (sold at 50, marked
    # at B's last fill 48, not at A's 103)
    assert m["net_pnl"] == pytest.approx(3 + 3 - 0.2 + 2 + 2)
    assert m["n_round_trips"] == 2 and m["pnl_per_trade"] == pytest.approx(9.8 / 2)
    assert m["expectancy_per_trade"] == pytest.approx((2.85 + 2.0) / 2)  # closed only: 3 - 0.05 - 0.1; 2


def test_drawdown_in_currency_and_as_a_fraction_are_separate_maxima():
    m = compute_metrics(pd.DataFrame(), equity_frame([0, 1, 2, 3], [100, 50, 1000, 900]))
    assert m["max_drawdown"] == pytest.approx(100.0)       # 1000 -> 900
    assert m["max_drawdown_frac"] == pytest.approx(0.5)    # 100 -> 50
    assert m["net_pnl"] == pytest.approx(800.0)


def test_initial_equity_starts_the_curve():
    m = compute_metrics(pd.DataFrame(), equity_frame([0, 1], [90, 95]), initial_equity=100)
    assert m["net_pnl"] == pytest.approx(-5.0)
    assert m["max_drawdown"] == pytest.approx(10.0) and m["max_drawdown_frac"] == pytest.approx(0.1)
    with pytest.raises(ConfigError):
        compute_metrics(pd.DataFrame(), pd.DataFrame(), initial_equity=math.nan)


def test_fill_ratio_edges():
    e = pd.DataFrame()
    assert math.isnan(compute_metrics(fills_frame([]), e)["fill_ratio"])
    assert math.isnan(compute_metrics(fills_frame([]), e, ORDERS.iloc[[3]])["fill_ratio"])  # only a rejection
    assert compute_metrics(fills_frame([]), e, ORDERS.iloc[[0]])["fill_ratio"] == 1.0


def test_empty_inputs_give_zeros_and_nan():
    for fills, equity, orders, mids in [
        (pd.DataFrame(), pd.DataFrame(), None, None),
        (pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame()),
        (fills_frame([]), equity_frame([], []), ORDERS.iloc[:0], pd.DataFrame(columns=["ts_ns", "symbol", "mid_px"])),
    ]:
        m = compute_metrics(fills, equity, orders, mids)
        for k in ("net_pnl", "gross_pnl", "fees_paid", "rebates", "n_round_trips", "sharpe", "max_drawdown",
                  "max_drawdown_frac"):
            assert m[k] == 0.0, k
        for k in ("pnl_per_trade", "win_rate", "avg_win", "avg_loss", "expectancy_per_trade",
                  "expectancy_per_dollar_at_risk", "turnover", "fill_ratio"):
            assert math.isnan(m[k]), k
        assert ("markout_1s" in m) == (mids is not None)


def test_no_losers_or_no_winners():
    wins = fills_frame([(0, "A", 1, 100.0, 1.0, 0.0), (1, "A", -1, 101.0, 1.0, 0.0)])
    m = compute_metrics(wins, pd.DataFrame())
    assert m["win_rate"] == 1.0 and math.isnan(m["avg_loss"]) and math.isnan(m["expectancy_per_dollar_at_risk"])
    losses = fills_frame([(0, "A", 1, 100.0, 1.0, 0.0), (1, "A", -1, 99.0, 1.0, 0.0)])
    m = compute_metrics(losses, pd.DataFrame())
    assert m["win_rate"] == 0.0 and math.isnan(m["avg_win"]) and m["expectancy_per_dollar_at_risk"] == -1.0


def test_bad_equity_raises():
    with pytest.raises(ConfigError, match="equity"):
        compute_metrics(pd.DataFrame(), equity_frame([0, 1], [100, np.nan]))
    with pytest.raises(ConfigError, match="equity"):
        compute_metrics(pd.DataFrame(), pd.DataFrame({"ts_ns": [0]}))
