"""Momentum expansion: consolidation, then a breakout with a relative-volume surge."""

from __future__ import annotations

import numpy as np

from workbench.signals import MomentumBreakout
from workbench.strategy.base import Env
from workbench.strategy.directional import DIRECTIONAL_PARAMS, Directional
from workbench.strategy.params import Param

__all__ = ["MomentumExpansion"]


class MomentumExpansion(Directional):
    """Momentum expansion. While the price consolidates, its range over the last ``window`` trades is narrow; a
    trade through the top (bottom) of that range on a volume surge (the window's volume at least ``min_relvol``
    times its slow average) starts a move more often than a quiet one does. Enter in the direction of the latest
    breakout seen since the last decision, provided the range it broke was tight (at most ``max_range_ticks``);
    leave on take-profit, stop or time (momentum fades: ``max_hold_ms`` is short by default).
    """

    name = "momentum"
    summary = "breakout of a consolidation with a relative-volume surge"
    act_on_trade = True
    params_spec = (
        Param("window", 50, lo=2, hi=100_000, unit="trades", doc="trades in the consolidation range"),
        Param("min_relvol", 2.0, lo=0.0, hi=100.0, doc="window volume / its slow average, at least"),
        Param("max_range_ticks", 200, lo=1, hi=10_000_000, unit="ticks", doc="the range broken must be this tight"),
    ) + DIRECTIONAL_PARAMS

    def reset_signal(self) -> None:
        p = self.params
        self._bo = MomentumBreakout(p.window, min_relvol=p.min_relvol)
        self._px: list[float] = []
        self._q: list[float] = []
        self._recent: list[float] = []
        self._last = 0

    def on_trade(self, env: Env, symbol: str, px_ticks: int, qty_lots: int, aggressor: int, ts_ns: int) -> None:
        self._px.append(px_ticks)
        self._q.append(qty_lots)

    def observe(self, env: Env) -> None:
        self._last = 0
        if not self._px:
            return
        px = np.asarray(self._px, np.float64)
        res = self._bo.update(px, np.asarray(self._q, np.float64))
        w = self.params.window
        n = len(px)
        self._recent = (self._recent + self._px)[-(w + n):]  # the batch and the `window` trades before it
        self._px, self._q = [], []
        hits = np.flatnonzero(res.signal)
        if len(hits):
            j = len(self._recent) - n + int(hits[-1])
            before = self._recent[max(0, j - w):j]  # the range the breakout left
            if len(before) == w and max(before) - min(before) <= self.params.max_range_ticks:
                self._last = int(res.signal[hits[-1]])

    def signal(self, env: Env) -> int:
        return self._last
