"""The backtest report through its state: the marks hold the result's data, and update() redraws in place with one
message per mark (what the tuning notebook's sliders rely on)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from widgets.report import BacktestReport
from workbench.backtest import BacktestResult, compute_metrics

T0 = 1_723_161_600_000_000_000
S = 1_000_000_000


def result(n_marks: int = 50, shift: float = 0.0, params=None) -> BacktestResult:
    """A hand-made run: a mid that drifts up, buys and sells around it, the equity the fills imply."""
    ts = T0 + np.arange(n_marks, dtype=np.int64) * (S // 10)
    mid = 100.0 + shift + 0.01 * np.arange(n_marks)
    fills = pd.DataFrame({
        "ts_ns": [ts[5], ts[10], ts[20], ts[30]], "symbol": "BTCUSDT", "side": np.array([1, -1, -1, 1], np.int8),
        "px": [mid[5] - 0.01, mid[10] + 0.01, mid[20] + 0.01, mid[30] + 0.2], "qty": [1.0, 1.0, 1.0, 1.0],
        "fee": [-0.01, -0.01, -0.01, 0.02], "is_maker": [True, True, True, False], "mid_px": [mid[5], mid[10],
                                                                                         mid[20], mid[30]]})
    eq = pd.DataFrame({"ts_ns": ts, "equity": 1e5 + (1 + shift) * np.cumsum(np.r_[0.0, np.diff(mid)]), "cash": 1e5,
                       "position": 0.0, "mid_px": mid})
    orders = pd.DataFrame({"state": ["FILLED"] * 4, "filled_qty": [1.0] * 4})
    empty = pd.DataFrame()
    metrics = compute_metrics(fills, eq, orders, None, initial_equity=1e5)
    return BacktestResult(fills, orders, eq, empty, empty, metrics, {}, params or {"half_spread_ticks": 1})


def test_the_marks_hold_the_results_data():
    r = result()
    rep = BacktestReport(r)
    assert rep.result is r and rep.n_updates == 1
    assert len(rep.equity_line.x) == 50 and rep.equity_line.y[-1] == pytest.approx(r.equity["equity"].iloc[-1] - 1e5)
    assert rep.equity_line.x[0] == np.datetime64(T0, "ns")
    assert rep.mid_line.y.tolist() == pytest.approx(r.equity["mid_px"].tolist())
    # buys and sells apart, at their prices and times
    assert rep.buys.y.tolist() == pytest.approx(r.fills["px"][r.fills["side"] > 0].tolist())
    assert rep.sells.y.tolist() == pytest.approx(r.fills["px"][r.fills["side"] < 0].tolist())
    assert (rep.sells.x == r.fills["ts_ns"][r.fills["side"] < 0].to_numpy().astype("datetime64[ns]")).all()
    # the histogram counts the round trips
    assert rep.pnl_bars.y.sum() == r.metrics["n_round_trips"] == 2
    assert "net P&amp;L" in rep.metrics_table.value or "net P&L" in rep.metrics_table.value
    assert f"${r.metrics['net_pnl']:,.2f}".replace("$-", "-$") in rep.metrics_table.value
    assert "half_spread_ticks=1" in rep.title.value
    assert rep.metrics_frame().loc["round trips", "value"] == 2
    assert {"wb-report"} <= set(rep._dom_classes)
    assert "wb-report-metrics" in rep.metrics_table._dom_classes


class RecordingComm:
    """A comm as ipywidgets' own tests fake it (a truthy kernel, so state is sent), keeping what was sent."""

    comm_id = "test"
    kernel = "Truthy"

    def __init__(self, *args, **kwargs):
        self.messages = []

    def send(self, data=None, buffers=None, **kwargs):
        self.messages.append(data)

    def open(self, *a, **k):
        pass

    def on_msg(self, *a, **k):
        pass

    def close(self, *a, **k):
        pass


@pytest.fixture
def recording_comms(monkeypatch):
    import comm

    monkeypatch.setattr(comm, "create_comm", lambda **kw: RecordingComm())


def test_update_redraws_in_place_with_one_message_per_mark(recording_comms):
    rep = BacktestReport(result())
    marks = (rep.equity_line, rep.mid_line, rep.buys, rep.sells, rep.pnl_bars, rep.metrics_table, rep.title)
    assert all(isinstance(m.comm, RecordingComm) for m in marks)
    before = {id(m): len(m.comm.messages) for m in marks}
    r2 = result(shift=5.0, params={"half_spread_ticks": 3})
    rep.update(r2)
    sent = {id(m): len(m.comm.messages) - before[id(m)] for m in marks}
    # x and y of a mark in one message; a mark whose data did not change (the P&L histogram here) sends none
    assert all(n <= 1 for n in sent.values()), sent
    assert [sent[id(m)] for m in marks[:4]] == [1, 1, 1, 1] and sent[id(rep.title)] == 1
    assert "y" in rep.equity_line.comm.messages[-1]["state"]
    assert rep.mid_line.y[0] == pytest.approx(105.0) and "half_spread_ticks=3" in rep.title.value
    assert rep.n_updates == 2 and rep.result is r2
    # the same objects, not new marks: the front end redraws, it does not rebuild
    assert rep.fills_figure.marks == [rep.mid_line, rep.buys, rep.sells]


def test_long_series_are_thinned_for_drawing_and_keep_their_last_point():
    r = result(n_marks=10_001)
    rep = BacktestReport(r, max_points=1000)
    assert len(rep.equity_line.x) <= 1001
    assert rep.equity_line.x[-1] == np.datetime64(int(r.equity["ts_ns"].iloc[-1]), "ns")
    assert rep.equity_line.y[-1] == r.equity["equity"].iloc[-1] - r.equity["equity"].iloc[0]


def test_a_run_without_fills_draws_empty_marks():
    r = result()
    empty_fills = r.fills.iloc[:0]
    r0 = BacktestResult(empty_fills, r.orders, r.equity, r.risk_events, r.param_changes,
                        compute_metrics(empty_fills, r.equity, r.orders.iloc[:0], None, initial_equity=1e5), {}, {},
                        error="RuntimeError: boom")
    rep = BacktestReport()
    assert rep.result is None and len(rep.equity_line.x) == 0
    rep.update(r0)
    assert len(rep.buys.x) == len(rep.sells.x) == len(rep.pnl_bars.x) == 0 and len(rep.equity_line.x) == 50
    assert "boom" in rep.title.value
