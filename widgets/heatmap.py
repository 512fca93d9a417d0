"""Order-book heatmap: price x time, resting size as colour, best bid/ask lines, trades, own orders and fills.

:class:`BookHeatmap` keeps the last ``columns`` book snapshots it was given (one column each) and draws them on a
price window that follows the mid: the window re-centres only when the mid leaves its middle half, so the picture
does not jitter with every tick. Rows are ``ticks_per_row`` ticks tall (chosen from the visible book when not
given). Sizes may be drawn on a log scale (``log1p``). Trades are dots sized by quantity and coloured by aggressor
(green: a buyer lifted the ask); own resting orders are squares at the newest column; own fills are diamonds.

Times are wall-clock ``ts_ns`` of the snapshots (trades: of the venue's event); prices in quote currency on the axis.
"""

from __future__ import annotations

import numpy as np
import ipywidgets as ipw
from bqplot import Axis, ColorAxis, ColorScale, DateScale, Figure, HeatMap, LinearScale, Lines, Scatter

from workbench.live import Snapshot

__all__ = ["BookHeatmap"]

_BUY, _SELL = "#2ca02c", "#d62728"


class BookHeatmap(ipw.VBox):
    """The heatmap panel of one symbol; :meth:`update` takes a :class:`~workbench.live.Snapshot`."""

    def __init__(self, symbol: str | None = None, *, rows: int = 60, columns: int = 200, levels: int = 20,
                 ticks_per_row: int | None = None, log_scale: bool = True, max_trades: int = 300,
                 height: str = "380px") -> None:
        self.symbol = symbol
        self.rows, self.columns, self.levels = rows, columns, levels
        self.ticks_per_row = ticks_per_row
        self._auto_rows = ticks_per_row is None
        self._ts = np.zeros(columns, np.int64)          # ring of snapshot times (ns)
        self._px = np.zeros((columns, 2 * levels), np.int64)
        self._qty = np.zeros((columns, 2 * levels), np.int64)
        self._bid = np.full(columns, np.nan)
        self._ask = np.full(columns, np.nan)
        self._n = 0
        self._lo_ticks: int | None = None               # price window: rows * ticks_per_row ticks from here
        self._tick = 1.0                                 # tick size in quote currency (display only)
        self._trades: list = []
        self._fills: list = []
        self.max_trades = max_trades     # the newest trades drawn: each is an SVG element the browser redraws
        self._trades_dirty = False
        self._orders_drawn: list | None = None
        self._last_seq = 0
        self._last_fill_seq = 0

        self.x = DateScale()
        self.y = LinearScale()
        self.c = ColorScale(scheme="viridis")
        zero = np.zeros((2, 2))
        self.heat = HeatMap(x=np.array([0, 1], dtype="datetime64[ms]"), y=np.array([0.0, 1.0]), color=zero,
                            scales={"x": self.x, "y": self.y, "color": self.c}, null_color=None)
        self.quotes = Lines(x=[], y=[], colors=[_BUY, _SELL], stroke_width=1.5, scales={"x": self.x, "y": self.y},
                            labels=["best bid", "best ask"])
        size = LinearScale(min=0)
        self.buys = Scatter(x=[], y=[], size=[], colors=[_BUY], default_size=64, stroke="white",
                            scales={"x": self.x, "y": self.y, "size": size}, labels=["buy trades"])
        self.sells = Scatter(x=[], y=[], size=[], colors=[_SELL], default_size=64, stroke="white",
                             scales={"x": self.x, "y": self.y, "size": size}, labels=["sell trades"])
        self.orders = Scatter(x=[], y=[], marker="square", colors=["white"], stroke="black", default_size=48,
                              scales={"x": self.x, "y": self.y}, labels=["own orders"])
        self.own_fills = Scatter(x=[], y=[], marker="diamond", colors=["orange"], stroke="black", default_size=90,
                                 scales={"x": self.x, "y": self.y}, labels=["own fills"])
        self.log_toggle = ipw.Checkbox(value=log_scale, description="log size", indent=False,
                                       layout=ipw.Layout(width="auto"))
        self.log_toggle.add_class("wb-heatmap-log")
        self.title = ipw.HTML()
        self.figure = Figure(
            marks=[self.heat, self.quotes, self.buys, self.sells, self.orders, self.own_fills],
            axes=[Axis(scale=self.x, label="time"), Axis(scale=self.y, side="left", label="price",
                                                         tick_format=".2f"),
                  ColorAxis(scale=self.c, side="right", label="size (log)" if log_scale else "size")],
            fig_margin={"top": 10, "bottom": 40, "left": 70, "right": 70}, animation_duration=0,
            layout=ipw.Layout(width="100%", height=height), min_aspect_ratio=0.01, max_aspect_ratio=100)
        self.figure.add_class("wb-heatmap")
        super().__init__([ipw.HBox([self.title, self.log_toggle]), self.figure])
        self.log_toggle.observe(lambda ch: self._redraw(), "value")

    # -- data in ---------------------------------------------------------------------------------------------------
    def update(self, snap: Snapshot) -> None:
        """Add ``snap`` as the newest column and redraw (call on the kernel's thread, inside ``hold_sync``)."""
        sym = self.symbol or next(iter(snap.books), None)
        book = snap.books.get(sym) if sym else None
        if book is None:
            return
        self.symbol = sym
        ins = snap.instruments.get(sym)
        if ins:
            self._tick = float(ins[0])
        i = self._n % self.columns
        self._ts[i] = snap.ts_ns
        px, qty = self._px[i], self._qty[i]
        px[:] = 0
        qty[:] = 0
        lv = book["bids"][: self.levels] + book["asks"][: self.levels]
        if lv:
            a = np.asarray(lv, np.int64)
            px[: len(a)], qty[: len(a)] = a[:, 0], a[:, 1]
        bid, ask = book["bids"][:1], book["asks"][:1]
        self._bid[i] = bid[0][0] if bid else np.nan
        self._ask[i] = ask[0][0] if ask else np.nan
        self._n += 1
        for t in snap.trades:
            if t[0] > self._last_seq and t[2] == sym:
                self._trades.append(t)
                self._trades_dirty = True
        if snap.trades:
            self._last_seq = max(self._last_seq, snap.trades[-1][0])
        new_fills = [f for f in snap.fills if f[0] > self._last_fill_seq and f[2] == sym]
        if snap.fills:
            self._last_fill_seq = max(self._last_fill_seq, snap.fills[-1][0])
        self._fills.extend(new_fills)
        self._follow(bid[0][0] if bid else None, ask[0][0] if ask else None, lv)
        self._redraw(orders=[o for o in snap.own_orders if o[0] == sym], fills_changed=bool(new_fills))

    def _follow(self, bid: int | None, ask: int | None, lv: list) -> None:
        if bid is None and ask is None:
            return
        mid = (bid + ask) / 2 if bid is not None and ask is not None else (bid if bid is not None else ask)
        if self._auto_rows and lv and (self.ticks_per_row is None or self._lo_ticks is None):
            span = max(p for p, _ in lv) - min(p for p, _ in lv)
            self.ticks_per_row = max(1, int(np.ceil(span / (0.8 * self.rows))))
        tpr = self.ticks_per_row or 1
        height = self.rows * tpr
        if self._lo_ticks is None or not (self._lo_ticks + height / 4 <= mid <= self._lo_ticks + 3 * height / 4):
            self._lo_ticks = int(mid - height / 2) // tpr * tpr

    # -- drawing -----------------------------------------------------------------------------------------------------
    def matrix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(times as datetime64[ms] oldest first, row prices, sizes[rows, columns]) of what is drawn."""
        k = min(self._n, self.columns)
        order = (np.arange(k) + (self._n - k)) % self.columns
        tpr, lo = self.ticks_per_row or 1, self._lo_ticks or 0
        r = (self._px[order] - lo) // tpr
        cols = np.broadcast_to(np.arange(k)[:, None], r.shape)
        m = (self._qty[order] > 0) & (r >= 0) & (r < self.rows)
        grid = np.bincount(r[m] * k + cols[m], weights=self._qty[order][m], minlength=self.rows * k)
        grid = grid.reshape(self.rows, k)
        times = (self._ts[order] // 1_000_000).astype("datetime64[ms]")
        prices = (lo + (np.arange(self.rows) + 0.5) * tpr) * self._tick
        return times, prices, grid

    def _redraw(self, orders: list | None = None, fills_changed: bool = True) -> None:
        if self._n < 2:
            return  # a heatmap needs two columns (bqplot squeezes a single one to 1-D)
        times, prices, grid = self.matrix()
        k = len(times)
        order = (np.arange(k) + (self._n - k)) % self.columns
        if self.log_toggle.value:
            grid = np.log1p(grid)
        grid = grid.astype(np.float32)  # half the bytes on the wire; colour needs no more
        grid[grid == 0] = np.nan  # empty price levels draw as the background
        t0 = self._ts[order[0]]
        if self._trades and (self._trades[0][1] < t0 or len(self._trades) > self.max_trades):
            self._trades = [t for t in self._trades if t[1] >= t0][-self.max_trades:]
            self._trades_dirty = True
        self._fills = [f for f in self._fills if f[1] >= t0][-500:]
        with self.heat.hold_sync():
            self.heat.x, self.heat.y, self.heat.color = times, prices, grid
        half = (self.ticks_per_row or 1) * self._tick / 2
        with self.y.hold_sync():
            self.y.min, self.y.max = float(prices[0] - half), float(prices[-1] + half)
        with self.quotes.hold_sync():
            self.quotes.x = times
            self.quotes.y = np.vstack([self._bid[order], self._ask[order]]) * self._tick
        for mark, side in ((self.buys, 1), (self.sells, -1)) if self._trades_dirty else ():
            tr = [t for t in self._trades if t[5] == side]
            with mark.hold_sync():
                mark.x = np.array([t[1] // 1_000_000 for t in tr], dtype="datetime64[ms]")
                mark.y = np.array([t[3] * self._tick for t in tr], float)
                mark.size = np.array([t[4] for t in tr], float)
        self._trades_dirty = False
        if orders is not None and orders != self._orders_drawn:
            self._orders_drawn = orders
            with self.orders.hold_sync():
                self.orders.x = np.full(len(orders), times[-1])
                self.orders.y = np.array([o[2] * self._tick for o in orders], float)
        if fills_changed:
            with self.own_fills.hold_sync():
                self.own_fills.x = np.array([f[1] // 1_000_000 for f in self._fills], dtype="datetime64[ms]")
                self.own_fills.y = np.array([f[4] * self._tick for f in self._fills], float)
        self.title.value = (f"<b>{self.symbol}</b> &nbsp; {self.rows} rows x {self.ticks_per_row} tick(s), "
                            f"{k} snapshots")
