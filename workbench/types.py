"""Structured dtypes: each data format of the engine defined once.

Conventions: prices are int64 ticks of the instrument (``px_ticks``), sizes int64 lots (``qty_lots``), times int64
nanoseconds since the Unix epoch (``*_ns``; for sources without a date, nanoseconds since that session's midnight).
"""

from __future__ import annotations

import numpy as np

__all__ = ["event_dt", "empty_events"]

#: One normalized market event. ``id``/``first_id``/``prev_id`` carry the venue's ids: for a Binance depth diff
#: ``first_id`` = U, ``id`` = u, ``prev_id`` = pu (futures; -1 otherwise); for a snapshot level ``id`` =
#: lastUpdateId; for bookTicker ``id`` = u; for a trade ``id`` = trade id; for LOBSTER ``id`` = order id.
event_dt = np.dtype(
    [
        ("ts_exch_ns", np.int64),   # exchange time
        ("ts_local_ns", np.int64),  # local arrival time (equal to ts_exch_ns when the source has one clock)
        ("kind", np.uint8),         # workbench.enums.EventKind
        ("side", np.int8),          # workbench.enums.Side
        ("flags", np.uint16),       # workbench.enums.EventFlag bits
        ("px_ticks", np.int64),
        ("qty_lots", np.int64),
        ("id", np.int64),
        ("first_id", np.int64),
        ("prev_id", np.int64),
    ],
    align=True,
)


def empty_events(n: int = 0) -> np.ndarray:
    """A zeroed event array of ``n`` rows."""
    return np.zeros(n, dtype=event_dt)
