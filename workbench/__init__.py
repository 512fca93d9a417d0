"""workbench: a Jupyter-native workbench for automated micro-trading.

Layers, each importing only from the ones above it: ``types``/``enums``/``exceptions``/``instrument``; numba kernels
(``*/nb.py``); sans-I/O components (``book``, ``signals``); data readers and research (``data``); command line.
"""

from workbench.enums import EventFlag, EventKind, Side, TradingStatus
from workbench.exceptions import ConfigError, DataError, UnrecognisedFormatError, WorkbenchError
from workbench.instrument import Instrument
from workbench.types import empty_events, event_dt

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
