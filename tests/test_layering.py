"""Imports point one way: foundation -> kernels -> sans-I/O components and data -> backtest -> I/O, command line.

No module of ``workbench`` imports a widget library; nothing below the I/O layer imports asyncio.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "workbench"

# rank of each part of the package; a module may import workbench modules of its own rank or lower
LAYERS = {
    "types": 0, "enums": 0, "exceptions": 0, "instrument": 0, "stats": 0, "__init__": 0, "kernel_cache": 0,
    "book": 1, "signals": 1,
    "data": 2, "venue": 2, "risk": 2, "strategy": 2, "economics": 2,
    "backtest": 3,
    "aio": 4, "apps": 4, "cli": 4, "journal": 4, "live": 4,
}
# modules of a part that sit in a higher layer: the asyncio wrappers around the sans-I/O venue
MODULE_LAYERS = {"venue/server.py": 4}
NO_ASYNCIO_BELOW = 4  # ranks 0-3 hold no asyncio (the I/O layer: server, live engine, command line)
WIDGET_LIBS = {"ipywidgets", "bqplot", "IPython.display", "traitlets"}


def modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        part = rel.parts[0].removesuffix(".py")
        yield path, rel, part


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def rank_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "workbench" or len(parts) < 2:
        return None
    return LAYERS[parts[1]]


@pytest.mark.parametrize("path,rel,part", list(modules()), ids=lambda x: str(x) if isinstance(x, Path) else "")
def test_imports_point_one_way(path, rel, part):
    assert part in LAYERS, f"{rel}: new top-level part {part!r}: give it a layer in tests/test_layering.py"
    own = MODULE_LAYERS.get(rel.as_posix(), LAYERS[part])
    if rel.name == "__init__.py" and len(rel.parts) == 1:
        own = 0  # the package's front door re-exports the foundation only
    names = imported(path)
    for name in names:
        r = rank_of(name)
        assert r is None or r <= own, f"{rel} (layer {own}) imports {name} (layer {r})"
        assert not any(name == w or name.startswith(w + ".") for w in WIDGET_LIBS), f"{rel} imports {name}"
        assert name != "widgets" and not name.startswith("widgets."), f"{rel} imports the widgets ({name})"
    if own < NO_ASYNCIO_BELOW:
        assert not any(n == "asyncio" or n.startswith("asyncio.") for n in names), f"{rel} imports asyncio"


def test_the_scan_sees_every_module():
    parts = {part for _, _, part in modules()}
    assert {"book", "signals", "data", "cli", "types"} <= parts


def test_widgets_use_the_engine_through_its_public_packages():
    """Panels are views: they import workbench's public packages (and its snapshot), never engine internals."""
    public = {"workbench", "workbench.live", "workbench.live.snapshot", "workbench.economics", "workbench.backtest",
              "workbench.strategy", "workbench.signals", "workbench.data", "workbench.book", "workbench.instrument",
              "workbench.venue", "workbench.venue.server", "workbench.venue.synthetic", "workbench.venue.replay",
              "workbench.risk"}
    for path in sorted((PKG.parent / "widgets").rglob("*.py")):
        for name in imported(path):
            if name.startswith("workbench"):
                assert name in public or name.rsplit(".", 1)[0] in public, f"widgets/{path.name} imports {name}"
