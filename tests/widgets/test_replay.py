"""The recording view through its state: a hand-made recording in, the heatmap grid, the touch, the trades and the
signals' detections on the marks. The real captures are drawn by notebook 05."""

from __future__ import annotations

import numpy as np
import pytest

from widgets.replay import RecordingView
from workbench import Instrument, empty_events
from workbench.enums import EventFlag, EventKind
from workbench.exceptions import ConfigError

INS = Instrument("TESTUSDT", tick_size="0.01", lot_size="0.001")
T0 = 1_723_161_600_000_000_000
MS = 1_000_000
END = int(EventFlag.BATCH_END)


def rows(*specs) -> np.ndarray:
    """(ts_ms, kind, side, px_ticks, qty_lots, flags) -> events."""
    ev = empty_events(len(specs))
    for i, (t, k, s, p, q, f) in enumerate(specs):
        ev[i]["ts_exch_ns"] = ev[i]["ts_local_ns"] = T0 + t * MS
        ev[i]["kind"], ev[i]["side"], ev[i]["px_ticks"], ev[i]["qty_lots"], ev[i]["flags"] = int(k), s, p, q, f
    return ev


SNAP, DEPTH, TRADE = EventKind.SNAPSHOT, EventKind.DEPTH, EventKind.TRADE


def binance_like() -> np.ndarray:
    """A book 10000/10001 (1.000 and 2.000 a side, one more level behind each, and a far one the heatmap leaves
    out), then a bid that absorbs sells: three sells of 0.8 at 10000 while it keeps showing 1.000; then buyers lift
    the ask four times."""
    return rows(
        (0, SNAP, 1, 10_000, 1000, int(EventFlag.CLEAR)), (0, SNAP, 1, 9_996, 500, 0), (0, SNAP, 1, 9_000, 9000, 0),
        (0, SNAP, -1, 10_001, 2000, 0), (0, SNAP, -1, 10_006, 700, END),
        (100, TRADE, -1, 10_000, 800, END), (200, TRADE, -1, 10_000, 800, END), (300, TRADE, -1, 10_000, 800, END),
        (400, DEPTH, 1, 10_000, 1000, END),
        (500, TRADE, 1, 10_001, 500, END), (600, TRADE, 1, 10_001, 500, END), (700, TRADE, 1, 10_001, 500, END),
        (800, TRADE, 1, 10_001, 500, END),
        (900, DEPTH, -1, 10_001, 0, 0), (900, DEPTH, -1, 10_002, 900, END),
    )


def test_the_heatmap_holds_the_resting_sizes_by_price_and_time():
    v = RecordingView(binance_like(), INS, time_bins=9, price_rows=100, n_levels=3)
    # price bands: the touch's range (100.00 .. 100.02) and 5 ticks either side, one tick each
    assert v.bucket_ticks == 1 and v.grid.shape == (13, 9)
    assert v.grid_px[0] == pytest.approx(99.95) and v.grid_px[-1] == pytest.approx(100.07)
    # the first interval shows the snapshot: 1.0 at 100.00, 0.5 at 99.96, 2.0 at 100.01, 0.7 at 100.06; the level at
    # 90.00 is in the top 3 but outside the bands
    px = np.round(v.grid_px, 2)
    col = v.grid[:, 0]
    assert col[px == 100.00][0] == pytest.approx(1.0) and col[px == 99.96][0] == pytest.approx(0.5)
    assert col[px == 100.01][0] == pytest.approx(2.0) and col[px == 100.06][0] == pytest.approx(0.7)
    assert col.sum() == pytest.approx(4.2)
    # the last interval: the ask moved to 100.02
    last = v.grid[:, -1]
    assert last[px == 100.01][0] == 0 and last[px == 100.02][0] == pytest.approx(0.9)
    # the log option changes the colours only
    assert np.allclose(v.heatmap.color, np.log10(1 + v.grid))
    v.log_toggle.value = False
    assert np.array_equal(v.heatmap.color, v.grid) and "log" not in v._color_axis.label
    assert "wb-replay-log" in v.log_toggle._dom_classes and "wb-replay-heatmap" in v.book_figure._dom_classes


def test_the_touch_and_the_trades_by_aggressor():
    v = RecordingView(binance_like(), INS, time_bins=4)
    assert v.best_bid[0] == pytest.approx(100.00) and v.best_ask[-1] == pytest.approx(100.02)
    assert v.touch.y.shape == (2, len(v.touch.x))
    assert v.sells.y.tolist() == pytest.approx([100.0] * 3) and v.buys.y.tolist() == pytest.approx([100.01] * 4)
    assert v.sells.size.tolist() == pytest.approx([0.8] * 3)
    assert v.buys.colors != v.sells.colors


def test_iceberg_and_volume_delta_detections_are_drawn():
    v = RecordingView(binance_like(), INS, time_bins=4, delta_window=3, delta_threshold=1.2)
    # the bid showed 1.0 and traded 0.8, 1.6, 2.4: absorbing from the second sell on
    assert v.icebergs["trade"].tolist() == [1, 2] and v.icebergs["side"].tolist() == [1, 1]
    assert v.icebergs["ratio"].tolist() == pytest.approx([1.6, 2.4])
    assert len(v.iceberg_bid.x) == 2 and len(v.iceberg_ask.x) == 0
    assert v.iceberg_bid.y.tolist() == pytest.approx([100.0, 100.0])
    # windowed delta over 3 trades: below -1.2 from trade 1, above +1.2 from trade 5
    assert v.delta["windowed"].tolist() == pytest.approx([-0.8, -1.6, -2.4, -1.1, 0.2, 1.5, 1.5])
    assert v.delta["cum"][-1] == pytest.approx(2.0 - 2.4)
    assert v.delta_detections["trade"].tolist() == [1, 5] and v.delta_detections["side"].tolist() == [-1, 1]
    assert len(v.delta_down.x) == 1 and len(v.delta_up.x) == 1 and v.delta_up.y[0] == pytest.approx(100.01)
    assert v.delta_marks.y.tolist() == pytest.approx([-1.6, 1.5])
    assert "2 iceberg detections" in v.summary.value and "2 volume-delta detections" in v.summary.value


def test_order_level_executions_are_the_trades_of_a_lobster_recording():
    ev = rows(
        (0, EventKind.ORDER_ADD, 1, 10_000, 100, END), (0, EventKind.ORDER_ADD, -1, 10_005, 100, END),
        (10, EventKind.ORDER_EXEC, 1, 10_000, 40, END),     # a resting buy executed: a sell-initiated trade
        (20, EventKind.ORDER_EXEC, -1, 10_005, 30, END),    # a resting sell executed: a buyer lifted the ask
        (30, EventKind.ORDER_EXEC_HIDDEN, 1, 10_002, 10, END),
    )
    ev["id"] = [1, 2, 1, 2, 0]
    v = RecordingView(ev, Instrument("AMZN", tick_size="0.0001", lot_size="1"), time_bins=3)
    assert v.trades["side"].tolist() == [-1, 1, -1]
    assert v.sells.y.tolist() == pytest.approx([1.0, 1.0002]) and v.buys.y.tolist() == pytest.approx([1.0005])


def test_windows_and_bad_recordings():
    v = RecordingView(binance_like(), INS, time_bins=4, start_ns=T0 + 450 * MS, end_ns=T0 + 750 * MS)
    assert v.trades["ts_ns"].min() >= T0 + 450 * MS and len(v.trades["qty"]) == 3
    assert v.touch_ts[0] >= T0 + 450 * MS
    with pytest.raises(ConfigError, match="no events"):
        RecordingView(empty_events(0), INS)
    with pytest.raises(ConfigError, match="both sides"):
        RecordingView(rows((0, SNAP, 1, 10_000, 1000, END)), INS)
