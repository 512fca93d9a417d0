"""Exceptions, grouped by what the caller should do.

::

    WorkbenchError                 base of everything raised on purpose
    ├── ConfigError                bad configuration or arguments: fix the call, do not retry
    └── DataError                  input that cannot be read at all: fix or replace the input
        └── UnrecognisedFormatError   the file is not of the format asked for

Bad *rows* inside a readable input are not exceptions: readers count them in their stats and go on.
"""

from __future__ import annotations

__all__ = ["WorkbenchError", "ConfigError", "DataError", "UnrecognisedFormatError"]


class WorkbenchError(Exception):
    """Base class of the workbench's own exceptions."""


class ConfigError(WorkbenchError, ValueError):
    """A configuration or argument is invalid; retrying the same call cannot succeed."""


class DataError(WorkbenchError):
    """An input file or stream cannot be read (missing, unreadable, truncated beyond use)."""


class UnrecognisedFormatError(DataError):
    """The input is readable but is not in the format it was given as."""
