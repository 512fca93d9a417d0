"""Mean reversion to VWAP, Bollinger or Keltner bands."""

from __future__ import annotations

import numpy as np

from workbench.signals import BollingerZ, KeltnerPosition
from workbench.strategy.base import Env
from workbench.strategy.directional import DIRECTIONAL_PARAMS, Directional
from workbench.strategy.params import Param

__all__ = ["MeanReversion"]


class MeanReversion(Directional):
    """Mean reversion to a band. At every decision the mid is sampled and its distance from a centre is measured in
    band widths: ``bollinger`` (z-score of the mid over the last ``window`` samples), ``keltner`` (position in a
    Keltner channel of EMA span ``window`` and ATR multiple ``k``: +-1 at the bands), or ``vwap`` (z-score of
    ``mid - VWAP`` of the trades over the last ``window`` samples). Beyond ``k`` band widths (3 sigma by default)
    the price is stretched: buy below the lower band, sell above the upper one, and leave when it is back within
    ``exit_z`` of the centre, or on take-profit, stop or time. It loses in trends: the stop and ``max_hold_ms``
    bound that.
    """

    name = "mean_reversion"
    summary = "mean reversion to VWAP / Bollinger / Keltner bands"
    act_on_trade = True  # the VWAP band reads the trades
    params_spec = (
        Param("band", "bollinger", choices=("bollinger", "keltner", "vwap"), doc="which centre and width"),
        Param("window", 600, lo=2, hi=1_000_000, unit="samples", doc="samples (one per decision) in the band"),
        Param("k", 3.0, lo=0.1, hi=20.0, unit="widths", doc="enter beyond this many band widths"),
        Param("exit_z", 0.0, lo=0.0, hi=20.0, unit="widths", doc="exit when back within this of the centre"),
    ) + DIRECTIONAL_PARAMS

    def reset_signal(self) -> None:
        p = self.params
        self._z = 0.0
        self._n = 0
        self._boll = BollingerZ(p.window)
        self._kelt = KeltnerPosition(p.window, mult=p.k)
        self._pv = 0.0   # traded notional (ticks x lots) and lots since the last decision
        self._v = 0.0
        self._vwap_px = np.zeros(0)
        self._vwap_q = np.zeros(0)
        self._one = np.zeros(1)

    def on_trade(self, env: Env, symbol: str, px_ticks: int, qty_lots: int, aggressor: int, ts_ns: int) -> None:
        self._pv += px_ticks * qty_lots
        self._v += qty_lots

    def observe(self, env: Env) -> None:
        book = env.book()
        mid = (book.best_bid_ticks() + book.best_ask_ticks()) / 2
        p = self.params
        self._n += 1
        x = self._one
        if p.band == "bollinger":
            x[0] = mid
            self._z = float(self._boll.update(x)[0])
        elif p.band == "keltner":
            x[0] = mid
            self._z = float(self._kelt.update(x)[0]) * p.k  # in band widths: +-k at the bands
        else:
            # rolling VWAP over the last `window` decisions' trades, and the z-score of the mid's distance to it
            self._vwap_px = np.append(self._vwap_px[-(p.window - 1):], self._pv)
            self._vwap_q = np.append(self._vwap_q[-(p.window - 1):], self._v)
            self._pv = self._v = 0.0
            q = self._vwap_q.sum()
            if q <= 0:
                self._z = 0.0
                return
            x[0] = mid - self._vwap_px.sum() / q
            self._z = float(self._boll.update(x)[0])

    def _warm(self) -> bool:
        return self._n >= min(self.params.window, 30)

    def signal(self, env: Env) -> int:
        if not self._warm():
            return 0
        k = self.params.k
        return 1 if self._z <= -k else -1 if self._z >= k else 0

    def signal_exit(self, env: Env, position_side: int) -> bool:
        return position_side * self._z >= -self.params.exit_z
