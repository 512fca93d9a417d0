"""workbench: a Jupyter-native workbench for automated micro-trading.

Layers, each importing only from the ones above it: ``types``/``enums``/``exceptions``/``instrument``; numba kernels
(``*/nb.py``); sans-I/O components (``book``, ``signals``); data readers and research (``data``); command line.
"""

from workbench.kernel_cache import drop_stale_kernel_caches

drop_stale_kernel_caches()  # before any kernel runs: numba would load a cache that inlines an old callee

from workbench.enums import EventFlag, EventKind, Side, TradingStatus  # noqa: E402
from workbench.exceptions import ConfigError, DataError, UnrecognisedFormatError, WorkbenchError  # noqa: E402
from workbench.instrument import Instrument  # noqa: E402
from workbench.types import empty_events, event_dt  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "EventFlag",
    "EventKind",
    "Instrument",
    "Side",
    "TradingStatus",
    "UnrecognisedFormatError",
    "WorkbenchError",
    "empty_events",
    "event_dt",
]
