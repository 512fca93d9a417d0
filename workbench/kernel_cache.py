"""Dropping numba's cached kernels of this package when any kernel source has changed.

numba checks a cached kernel against the file that defines it, and only that file: a kernel that calls a kernel of
another module (``feed_frames_nb`` calls :mod:`workbench.book.nb`'s, the backtester calls the book's, the risk
guard's and the strategies') keeps running the old callee after that module changed, as long as its own file did
not (a ``git pull`` rewrites only the files that changed). So :func:`drop_stale_kernel_caches` keeps a hash of
every kernel module's source beside the caches (``__pycache__/kernels.sha256``) and, when it differs, removes
every cached kernel of the package; they compile again on first use. It runs once, when :mod:`workbench` is
imported.

Caches kept elsewhere (``NUMBA_CACHE_DIR``, or numba's user-wide directory when the package's directory is not
writable) are not touched: there the package is installed, and an install rewrites every file, which numba sees.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["drop_stale_kernel_caches"]

_STAMP = "kernels.sha256"


def drop_stale_kernel_caches(root: Path | None = None) -> int:
    """Remove the cached kernels (``*.nbi``, ``*.nbc``) under ``root`` (default: this package) if the sources of
    its kernel modules (the ones that use ``njit``) differ from those the caches were made from; returns how many
    files went. Never raises for the file system: a read-only tree keeps what it has."""
    root = Path(__file__).parent if root is None else root
    try:
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            src = path.read_bytes()
            if b"njit" in src:
                h.update(path.relative_to(root).as_posix().encode() + b"\0" + src + b"\0")
        digest = h.hexdigest()
        stamp = root / "__pycache__" / _STAMP
        if stamp.is_file() and stamp.read_text() == digest:
            return 0
        n = 0
        for path in list(root.rglob("*.nbi")) + list(root.rglob("*.nbc")):
            path.unlink(missing_ok=True)
            n += 1
        stamp.parent.mkdir(exist_ok=True)
        tmp = stamp.with_suffix(".tmp")
        tmp.write_text(digest)
        tmp.replace(stamp)  # whole or not at all: a concurrent import reads the old stamp or the new one
        return n
    except OSError:
        return 0
