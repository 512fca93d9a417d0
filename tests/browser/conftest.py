"""Browser tests: Voila apps served on 127.0.0.1 (a free port) and driven in Debian's headless chromium by Playwright.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``scripts/test``), never Playwright's own download. Other
hosts are unreachable (Voila asks a CDN for fonts; the machine has no outside network). Screenshots go to
``$WORKBENCH_ARTIFACTS`` (default ``artifacts/`` in the repository).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
# Other hosts are unreachable by name (Voila asks a CDN for fonts): resolved to nothing by chromium itself, not by
# request interception, which would hold up the page's unload beacon that shuts its kernel down.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("WORKBENCH_ARTIFACTS", ROOT / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kernel_pids(server_pid: int) -> list[int]:
    """The kernels a Voila server runs: its child processes running ipykernel."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == server_pid and b"ipykernel" in cmd:
            out.append(int(proc.name))
    return out


@contextlib.contextmanager
def voila(app: str, env: dict | None = None, **kw):
    """Serve ``app`` with the options of ``workbench dashboard``; yields (base url, process). Stopped on exit."""
    from workbench.apps import voila_command

    port = free_port()
    log = open(artifacts_dir() / f"voila-{app.replace('/', '_')}.log", "w")
    proc = subprocess.Popen(voila_command(app, port=port, **kw), env={**os.environ, **(env or {})}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"voila exited with {proc.returncode}; see {log.name}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("voila did not open its port in 60 s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/", proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian's chromium not found at {CHROMIUM}: scripts/test installs it (apt, as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = ctx.new_page()
    yield p
    with contextlib.suppress(Exception):
        p.goto("about:blank")  # lets Voila shut the page's kernel down
    ctx.close()
