"""P&L: equity since the start, realised and unrealised, position, drawdown from the peak, fees and rebates, with
our fills marked on the equity line."""

from __future__ import annotations

import numpy as np
import ipywidgets as ipw
from bqplot import Axis, DateScale, Figure, LinearScale, Lines, Scatter

from workbench.live import Snapshot

__all__ = ["PnLPanel"]


class PnLPanel(ipw.VBox):
    """Keeps the last ``points`` equity values it was shown; :meth:`update` adds one per snapshot."""

    def __init__(self, points: int = 3000, every_ms: int = 250, height: str = "220px") -> None:
        self.points, self.every_ms = points, every_ms  # one point per every_ms: 3000 points are 12.5 minutes
        self._t: list[int] = []
        self._eq: list[float] = []
        self._dd: list[float] = []
        self._fill_t: list[int] = []
        self._fill_eq: list[float] = []
        self._last_fill = 0
        self._bucket_ms = 0
        x, y = DateScale(), LinearScale()
        self.equity = Lines(x=[], y=[], colors=["#1f77b4"], scales={"x": x, "y": y}, labels=["equity"])
        self.drawdown = Lines(x=[], y=[], colors=["#d62728"], fill="bottom", opacities=[0.6], fill_opacities=[0.2],
                              scales={"x": x, "y": y}, labels=["drawdown"])
        self.marks = Scatter(x=[], y=[], marker="diamond", colors=["orange"], default_size=40,
                             scales={"x": x, "y": y}, labels=["fills"])
        self.figure = Figure(marks=[self.drawdown, self.equity, self.marks],
                             axes=[Axis(scale=x, label="time"),
                                   Axis(scale=y, side="left", label="P&L (quote)", tick_format=".4~f")],
                             fig_margin={"top": 10, "bottom": 40, "left": 80, "right": 20}, animation_duration=0,
                             layout=ipw.Layout(width="100%", height=height))
        self.figure.add_class("wb-pnl-figure")
        self.stats = ipw.HTML()
        self.stats.add_class("wb-pnl")
        super().__init__([self.stats, self.figure])

    def update(self, snap: Snapshot) -> None:
        eq = snap.equity_change
        t_ms = snap.ts_ns // 1_000_000
        if self._t and t_ms - self._bucket_ms < self.every_ms:  # within the point's interval: the newest wins
            self._t[-1], self._eq[-1], self._dd[-1] = t_ms, eq, -snap.drawdown
        else:
            self._bucket_ms = t_ms
            self._t.append(t_ms)
            self._eq.append(eq)
            self._dd.append(-snap.drawdown)
        for f in snap.fills:
            if f[0] > self._last_fill:
                self._fill_t.append(f[1] // 1_000_000)
                self._fill_eq.append(eq)
        if snap.fills:
            self._last_fill = max(self._last_fill, snap.fills[-1][0])
        for series in (self._t, self._eq, self._dd):
            del series[: -self.points]
        t0 = self._t[0]
        keep = [i for i, t in enumerate(self._fill_t) if t >= t0]
        self._fill_t = [self._fill_t[i] for i in keep]
        self._fill_eq = [self._fill_eq[i] for i in keep]
        t = np.asarray(self._t, dtype="datetime64[ms]")
        with self.equity.hold_sync():
            self.equity.x, self.equity.y = t, np.asarray(self._eq)
        with self.drawdown.hold_sync():
            self.drawdown.x, self.drawdown.y = t, np.asarray(self._dd)
        with self.marks.hold_sync():
            self.marks.x = np.asarray(self._fill_t, dtype="datetime64[ms]")
            self.marks.y = np.asarray(self._fill_eq)
        pos = ", ".join(f"{s} {q:+d}" for s, q in snap.positions.items())
        cells = [("equity", f"{eq:+.4f}"), ("realised", f"{snap.realised:+.4f}"),
                 ("unrealised", f"{snap.unrealised:+.4f}"), ("position (lots)", pos),
                 ("drawdown", f"{snap.drawdown:.4f}"), ("fees", f"{snap.fees:.4f}"),
                 ("rebates", f"{snap.rebates:.4f}"), ("fills", str(snap.counters.get("fills", 0)))]
        self.stats.value = ("<table style='font-family:monospace;font-size:12px'><tr>"
                            + "".join(f"<th style='padding:0 8px'>{k}</th>" for k, _ in cells) + "</tr><tr>"
                            + "".join(f"<td class='wb-pnl-{k.split()[0]}' style='padding:0 8px;text-align:right'>"
                                      f"{v}</td>" for k, v in cells) + "</tr></table>")
