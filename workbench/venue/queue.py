"""Queue-position models: where a user's resting order stands in a replayed level it cannot see into.

A recording of an L2 book gives the total size at each price, never the orders that make it up. When a user's
order joins a price level of the replayed book, the venue (:class:`workbench.venue.replay.ReplayVenue`) asks a model
to estimate the public size *ahead* of it, and to update that estimate as the recording goes on. The user's order is
not part of the public book (no market impact), so "ahead" counts public lots only; the venue itself keeps the
user's own orders at one price in time priority among each other.

Every model answers three questions, all in integer lots in, estimates as floats (a probabilistic estimate is
fractional):

- ``join(displayed_lots)``: a new order's :class:`QueuePos` when it arrives at a level of that size;
- ``on_trade(pos, qty_lots)``: a recorded trade of ``qty_lots`` hit the level; returns how many lots of it reached
  past the queue ahead (``floor`` of the overshoot: those can fill the user's order), and the queue ahead is then
  gone (``ahead`` is 0, not negative);
- ``on_level(pos, prev_lots, new_lots, rng)``: the level's displayed size went from ``prev_lots`` to ``new_lots``.

Whatever the model, the queue ahead never exceeds the level's displayed size (``ahead <= new_lots`` after every
level update) and is never negative. Orders filled by the price trading *through* them, or by the opposite side
crossing them, are the venue's business, not the model's.

The models, from most to least pessimistic:

:class:`ConservativeQueue` (hftbacktest's ``RiskAdverseQueueModel``). Only trades at the level advance the order:
every size that leaves the level without a trade is assumed to have been behind it (cancels are always someone
else's, later, order). When the level shrinks below the estimate, the estimate shrinks with it: there cannot be
more ahead than there is at all. It never fills an order that a real exchange would not have filled, and often fills
later than the exchange would: a floor for a passive strategy's fill rate.

:class:`ProbabilisticQueue` (hftbacktest's ``ProbQueueModel`` with ``PowerProbQueueFunc(n)``). A decrease of the
level beyond what traded there is a cancellation somewhere in the queue; part of it is taken from the size ahead,
with weight ``f(ahead) / (f(ahead) + f(behind))``, ``f(x) = x**n``, ``behind = prev_lots - ahead``. hftbacktest's
update, kept exactly (``prob`` is the share taken *behind*)::

    chg   = prev - new - traded_since_last_update      # trades at the level were already counted by on_trade
    if chg < 0:  ahead = min(ahead, new)               # the level grew (net): nobody ahead left
    else:
        prob  = f(behind) / (f(behind) + f(ahead))
        ahead = min(ahead - (1 - prob) * chg + min(behind - prob * chg, 0), new)

The larger ``n``, the more a cancel is believed to come from the longer side of the queue (``n = 0``: half and
half; ``n = 1``: in proportion; ``n = 3``: hftbacktest's usual choice, the DESIGN's reference). It assumes that
trades reach the model before the level update that shows them (the replay venue merges trades before the diffs of
the same exchange time for this reason). With ``sampled=True`` the expectation becomes a draw: the lots taken from
ahead are ``Binomial(chg, 1 - prob)``, bounded by the sizes ahead and behind, from the generator the venue passes
(deterministic for the venue's seed).

:class:`NoQueue` (fill at touch). The order is at the front of its level the moment it arrives: every trade at its
price fills it, up to the trade's size. An optimistic ceiling, useful to bracket the other two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from workbench.exceptions import ConfigError

__all__ = ["QueuePos", "QueueModel", "ConservativeQueue", "ProbabilisticQueue", "NoQueue"]


@dataclass(slots=True)
class QueuePos:
    """One order's place in its level: ``ahead`` public lots in front of it (an estimate), ``traded`` lots traded at
    the level since the level's last size update (the probabilistic model subtracts them from the next decrease)."""

    ahead: float
    traded: float = 0.0


class QueueModel(Protocol):
    """What the replay venue asks of a queue-position model (see the module docstring)."""

    def join(self, displayed_lots: int) -> QueuePos: ...

    def on_trade(self, pos: QueuePos, qty_lots: int) -> int: ...

    def on_level(
        self, pos: QueuePos, prev_lots: int, new_lots: int, rng: np.random.Generator | None = None
    ) -> None: ...


def _trade_through_queue(pos: QueuePos, qty_lots: int) -> int:
    """Take a trade off the queue ahead; the overshoot (whole lots) reaches the order, and nothing is left ahead."""
    pos.ahead -= qty_lots
    if pos.ahead >= 0:
        return 0
    over = math.floor(-pos.ahead + 1e-9)  # 1e-9 absorbs rounding noise of a float estimate (2 - 1e-15 counts as 2)
    pos.ahead = 0.0
    return over


class ConservativeQueue:
    """Only trades at the level advance the order; every other decrease is assumed to be behind it."""

    def join(self, displayed_lots: int) -> QueuePos:
        return QueuePos(float(max(displayed_lots, 0)))

    def on_trade(self, pos: QueuePos, qty_lots: int) -> int:
        return _trade_through_queue(pos, qty_lots)

    def on_level(self, pos: QueuePos, prev_lots: int, new_lots: int, rng: np.random.Generator | None = None) -> None:
        pos.ahead = max(0.0, min(pos.ahead, float(new_lots)))

    def __repr__(self) -> str:
        return "ConservativeQueue()"


class ProbabilisticQueue:
    """hftbacktest's power-law probabilistic queue model (``PowerProbQueueModel(power)``).

    Parameters
    ----------
    power : ``n`` of ``f(x) = x**n`` (>= 0). 3 is hftbacktest's usual choice.
    sampled : draw the lots taken from ahead (binomial, seeded by the venue) instead of using the expectation.
    """

    def __init__(self, power: float = 3.0, *, sampled: bool = False) -> None:
        if not (isinstance(power, (int, float)) and math.isfinite(power) and power >= 0):
            raise ConfigError(f"power must be a finite number >= 0, got {power!r}")
        self.power = float(power)
        self.sampled = bool(sampled)

    def prob_behind(self, ahead: float, behind: float) -> float:
        """``f(behind) / (f(behind) + f(ahead))``: the share of a cancellation taken from behind the order.

        Written as ``1 / (1 + (ahead / behind)**n)``, the same number without overflow for large sizes; 1 when
        nothing is ahead (and when the level is empty: then nothing can be taken from ahead anyway).
        """
        if ahead <= 0:
            return 1.0
        if behind <= 0:
            return 0.0
        if self.power == 0:
            return 0.5
        r = math.log(ahead / behind) * self.power
        if r > 700:  # exp overflows; the share behind is 0 to double precision
            return 0.0
        return 1.0 / (1.0 + math.exp(r))

    def join(self, displayed_lots: int) -> QueuePos:
        return QueuePos(float(max(displayed_lots, 0)))

    def on_trade(self, pos: QueuePos, qty_lots: int) -> int:
        pos.traded += qty_lots
        return _trade_through_queue(pos, qty_lots)

    def on_level(self, pos: QueuePos, prev_lots: int, new_lots: int, rng: np.random.Generator | None = None) -> None:
        chg = prev_lots - new_lots - pos.traded
        pos.traded = 0.0
        if chg <= 0:
            pos.ahead = max(0.0, min(pos.ahead, float(new_lots)))
            return
        front = pos.ahead
        back = max(prev_lots - front, 0.0)
        prob = self.prob_behind(front, back)
        if self.sampled and rng is not None:
            n = int(round(chg))
            taken = float(rng.binomial(n, 1.0 - prob)) if n > 0 else 0.0
            taken = min(max(taken, chg - back), front)  # what is not behind must be ahead, and vice versa
            est = front - taken
        else:
            est = front - (1.0 - prob) * chg + min(back - prob * chg, 0.0)
        pos.ahead = max(0.0, min(est, float(new_lots)))

    def __repr__(self) -> str:
        s = ", sampled=True" if self.sampled else ""
        return f"ProbabilisticQueue(power={self.power:g}{s})"


class NoQueue:
    """Fill at touch: the order is first in its level from the moment it arrives."""

    def join(self, displayed_lots: int) -> QueuePos:
        return QueuePos(0.0)

    def on_trade(self, pos: QueuePos, qty_lots: int) -> int:
        return _trade_through_queue(pos, qty_lots)

    def on_level(self, pos: QueuePos, prev_lots: int, new_lots: int, rng: np.random.Generator | None = None) -> None:
        pos.ahead = 0.0

    def __repr__(self) -> str:
        return "NoQueue()"
