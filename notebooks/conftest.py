"""The notebooks run as tests under nbval (see pyproject's pytest options).

A notebook that reads the real recordings says so in its metadata (``"workbench": {"needs_data": true}``); where
the recordings are absent (a fresh clone), its cells are skipped with a message saying where they were looked for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.data.paths import shared_data_root


def _needs_data(path: Path) -> bool:
    try:
        meta = json.loads(path.read_text()).get("metadata", {})
    except (OSError, ValueError):
        return False
    return bool(meta.get("workbench", {}).get("needs_data"))


def pytest_collection_modifyitems(config, items):
    root = shared_data_root()
    if root.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real recordings not found at {root}: put the shared data folder there or set "
                                   "WORKBENCH_DATA to its location")
    cache: dict[Path, bool] = {}
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb":
            if path not in cache:
                cache[path] = _needs_data(path)
            if cache[path]:
                item.add_marker(skip)
