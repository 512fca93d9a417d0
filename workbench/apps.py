"""The notebooks as apps: ``workbench dashboard`` (Voila) and ``workbench lab`` (JupyterLab), both on 127.0.0.1.

Voila is set up for a dashboard left open for days:

- a page that closes shuts its kernel down (the page posts to ``/voila/api/shutdown/<kernel>`` on unload; Voila
  checks that request's XSRF token, which its own page does not send, so the check is off. Voila serves on
  127.0.0.1 only, and a kernel id is a random UUID that no other site can guess);
- idle culling that works with a background updater: the dashboard's redraws are ``comm_msg`` traffic, which would
  otherwise count as activity and keep an abandoned kernel alive forever, so ``comm_msg`` and ``execute_request``
  are untracked message types; a kernel with no page connected is culled after ``cull_idle_s``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from workbench.exceptions import ConfigError

__all__ = ["NOTEBOOKS", "APPS", "notebooks_dir", "voila_command", "lab_command"]

APPS = {"dashboard": "03_monitoring_dashboard.ipynb", "calculator": "04_unit_economics.ipynb"}
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def notebooks_dir() -> Path:
    """The repository's notebooks (``$WORKBENCH_NOTEBOOKS`` overrides)."""
    path = Path(os.environ.get("WORKBENCH_NOTEBOOKS", NOTEBOOKS))
    if not path.is_dir():
        raise ConfigError(f"notebooks not found at {path}: run from a clone of the repository or set "
                          "WORKBENCH_NOTEBOOKS")
    return path


def _untracked() -> list[str]:
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

    base = list(MappingKernelManager.class_traits()["untracked_message_types"].default())
    return base + [m for m in ("comm_msg", "execute_request") if m not in base]


def voila_command(app: str = "dashboard", *, port: int = 8866, open_browser: bool = False,
                  cull_idle_s: int = 600, cull_interval_s: int = 60) -> list[str]:
    """The command line that serves ``app`` (a name of :data:`APPS` or a notebook path) with Voila."""
    nb = Path(app) if app.endswith(".ipynb") else notebooks_dir() / APPS.get(app, "")
    if app not in APPS and not app.endswith(".ipynb"):
        raise ConfigError(f"unknown app {app!r} (one of {', '.join(APPS)}, or a notebook path)")
    if not nb.is_file():
        raise ConfigError(f"notebook not found: {nb}")
    cmd = [sys.executable, "-m", "voila", str(nb), f"--port={int(port)}", "--Voila.ip=127.0.0.1",
           "--no-browser" if not open_browser else "--Voila.open_browser=True",
           "--Voila.tornado_settings=disable_check_xsrf=True",
           f"--MappingKernelManager.cull_idle_timeout={int(cull_idle_s)}",
           f"--MappingKernelManager.cull_interval={int(cull_interval_s)}",
           "--MappingKernelManager.cull_connected=False"]
    cmd += [f"--MappingKernelManager.untracked_message_types={m}" for m in _untracked()]
    return cmd


def lab_command(*, port: int = 8888, open_browser: bool = True) -> list[str]:
    """JupyterLab on the notebooks, on 127.0.0.1 (with Jupyter's own token)."""
    return [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={notebooks_dir()}", f"--port={int(port)}",
            "--ServerApp.ip=127.0.0.1"] + ([] if open_browser else ["--no-browser"])
