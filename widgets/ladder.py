"""Depth ladder: the top ``n`` levels of each side with their sizes, own resting orders marked beside them."""

from __future__ import annotations

import ipywidgets as ipw

from workbench.live import Snapshot

__all__ = ["DepthLadder"]


def _fmt(ticks: int, step: str) -> str:
    """``ticks`` x ``step`` as the decimal text the venue shows (decimals only at the edge, for display)."""
    places = len(step.split(".")[1].rstrip("0")) if "." in step else 0
    return f"{ticks * float(step):.{places}f}"


class DepthLadder(ipw.HTML):
    """Asks above bids, best in the middle; a level holding our order shows our open size in the last column."""

    def __init__(self, symbol: str | None = None, n: int = 10) -> None:
        super().__init__()
        self.symbol, self.n = symbol, n
        self.add_class("wb-ladder")

    def update(self, snap: Snapshot) -> None:
        sym = self.symbol or next(iter(snap.books), None)
        book = snap.books.get(sym) if sym else None
        if book is None:
            return
        tick, lot = snap.instruments.get(sym, ["1", "1"])
        mine: dict[tuple[int, int], int] = {}
        for o in snap.own_orders:
            if o[0] == sym:
                mine[(o[1], o[2])] = mine.get((o[1], o[2]), 0) + o[3]
        rows = []
        for side, levels, colour in ((-1, book["asks"][: self.n][::-1], "#d62728"),
                                     (1, book["bids"][: self.n], "#2ca02c")):
            for px, qty in levels:
                own = mine.get((side, px), 0)
                rows.append(f"<tr><td style='color:{colour};text-align:right'>{_fmt(px, tick)}</td>"
                            f"<td style='text-align:right'>{_fmt(qty, lot)}</td>"
                            f"<td class='wb-own' style='text-align:right;font-weight:bold'>"
                            f"{'&#9733; ' + _fmt(own, lot) if own else ''}</td></tr>")
        self.value = (f"<b>{sym}</b><table style='font-family:monospace;font-size:12px;border-spacing:8px 0'>"
                      "<tr><th>price</th><th>size</th><th>ours</th></tr>" + "".join(rows) + "</table>")
