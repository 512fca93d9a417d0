"""Shared fixtures.

``shared_data``: the folder of real recordings (``../shared/data`` next to the repository, or ``$WORKBENCH_DATA``).
Tests that need it are skipped with a message saying where it was looked for when it is absent (a fresh clone).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Default location of the real recordings: ``../shared/data`` relative to the repository root.
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data_path() -> Path:
    """Where the real recordings are expected: ``$WORKBENCH_DATA`` if set, else :data:`DEFAULT_SHARED_DATA`."""
    env = os.environ.get("WORKBENCH_DATA")
    return Path(env).expanduser() if env else DEFAULT_SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real recordings folder; skips the test when it is absent."""
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(
            f"real recordings not found at {path}: put the shared data folder there or set WORKBENCH_DATA "
            "to its location"
        )
    return path
