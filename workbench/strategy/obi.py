"""Order-book-imbalance scalper."""

from __future__ import annotations

from workbench.strategy.base import Env
from workbench.strategy.directional import DIRECTIONAL_PARAMS, Directional
from workbench.strategy.params import Param

__all__ = ["ImbalanceScalper"]


class ImbalanceScalper(Directional):
    """Order-book-imbalance scalper. The imbalance of the visible book, ``(bid lots - ask lots) / (bid lots + ask
    lots)`` over the best ``levels`` levels, leads the next tick when it is lopsided: a book with far more bids than
    asks tends to tick up. Enter long when the imbalance exceeds ``threshold`` (short below ``-threshold``), and
    leave on take-profit, stop, time, or when the imbalance has turned past ``exit_threshold`` against the
    position. Edge is a tick or two, so costs decide: it needs maker entries (``entry=join``) or low taker fees.
    """

    name = "obi_scalper"
    summary = "order-book imbalance scalper"
    params_spec = (
        Param("levels", 5, lo=1, hi=50, unit="levels", doc="book levels a side in the imbalance"),
        Param("threshold", 0.6, lo=0.0, hi=1.0, doc="enter when |imbalance| exceeds this"),
        Param("exit_threshold", 0.2, lo=0.0, hi=1.0, doc="exit when the imbalance turns past this against us"),
    ) + DIRECTIONAL_PARAMS

    def imbalance(self, env: Env) -> float:
        book = env.book()
        b, a = book.depth_lots(1, self.params.levels), book.depth_lots(-1, self.params.levels)
        return (b - a) / (b + a) if b + a else 0.0

    def signal(self, env: Env) -> int:
        imb = self.imbalance(env)
        t = self.params.threshold
        return 1 if imb > t else -1 if imb < -t else 0

    def signal_exit(self, env: Env, position_side: int) -> bool:
        return position_side * self.imbalance(env) < -self.params.exit_threshold
