"""Pairs statistical arbitrage between two correlated instruments."""

from __future__ import annotations

import math

import numpy as np

from workbench.signals import BollingerZ
from workbench.strategy.base import Env, Strategy
from workbench.strategy.params import Param

__all__ = ["PairsArb"]


class PairsArb(Strategy):
    """Pairs statistical arbitrage. Two instruments that move together (the same coin on two markets, or two
    correlated coins) drift apart and come back. The spread ``log(mid A) - beta * log(mid B)`` is sampled at every
    decision and z-scored over the last ``window`` samples; beyond ``entry_z`` sell the rich leg and buy the cheap
    one, in equal notional (``notional`` quote units a leg, ``beta`` times that on B), and close both when the
    z-score is back within ``exit_z``, or after ``max_hold_ms``. Both legs are market orders: the edge is the
    spread's reversion, so it must exceed two round trips of costs.
    """

    name = "pairs"
    summary = "pairs statistical arbitrage on the log-price spread"
    n_symbols = 2
    act_on_book = False
    params_spec = (
        Param("decide_every_ms", 1000, lo=1, hi=3_600_000, unit="ms", doc="sampling and decision interval"),
        Param("window", 300, lo=10, hi=1_000_000, unit="samples", doc="samples in the spread's z-score"),
        Param("beta", 1.0, lo=0.0, hi=100.0, doc="hedge ratio of B against A"),
        Param("entry_z", 2.0, lo=0.1, hi=20.0, unit="sigma", doc="open beyond this z-score"),
        Param("exit_z", 0.5, lo=0.0, hi=20.0, unit="sigma", doc="close within this z-score"),
        Param("notional", 1000.0, lo=0.0, hi=1e9, unit="quote", doc="notional of leg A per trade"),
        Param("max_hold_ms", 600_000, lo=1, hi=86_400_000, unit="ms", doc="close after holding this long"),
    )

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.on_params(None, [])

    def on_params(self, env, changes) -> None:
        self._z = BollingerZ(self.params.window)
        self._n = 0
        self._one = np.zeros(1)
        self._opened_ns = 0

    def _mids(self, env: Env) -> tuple[float, float] | None:
        out = []
        for s in env.symbols[:2]:
            b = env.book(s)
            bid, ask = b.best_bid_ticks(), b.best_ask_ticks()
            if bid is None or ask is None:
                return None
            out.append((bid + ask) / 2 * float(env.instrument(s).tick_size))
        return out[0], out[1]

    def on_timer(self, env: Env) -> None:
        mids = self._mids(env)
        if mids is None:
            return
        p = self.params
        self._one[0] = math.log(mids[0]) - p.beta * math.log(mids[1])
        z = float(self._z.update(self._one)[0])
        self._n += 1
        if env.open_orders() or self._n < min(p.window, 30):
            return  # legs in flight, or not enough history
        a, b = env.symbols[:2]
        pos_a = env.position_lots(a)
        if pos_a or env.position_lots(b):
            if abs(z) <= p.exit_z or env.now_ns - self._opened_ns >= p.max_hold_ms * 1_000_000:
                for s in (a, b):
                    pos = env.position_lots(s)
                    if pos:
                        env.market(-1 if pos > 0 else 1, abs(pos), symbol=s, tag="exit")
            return
        if abs(z) < p.entry_z:
            return
        side_a = -1 if z > 0 else 1  # spread high: A is rich, sell it and buy B
        qa = self._lots(env, a, p.notional, mids[0])
        qb = self._lots(env, b, p.notional * p.beta, mids[1])
        if qa and qb:
            env.market(side_a, qa, symbol=a, tag="leg_a")
            env.market(-side_a, qb, symbol=b, tag="leg_b")
            self._opened_ns = env.now_ns

    @staticmethod
    def _lots(env: Env, symbol: str, notional: float, px: float) -> int:
        return int(notional / px / float(env.instrument(symbol).lot_size))
