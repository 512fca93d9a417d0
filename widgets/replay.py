"""A static view of a recording: the book as a heatmap, the touch, the trades, and what two signals detected.

:class:`RecordingView` replays a recording's events (:data:`workbench.types.event_dt`: a Binance capture, a LOBSTER
message file, the workbench's Parquet; :func:`workbench.data.recording.load_recording` reads any of them) through
:class:`workbench.book.L2Book` and draws:

- the book heatmap: price x time, colour = resting size (base units) of the top ``n_levels`` levels of each side,
  sampled at the end of each of ``time_bins`` intervals and summed into ``price_rows`` price bands; a log option
  (colour = log10(1 + size)) shows thin levels beside fat ones;
- the best bid and ask over time;
- the trades, sized by quantity and coloured by aggressor (green: a buyer lifted the ask, red: a seller hit the bid).
  LOBSTER has no trade rows: its visible and hidden executions are the trades, aggressor = the side opposite to the
  resting order (as :func:`workbench.data.lobster.aggressor_side` has it);
- the detections of :func:`workbench.signals.iceberg_absorption` (a level that traded more than ``iceberg_min_ratio``
  times the size it displayed: a hidden order refilling it) as diamonds at the trade, blue for a bid absorbing
  sells, orange for an ask absorbing buys;
- :func:`workbench.signals.volume_delta` below, cumulative and over the last ``delta_window`` trades, and its
  detections: the trades where the windowed delta first goes beyond +-``delta_threshold`` (base units; by default
  twice the windowed delta's standard deviation), marked on both figures as arrows (up: buying pressure).

Everything computed is kept on the view as arrays (``grid``, ``trades``, ``icebergs``, ``delta``, ...), so a
notebook can assert on it and a test can check the marks. Prices are in quote units, sizes in base units, times UTC.

DOM classes: ``wb-replay`` (the panel), ``wb-replay-heatmap`` (the book figure), ``wb-replay-delta`` (the volume
delta figure), ``wb-replay-log`` (the log-colour checkbox), ``wb-replay-summary`` (counts).
"""

from __future__ import annotations

import math

import bqplot as bq
import ipywidgets as widgets
import numpy as np

from workbench import ConfigError, EventKind, Instrument, signals
from workbench.book import L2Book

__all__ = ["RecordingView"]

_BUY, _SELL = "#2ca02c", "#d62728"
_ICE_BID, _ICE_ASK = "#1f77b4", "#ff7f0e"
_EXEC_KINDS = (int(EventKind.ORDER_EXEC), int(EventKind.ORDER_EXEC_HIDDEN))


def _times(ts_ns) -> np.ndarray:
    return np.asarray(ts_ns, dtype=np.int64).astype("datetime64[ns]")


def _thin(n: int, max_points: int) -> np.ndarray:
    """Indices of at most about ``max_points`` rows spread evenly, the last one included."""
    if n == 0:
        return np.zeros(0, np.int64)
    idx = np.arange(0, n, max(1, -(-n // max_points)))
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


class RecordingView(widgets.VBox):
    """The view of one recording (see the module docstring).

    Parameters
    ----------
    events : normalized events in time order (one symbol).
    instrument : its tick and lot sizes.
    n_levels : book levels per side drawn in the heatmap.
    time_bins, price_rows : the heatmap's resolution.
    log_color : start with the log colour scale.
    max_trades : most trades drawn (the largest ones when there are more); every trade feeds the signals.
    iceberg_min_ratio : :func:`~workbench.signals.iceberg_absorption`'s threshold.
    delta_window : trades in :func:`~workbench.signals.volume_delta`'s window.
    delta_threshold : base units of windowed delta that count as a detection (None: 2 standard deviations).
    title : shown above the figures.
    start_ns, end_ns : draw only ``[start_ns, end_ns)`` of exchange time; the book is built from the first event
        (a recording's snapshot is at its start), the signals run over the trades drawn.
    """

    def __init__(self, events: np.ndarray, instrument: Instrument, *, n_levels: int = 100, time_bins: int = 300,
                 price_rows: int = 160, log_color: bool = True, max_trades: int = 3000,
                 iceberg_min_ratio: float = 1.0, delta_window: int = 200, delta_threshold: float | None = None,
                 title: str = "", start_ns: int | None = None, end_ns: int | None = None, **kwargs) -> None:
        if end_ns is not None:
            events = events[events["ts_exch_ns"] < end_ns]
        self.start_ns = start_ns
        if len(events) == 0:
            raise ConfigError("the recording holds no events")
        if n_levels < 1 or time_bins < 1 or price_rows < 1:
            raise ConfigError("n_levels, time_bins and price_rows must be >= 1")
        self.instrument = instrument
        self.tick = float(instrument.tick_size)
        self.lot = float(instrument.lot_size)
        self._book(events, n_levels, time_bins, price_rows)
        self._trades(events, iceberg_min_ratio, delta_window, delta_threshold)
        self._figures(log_color, max_trades, title)
        super().__init__([self.summary, self.log_toggle, self.book_figure, self.delta_figure], **kwargs)
        self.add_class("wb-replay")

    def _book(self, events: np.ndarray, n_levels: int, time_bins: int, price_rows: int) -> None:
        # pass 1: the touch after every venue message (one level: cheap to keep for the whole recording)
        rec = L2Book().replay(events, 1)
        self._rec_ix = rec.event_ix
        lv = rec.levels
        self._rec_levels = lv
        ts = events["ts_exch_ns"][rec.event_ix]
        both = (lv[:, 1, 0] > 0) & (lv[:, 3, 0] > 0)
        if self.start_ns is not None:
            both &= ts >= self.start_ns
        if not both.any():
            raise ConfigError("the book never has both sides in this recording (or in the window asked for)")
        ok = np.flatnonzero(both)
        #: the touch over time: exchange ns, best bid and ask (quote units)
        self.touch_ts = ts[ok]
        self.best_bid = lv[ok, 0, 0] * self.tick
        self.best_ask = lv[ok, 2, 0] * self.tick
        t0, t1 = int(self.touch_ts[0]), int(self.touch_ts[-1])
        edges = np.linspace(t0, max(t1, t0 + 1), time_bins + 1).astype(np.int64)
        # pass 2: the top n_levels at the end of each interval (after the last whole message at or before its right
        # edge), replaying message by message up to there: n_levels deep costs nothing per message
        ends = np.searchsorted(ts, edges[1:], side="right") - 1
        levels = np.empty((time_bins, 4, n_levels), np.int64)
        book, done = L2Book(), 0
        for b, k in enumerate(ends):
            upto = int(rec.event_ix[k]) + 1 if k >= 0 else 0
            if upto > done:
                book.apply(events[done:upto])
                done = upto
            levels[b] = book.levels(n_levels)
        px = np.concatenate([levels[:, 0, :], levels[:, 2, :]], axis=1)
        qty = np.concatenate([levels[:, 1, :], levels[:, 3, :]], axis=1)
        live = qty > 0
        # price bands over the touch's range and a tenth of it either side (deeper levels fall outside)
        lo_t, hi_t = int(lv[ok, 0, 0].min()), int(lv[ok, 2, 0].max())
        pad = max((hi_t - lo_t) // 10, 5)
        lo_t, hi_t = lo_t - pad, hi_t + pad
        bucket = max(1, math.ceil((hi_t - lo_t + 1) / price_rows))
        rows = (hi_t - lo_t) // bucket + 1
        row = np.where(live, px - lo_t, -1) // bucket
        keep = live & (row >= 0) & (row < rows)
        col = np.broadcast_to(np.arange(time_bins)[:, None], px.shape)
        grid = np.zeros((rows, time_bins))
        np.add.at(grid, (row[keep], col[keep]), qty[keep] * self.lot)
        #: resting size (base units) by price band (rows, low to high) and time interval (columns)
        self.grid = grid
        self.grid_ts = (edges[:-1] + edges[1:]) // 2
        self.grid_px = (lo_t + bucket * np.arange(rows) + (bucket - 1) / 2) * self.tick
        self.bucket_ticks = bucket

    # -- trades and signals ----------------------------------------------------------------------------------------
    def _trades(self, events: np.ndarray, min_ratio: float, window: int, threshold: float | None) -> None:
        kind = events["kind"]
        is_trade = kind == int(EventKind.TRADE)
        is_exec = np.isin(kind, _EXEC_KINDS)
        ix = np.flatnonzero(is_trade | is_exec)
        # an execution's side is the resting order's, so its aggressor is the other side (as
        # workbench.data.lobster.aggressor_side has it); a trade row's side is its aggressor
        side = events["side"][ix].astype(np.int8)
        aggressor = np.where(is_exec[ix], -side, side).astype(np.int8)
        # the touch displayed just before each trade: the last book state recorded before its row
        before = np.searchsorted(self._rec_ix, ix, side="left") - 1
        lv = self._rec_levels[np.maximum(before, 0)]
        seen = (before >= 0) & (lv[:, 1, 0] > 0) & (lv[:, 3, 0] > 0)
        if self.start_ns is not None:
            seen &= events["ts_exch_ns"][ix] >= self.start_ns
        ix, aggressor, lv = ix[seen], aggressor[seen], lv[seen]
        px_t = events["px_ticks"][ix].astype(np.float64)
        qty = events["qty_lots"][ix] * self.lot
        #: every trade: exchange ns, price (quote units), size (base units), aggressor (+1 buy, -1 sell, 0 unknown)
        self.trades = {"ts_ns": events["ts_exch_ns"][ix], "px": px_t * self.tick, "qty": qty, "side": aggressor}
        ab = signals.iceberg_absorption(px_t, qty, aggressor, lv[:, 0, 0].astype(np.float64), lv[:, 1, 0] * self.lot,
                                        lv[:, 2, 0].astype(np.float64), lv[:, 3, 0] * self.lot, min_ratio=min_ratio)
        hit = np.flatnonzero(ab.flag != 0)
        #: the iceberg detections: trade index, side of the absorbing level (+1 bid, -1 ask), absorption ratio
        self.icebergs = {"trade": hit, "side": ab.flag[hit].astype(np.int8), "ratio": ab.ratio[hit]}
        vd = signals.volume_delta(qty, aggressor, window)
        if threshold is None:
            threshold = 2.0 * float(np.std(vd.windowed)) if len(qty) else 0.0
        self.delta_threshold = float(threshold)
        out = np.sign(vd.windowed) * (np.abs(vd.windowed) > threshold) if threshold > 0 else np.zeros(len(qty))
        prev = np.r_[0.0, out[:-1]]
        onset = np.flatnonzero((out != 0) & (out != prev))
        #: volume delta per trade (base units) and its detections: trade index and sign (+1 buying pressure)
        self.delta = {"cum": vd.cum, "windowed": vd.windowed}
        self.delta_detections = {"trade": onset, "side": out[onset].astype(np.int8)}

    # -- drawing ---------------------------------------------------------------------------------------------------
    def _figures(self, log_color: bool, max_trades: int, title: str) -> None:
        t = bq.DateScale()
        y = bq.LinearScale()
        c = bq.ColorScale(scheme="Blues", min=0.0)
        self.heatmap = bq.HeatMap(x=_times(self.grid_ts), y=self.grid_px, color=self._color(log_color),
                                  scales={"x": t, "y": y, "color": c}, null_color="white")
        k = _thin(len(self.touch_ts), 4000)
        self.touch = bq.Lines(x=_times(self.touch_ts[k]), y=np.vstack([self.best_bid[k], self.best_ask[k]]),
                              scales={"x": t, "y": y}, colors=[_BUY, _SELL], stroke_width=1,
                              labels=["best bid", "best ask"], display_legend=True)
        tr = self.trades
        shown = np.arange(len(tr["qty"]))
        if len(shown) > max_trades:
            shown = np.sort(np.argsort(tr["qty"], kind="stable")[-max_trades:])
        size = bq.LinearScale(min=0.0, max=float(tr["qty"].max()) if len(tr["qty"]) else 1.0)
        marks = []
        for side, color, label in ((1, _BUY, "buys"), (-1, _SELL, "sells")):
            s = shown[tr["side"][shown] == side]
            marks.append(bq.Scatter(x=_times(tr["ts_ns"][s]), y=tr["px"][s], size=tr["qty"][s],
                                    scales={"x": t, "y": y, "size": size}, colors=[color], default_size=120,
                                    opacities=[0.6], stroke="black", stroke_width=0.3, labels=[label],
                                    display_legend=True))
        self.buys, self.sells = marks
        ice = self.icebergs
        ice_marks = []
        for side, color, label in ((1, _ICE_BID, "iceberg bid"), (-1, _ICE_ASK, "iceberg ask")):
            j = ice["trade"][ice["side"] == side]
            ice_marks.append(bq.Scatter(x=_times(tr["ts_ns"][j]), y=tr["px"][j], scales={"x": t, "y": y},
                                        marker="diamond", colors=[color], default_size=90, stroke="black",
                                        labels=[label], display_legend=True))
        self.iceberg_bid, self.iceberg_ask = ice_marks
        dd = self.delta_detections
        arrows = []
        for side, marker, color in ((1, "triangle-up", _BUY), (-1, "triangle-down", _SELL)):
            j = dd["trade"][dd["side"] == side]
            arrows.append(bq.Scatter(x=_times(tr["ts_ns"][j]), y=tr["px"][j], scales={"x": t, "y": y},
                                     marker=marker, colors=[color], default_size=140, stroke="black",
                                     labels=[f"delta {'+' if side > 0 else '-'}"], display_legend=True))
        self.delta_up, self.delta_down = arrows
        self.book_figure = bq.Figure(
            marks=[self.heatmap, self.touch, self.buys, self.sells, self.iceberg_bid, self.iceberg_ask,
                   self.delta_up, self.delta_down],
            axes=[bq.Axis(scale=t, tick_format="%H:%M:%S"),
                  bq.Axis(scale=y, side="left", tick_format=",.2f", label="price"),
                  bq.ColorAxis(scale=c, side="right", label="log10(1 + size)" if log_color else "size")],
            title=title or "Book, trades and detections", legend_location="top-left",
            layout=widgets.Layout(width="100%", height="480px"),
            fig_margin={"top": 40, "bottom": 40, "left": 80, "right": 110})
        self.book_figure.add_class("wb-replay-heatmap")
        self._color_axis = self.book_figure.axes[2]

        yd, yw = bq.LinearScale(), bq.LinearScale()
        dts = _times(tr["ts_ns"])
        k = _thin(len(dts), 4000)
        self.cum_line = bq.Lines(x=dts[k], y=self.delta["cum"][k], scales={"x": t, "y": yd}, colors=["#1f77b4"],
                                 labels=["cumulative"], display_legend=True)
        self.window_line = bq.Lines(x=dts[k], y=self.delta["windowed"][k], scales={"x": t, "y": yw},
                                    colors=["#ff7f0e"], labels=["windowed"], display_legend=True, opacities=[0.8])
        th = self.delta_threshold
        ends = dts[[0, -1]] if len(dts) else np.zeros(0, "datetime64[ns]")
        self.threshold_lines = bq.Lines(x=ends, y=np.array([[th, th], [-th, -th]]) if len(dts) else np.zeros(0),
                                        scales={"x": t, "y": yw}, colors=["#999999"], line_style="dashed")
        j = dd["trade"]
        self.delta_marks = bq.Scatter(x=dts[j], y=self.delta["windowed"][j], scales={"x": t, "y": yw},
                                      colors=["black"], default_size=30)
        self.delta_figure = bq.Figure(
            marks=[self.cum_line, self.window_line, self.threshold_lines, self.delta_marks],
            axes=[bq.Axis(scale=t, tick_format="%H:%M:%S"),
                  bq.Axis(scale=yd, side="left", label="cumulative delta", tick_format=",.2f"),
                  bq.Axis(scale=yw, side="right", label="windowed delta", tick_format=",.2f")],
            title="Volume delta (aggressor buys - sells, base units)", legend_location="top-left",
            layout=widgets.Layout(width="100%", height="240px"),
            fig_margin={"top": 40, "bottom": 40, "left": 80, "right": 80})
        self.delta_figure.add_class("wb-replay-delta")

        self.log_toggle = widgets.Checkbox(value=bool(log_color), description="log colour", indent=False)
        self.log_toggle.add_class("wb-replay-log")
        self.log_toggle.observe(self._on_log, names="value")
        n_ice = len(self.icebergs["trade"])
        self.summary = widgets.HTML(
            f"<b>{title or self.instrument.symbol}</b>: {len(tr['qty']):,} trades "
            f"({len(shown):,} drawn), {n_ice:,} iceberg detections "
            f"(bid {int(np.sum(self.icebergs['side'] > 0)):,}, ask {int(np.sum(self.icebergs['side'] < 0)):,}), "
            f"{len(dd['trade']):,} volume-delta detections (|windowed| > {th:,.4g}); heatmap "
            f"{self.grid.shape[0]} price bands of {self.bucket_ticks} tick(s) x {self.grid.shape[1]} intervals")
        self.summary.add_class("wb-replay-summary")

    def _color(self, log: bool) -> np.ndarray:
        return np.log10(1.0 + self.grid) if log else self.grid

    def _on_log(self, change) -> None:
        with self.heatmap.hold_sync(), self._color_axis.hold_sync():
            self.heatmap.color = self._color(change["new"])
            self._color_axis.label = "log10(1 + size)" if change["new"] else "size"
