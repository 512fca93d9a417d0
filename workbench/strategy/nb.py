"""Kernels of the shipped strategies: their decision rules on integers, for the Python objects and the compiled
backtest alike.

One rule, two callers: :class:`~workbench.strategy.MarketMaker` calls :func:`mm_decide_nb` on each decision (live,
and on the backtester's Python paths), and the backtester's compiled path (:mod:`workbench.backtest.compiled`) calls
it from its own kernel, so the strategy that is backtested is the one that trades.

Conventions: prices in ticks, sizes and positions in lots, sides +1 (buy) / -1 (sell); ``NONE`` (int64 min) stands
for "no price" (an empty side of the book). Order states are :class:`~workbench.strategy.orders.OrderState` values.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["mm_decide_nb", "NONE"]

NONE = np.iinfo(np.int64).min
_PENDING_NEW, _PENDING_CANCEL = 0, 7  # OrderState: a request in flight


@njit(cache=True)
def mm_decide_nb(bid_ticks, ask_ticks, pos_lots, q_lots, half_spread_ticks, skew_ticks, max_position, o_side, o_px,
                 o_state, n_open, cancel_out):
    """One decision of the market maker (:class:`~workbench.strategy.MarketMaker`).

    Targets: a bid ``half_spread_ticks`` below the best bid and an ask as far above the best ask, both shifted by
    ``round(skew_ticks * pos_lots / q_lots)`` ticks against the position; a side is on while one more fill of
    ``q_lots`` keeps ``|position| <= max_position * q_lots``. Of the ``n_open`` open orders (oldest first; arrays
    ``o_side``, ``o_px``, ``o_state``), one acknowledged order a side sitting exactly at its target is kept, every
    other acknowledged one is cancelled (``cancel_out[i] = 1``; 0 for the others); orders with a request in flight
    (PENDING_NEW, PENDING_CANCEL) are left alone. A side that is on, keeps no order and has no new order in flight
    gets a post-only quote of ``q_lots`` at its target.

    Returns ``(send_bid, bid_px_ticks, send_ask, ask_px_ticks)``; nothing is sent or cancelled when a side of the
    book is empty (``bid_ticks`` or ``ask_ticks`` NONE). Cancels are carried out before sends, in order.
    """
    for i in range(n_open):
        cancel_out[i] = 0
    if bid_ticks == NONE or ask_ticks == NONE:
        return False, 0, False, 0
    # Python's round() on a float: half to even (np.rint), as the Python object computed it before this kernel
    skew = np.int64(np.rint(skew_ticks * pos_lots / q_lots))
    t_bid = bid_ticks - half_spread_ticks - skew
    t_ask = ask_ticks + half_spread_ticks - skew
    on_bid = pos_lots + q_lots <= max_position * q_lots
    on_ask = pos_lots - q_lots >= -max_position * q_lots
    kept_bid = False
    kept_ask = False
    busy_bid = False
    busy_ask = False
    for i in range(n_open):
        st = o_state[i]
        side = o_side[i]
        if st == _PENDING_NEW or st == _PENDING_CANCEL:
            if st == _PENDING_NEW:
                if side > 0:
                    busy_bid = True
                else:
                    busy_ask = True
            continue  # a request in flight: leave it alone
        if side > 0:
            if on_bid and o_px[i] == t_bid and not kept_bid:
                kept_bid = True
            else:
                cancel_out[i] = 1
        else:
            if on_ask and o_px[i] == t_ask and not kept_ask:
                kept_ask = True
            else:
                cancel_out[i] = 1
    return (on_bid and not kept_bid and not busy_bid), t_bid, (on_ask and not kept_ask and not busy_ask), t_ask
