"""Cached numba kernels of the package are dropped when any kernel module's source changes (numba itself checks
only the defining file, so a caller would keep an old callee inlined)."""

from __future__ import annotations

from workbench.kernel_cache import drop_stale_kernel_caches


def _tree(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "nb.py").write_text("from numba import njit\n@njit(cache=True)\ndef f(x):\n    return x\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "binance.py").write_text("from numba import njit\nfrom book.nb import f\n")
    (tmp_path / "data" / "plain.py").write_text("X = 1\n")  # no kernel: its changes keep the caches
    cache = tmp_path / "data" / "__pycache__"
    cache.mkdir()
    return cache


def _cached(cache):
    for name in ("binance.g-3.py311.nbi", "binance.g-3.py311.1.nbc"):
        (cache / name).write_bytes(b"x")
    return sorted(p.name for p in cache.glob("*.nb?"))


def test_caches_go_when_a_callee_module_changes_and_stay_otherwise(tmp_path):
    cache = _tree(tmp_path)
    _cached(cache)
    assert drop_stale_kernel_caches(tmp_path) == 2  # no stamp yet: made from unknown sources
    assert not list(cache.glob("*.nb?"))
    kept = _cached(cache)
    assert drop_stale_kernel_caches(tmp_path) == 0  # the same sources: kept
    (tmp_path / "data" / "plain.py").write_text("X = 2\n")
    assert drop_stale_kernel_caches(tmp_path) == 0
    assert sorted(p.name for p in cache.glob("*.nb?")) == kept
    # the callee's module changes, the caller's file does not (numba alone would load the caller's cache)
    (tmp_path / "book" / "nb.py").write_text("from numba import njit\n@njit(cache=True)\ndef f(x):\n    return x + 1\n")
    assert drop_stale_kernel_caches(tmp_path) == 2
    assert not list(cache.glob("*.nb?"))


def test_a_tree_it_cannot_write_is_left_alone(tmp_path, monkeypatch):
    from pathlib import Path

    cache = _tree(tmp_path)
    _cached(cache)

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    assert drop_stale_kernel_caches(tmp_path) == 0  # no error: the import goes on with what is there
    assert len(list(cache.glob("*.nb?"))) == 2


def test_the_package_stamp_matches_its_sources():
    drop_stale_kernel_caches()
    assert drop_stale_kernel_caches() == 0  # stable: a second import drops nothing
