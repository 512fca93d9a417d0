"""Latency and feed health: histograms of tick-to-order and order acknowledgement times (the engine's last samples),
their p50/p99, and the feed's rate, gaps, resyncs and the age of the last book update."""

from __future__ import annotations

import numpy as np
import ipywidgets as ipw
from bqplot import Axis, Bars, Figure, LinearScale, OrdinalScale

from workbench.live import Snapshot
from workbench.live.snapshot import LATENCY_EDGES_US

__all__ = ["LatencyPanel"]


def _label(us: int) -> str:
    return f"{us // 1000} ms" if us >= 1000 else f"{us} us"


_BINS = [f">{_label(e)}" if i == len(LATENCY_EDGES_US) - 1 else _label(e) for i, e in enumerate(LATENCY_EDGES_US)]
_NAMES = {"tick_to_order": "tick to order", "order_ack": "order to ack"}


class LatencyPanel(ipw.VBox):
    def __init__(self, height: str = "200px") -> None:
        x, y = OrdinalScale(), LinearScale(min=0)
        self.bars = Bars(x=_BINS, y=np.zeros((2, len(_BINS))), type="grouped", colors=["#1f77b4", "#ff7f0e"],
                         labels=list(_NAMES.values()), display_legend=True, scales={"x": x, "y": y})
        self.figure = Figure(marks=[self.bars], axes=[Axis(scale=x, label="latency (bin from)"),
                                                      Axis(scale=y, side="left", label="count")],
                             fig_margin={"top": 10, "bottom": 40, "left": 50, "right": 10}, animation_duration=0,
                             legend_location="top-right", layout=ipw.Layout(width="100%", height=height))
        self.stats = ipw.HTML()
        self.stats.add_class("wb-latency")
        self.health = ipw.HTML()
        self.health.add_class("wb-feed-health")
        super().__init__([self.stats, self.figure, self.health])

    def update(self, snap: Snapshot) -> None:
        lat = snap.latency
        counts = np.array([lat.get(k, {}).get("counts") or [0] * len(_BINS) for k in _NAMES], float)
        if not np.array_equal(counts, self.bars.y):
            self.bars.y = counts
        self.stats.value = " &nbsp; ".join(
            f"<b>{label}</b> p50 {_us(lat.get(k, {}).get('p50_us'))}, p99 {_us(lat.get(k, {}).get('p99_us'))}"
            f" (n={lat.get(k, {}).get('n', 0)})" for k, label in _NAMES.items())
        f = snap.feed
        ages = ", ".join(f"{s} {a:.0f} ms" for s, a in (f.get("age_ms") or {}).items())
        sync = ", ".join(f"{s} {'in sync' if ok else '<b style=color:#d62728>OUT OF SYNC</b>'}"
                         for s, ok in snap.in_sync.items())
        self.health.value = (f"feed: {f.get('book_updates_per_s', 0):.0f} book updates/s, gaps {f.get('gaps', 0)},"
                             f" resyncs {f.get('resyncs', 0)}, disconnects {f.get('disconnects', 0)}, malformed "
                             f"{f.get('malformed', 0)}; last update {ages}; {sync}")


def _us(v) -> str:
    return "-" if v is None else f"{v:.0f} us"
