"""Where the real recordings are: ``$WORKBENCH_DATA``, else ``../shared/data`` beside the repository checkout."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data_root"]


def shared_data_root() -> Path:
    """The recordings folder (it may not exist: callers skip or say where they looked)."""
    env = os.environ.get("WORKBENCH_DATA")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[3] / "shared" / "data"
