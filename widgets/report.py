"""The backtest report: equity curve, fills on the price, the metrics table, and the P&L per round trip.

:class:`BacktestReport` draws a :class:`~workbench.backtest.BacktestResult`. ``update(result)`` redraws in place:
the marks are made once and only their data change, all of it inside ``hold_sync()`` (one message per mark), so a
slider that re-runs a backtest can call it on every change. Long series are thinned to ``max_points`` for the
drawing (the result keeps every row). Money is in the quote currency; times are UTC.

DOM classes: ``wb-report`` (the panel), ``wb-report-equity`` and ``wb-report-fills`` (the two time figures, which
share their time scale), ``wb-report-metrics`` (the table), ``wb-report-pnl-hist`` (the distribution),
``wb-report-title``.
"""

from __future__ import annotations

import contextlib
import math

import bqplot as bq
import ipywidgets as widgets
import numpy as np
import pandas as pd

from workbench.backtest import BacktestResult, round_trips

__all__ = ["BacktestReport"]

# (metric key, label, format) in the order shown
_METRICS = (
    ("net_pnl", "net P&L", "money"),
    ("gross_pnl", "gross P&L", "money"),
    ("fees_paid", "fees paid", "money"),
    ("rebates", "rebates", "money"),
    ("n_fills", "fills", "int"),
    ("n_round_trips", "round trips", "int"),
    ("win_rate", "win rate", "pct"),
    ("avg_win", "average win", "money"),
    ("avg_loss", "average loss", "money"),
    ("expectancy_per_trade", "expectancy per trade", "money"),
    ("max_drawdown", "max drawdown", "money"),
    ("sharpe", "Sharpe (annualised)", "num"),
    ("fill_ratio", "fill ratio", "pct"),
    ("markout_1s", "markout 1 s (bp)", "num"),
)
_BUY, _SELL = "#2ca02c", "#d62728"


def _fmt(v, kind: str) -> str:
    if v is None or not math.isfinite(v):
        return "&mdash;"
    if kind == "money":
        return f"{'-' if v < 0 else ''}${abs(v):,.2f}"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "pct":
        return f"{100 * v:.1f} %"
    return f"{v:,.2f}"


def _thin(n: int, max_points: int) -> slice:
    """Every k-th row so that at most about ``max_points`` are drawn (the last row is kept by the caller)."""
    return slice(None, None, max(1, -(-n // max_points)))


def _times(ts_ns) -> np.ndarray:
    return np.asarray(ts_ns, dtype=np.int64).astype("datetime64[ns]")


class BacktestReport(widgets.VBox):
    """The report panel; ``BacktestReport(result)`` or ``BacktestReport()`` then :meth:`update`.

    Parameters
    ----------
    result : the run to draw first (optional).
    max_points : most points drawn per time series.
    bins : bins of the P&L-per-round-trip histogram.
    """

    def __init__(self, result: BacktestResult | None = None, *, max_points: int = 2000, bins: int = 30,
                 **kwargs) -> None:
        self.max_points = int(max_points)
        self.bins = int(bins)
        self.result: BacktestResult | None = None
        self.n_updates = 0
        t = self._t = bq.DateScale()
        ye, yp, xh, yh = bq.LinearScale(), bq.LinearScale(), bq.LinearScale(), bq.LinearScale()
        empty = np.zeros(0)
        empty_t = np.zeros(0, "datetime64[ns]")
        self.equity_line = bq.Lines(x=empty_t, y=empty, scales={"x": t, "y": ye}, colors=["#1f77b4"])
        self.mid_line = bq.Lines(x=empty_t, y=empty, scales={"x": t, "y": yp}, colors=["#7f7f7f"], stroke_width=1)
        self.buys = bq.Scatter(x=empty_t, y=empty, scales={"x": t, "y": yp}, colors=[_BUY], marker="triangle-up",
                               default_size=30, names=None, display_legend=True, labels=["buys"])
        self.sells = bq.Scatter(x=empty_t, y=empty, scales={"x": t, "y": yp}, colors=[_SELL],
                                marker="triangle-down", default_size=30, display_legend=True, labels=["sells"])
        self.pnl_bars = bq.Bars(x=empty, y=empty, scales={"x": xh, "y": yh}, colors=["#1f77b4"], padding=0.05)
        margin = {"top": 30, "bottom": 35, "left": 70, "right": 20}
        size = widgets.Layout(width="100%", height="260px")
        self.equity_figure = bq.Figure(
            marks=[self.equity_line], title="Equity, change from the start (quote)",
            axes=[bq.Axis(scale=t, tick_format="%H:%M:%S"),
                  bq.Axis(scale=ye, side="left", tick_format=",.2f", num_ticks=6)],
            layout=size, fig_margin=margin)
        self.equity_figure.add_class("wb-report-equity")
        self.fills_figure = bq.Figure(
            marks=[self.mid_line, self.buys, self.sells], title="Fills on the mid price",
            axes=[bq.Axis(scale=t, tick_format="%H:%M:%S"),
                  bq.Axis(scale=yp, side="left", tick_format=",.2f", num_ticks=6)],
            legend_location="top-left", layout=size, fig_margin=margin)
        self.fills_figure.add_class("wb-report-fills")
        self.hist_figure = bq.Figure(
            marks=[self.pnl_bars], title="Net P&L per round trip",
            axes=[bq.Axis(scale=xh, tick_format=",.2f", label="quote", num_ticks=5),
                  bq.Axis(scale=yh, side="left", label="round trips", num_ticks=4)],
            layout=widgets.Layout(width="420px", height="260px"), fig_margin=margin)
        self.hist_figure.add_class("wb-report-pnl-hist")
        self.metrics_table = widgets.HTML()
        self.metrics_table.add_class("wb-report-metrics")
        self.title = widgets.HTML()
        self.title.add_class("wb-report-title")
        super().__init__([self.title, self.equity_figure, self.fills_figure,
                          widgets.HBox([self.metrics_table, self.hist_figure])], **kwargs)
        self.add_class("wb-report")
        self._held = (self.equity_line, self.mid_line, self.buys, self.sells, self.pnl_bars, self.metrics_table,
                      self.title)
        if result is not None:
            self.update(result)

    def update(self, result: BacktestResult) -> None:
        """Draw ``result`` in place of the one shown (the marks are reused; one message per mark)."""
        eq, fills = result.equity, result.fills
        n = len(eq)
        step = _thin(n, self.max_points)
        idx = np.arange(n)[step]
        if n and idx[-1] != n - 1:
            idx = np.append(idx, n - 1)
        ts = eq["ts_ns"].to_numpy(np.int64)[idx] if n else np.zeros(0, np.int64)
        # drawn as the change from the start: readable digits, the same curve
        equity = eq["equity"].to_numpy(np.float64)[idx] - float(eq["equity"].iloc[0]) if n else np.zeros(0)
        mid_col = "mid_px" if "mid_px" in eq.columns else next((c for c in eq.columns if c.startswith("mid_px_")), None)
        mid = eq[mid_col].to_numpy(np.float64)[idx] if n and mid_col else np.zeros(0)
        side = fills["side"].to_numpy() if len(fills) else np.zeros(0, np.int8)
        buy, sell = side > 0, side < 0
        fts = fills["ts_ns"].to_numpy(np.int64) if len(fills) else np.zeros(0, np.int64)
        fpx = fills["px"].to_numpy(np.float64) if len(fills) else np.zeros(0)
        pnl = round_trips(fills)["net_pnl"].to_numpy(np.float64) if len(fills) else np.zeros(0)
        counts, edges = np.histogram(pnl, bins=self.bins) if len(pnl) else (np.zeros(0), np.zeros(1))

        with contextlib.ExitStack() as stack:
            for w in self._held:
                stack.enter_context(w.hold_sync())
            self.equity_line.x, self.equity_line.y = _times(ts), equity
            self.mid_line.x, self.mid_line.y = _times(ts), mid
            self.buys.x, self.buys.y = _times(fts[buy]), fpx[buy]
            self.sells.x, self.sells.y = _times(fts[sell]), fpx[sell]
            self.pnl_bars.x = (edges[:-1] + edges[1:]) / 2
            self.pnl_bars.y = counts.astype(np.float64)
            self.metrics_table.value = self._metrics_html(result)
            self.title.value = self._title_html(result)
        self.result = result
        self.n_updates += 1

    @staticmethod
    def _metrics_html(result: BacktestResult) -> str:
        m = result.metrics
        rows = "".join(f"<tr><th style='text-align:left'>{label}</th><td style='text-align:right'>"
                       f"{_fmt(m.get(key, math.nan), kind)}</td></tr>" for key, label, kind in _METRICS)
        return f"<table class='wb-report-metrics-table'>{rows}</table>"

    @staticmethod
    def _title_html(result: BacktestResult) -> str:
        params = ", ".join(f"{k}={v}" for k, v in result.params.items())
        err = f" <span style='color:#b00'>error: {result.error}</span>" if result.error else ""
        wall = f", ran in {result.wall_s:.2f} s" if result.wall_s else ""
        return f"<b>Backtest</b> ({params}{wall}){err}"

    def metrics_frame(self) -> pd.DataFrame:
        """The shown metrics as a table (label, value), for printing in a notebook."""
        m = self.result.metrics if self.result else {}
        return pd.DataFrame({"value": [m.get(k, math.nan) for k, _, _ in _METRICS]},
                            index=pd.Index([label for _, label, _ in _METRICS], name="metric"))
