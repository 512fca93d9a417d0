"""Shared fixtures.

``shared_data``: the folder of real recordings (``../shared/data`` next to the repository, or ``$WORKBENCH_DATA``).
Tests that need it are skipped with a message saying where it was looked for when it is absent (a fresh clone).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.data.paths import shared_data_root

def shared_data_path() -> Path:
    """Where the real recordings are expected: ``$WORKBENCH_DATA`` if set, else ``../shared/data``."""
    return shared_data_root()


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
