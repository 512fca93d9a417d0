"""Write notebooks 01 and 03 from their cell sources (kept here so that a change to them is reviewed as code)."""

from pathlib import Path

import nbformat as nbf

ROOT = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
          "language_info": {"name": "python"}}


def md(s):
    return nbf.v4.new_markdown_cell(s.strip())


def code(s):
    return nbf.v4.new_code_cell(s.strip())


quickstart = [
    md("""
# Quickstart: an engine trading in this kernel

The embedded simulated exchange speaks the Binance Spot protocol; the engine reaches it by URL and key, as it would a
real exchange. The engine runs on its own event loop in a background thread, so this notebook stays free while it
trades. `Sandbox` starts both (a small market maker by default).
"""),
    code("""
# NBVAL_CHECK_OUTPUT
import asyncio

import widgets
from workbench.live import Sandbox
from workbench.strategy import MarketMaker

sandbox = Sandbox(MarketMaker(half_spread_ticks=1, order_qty=0.001, max_position=3, decide_every_ms=100)).start()
sandbox
"""),
    md("""
## The dashboard

Order-book heatmap with trades and our orders, depth ladder, P&L, the risk guard with **Kill**, the strategy's
parameters as sliders, latencies. It redraws ten times a second from a task on this kernel's loop.
"""),
    code("""
dash = widgets.dashboard(sandbox.engine)
dash
"""),
    md("""
Parameters change while the strategy runs; the sliders above send the same command. Each change is an event (and
is journaled when the engine has a journal).
"""),
    code("""
# NBVAL_CHECK_OUTPUT
[c.name for c in sandbox.engine.set_params(half_spread_ticks=2)]
"""),
    code("""
await asyncio.sleep(3)  # the engine trades meanwhile; the panels redraw
snap = sandbox.engine.snapshot()
assert snap.counters["decisions"] > 0 and snap.params["half_spread_ticks"] == 2
assert dash.frames > 0, "the dashboard drew nothing"
print(f"{snap.counters['decisions']} decisions, {snap.counters.get('fills', 0)} fills, guard {snap.guard_state}")
"""),
    md("""
## Kill, then stop

Kill stops new orders, cancels everything, flattens with market orders and waits until the venue confirms: no open
order, flat position. Then the engine and the venue stop.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
confirmed = sandbox.engine.kill()
assert confirmed is True, sandbox.engine.snapshot().alerts[-5:]  # why not, if the venue did not confirm
assert sandbox.open_orders() == []
dash.close()
sandbox.stop()
sandbox
"""),
]

monitor = [
    md("""
# Monitoring dashboard

Attaches to a running engine through its control plane (the URL and token that `workbench run` prints, given to
`workbench dashboard --control URL --token T`), or, without them, starts the embedded simulated exchange and an engine
in this kernel.
"""),
    code("""
import os

import widgets
from workbench.live import Sandbox

url, token = os.environ.get("WORKBENCH_CONTROL_URL"), os.environ.get("WORKBENCH_CONTROL_TOKEN")
if url:
    sandbox = None
    dash = widgets.dashboard(url=url, token=token)
else:
    sandbox = Sandbox().start()
    dash = widgets.dashboard(sandbox.engine)
dash
"""),
    code("""
assert dash.source.latest() is not None, "no snapshot from the engine"
"""),
]

for name, cells, meta in (("01_quickstart.ipynb", quickstart, {}),
                          ("03_monitoring_dashboard.ipynb", monitor, {})):
    nb = nbf.v4.new_notebook(cells=cells, metadata={**KERNEL, **meta})
    nbf.write(nb, ROOT / name)
    print("wrote", ROOT / name)


def execute_and_keep_stable_outputs(path: Path) -> None:
    """Run the notebook and keep the outputs of `# NBVAL_CHECK_OUTPUT` cells only (nbval compares those); the others
    are live and assert in their own code. Widget state is not saved: it would be stale by definition."""
    from nbclient import NotebookClient

    nb = nbf.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            if not cell.source.startswith("# NBVAL_CHECK_OUTPUT"):
                cell.outputs = []
                cell.execution_count = None  # nbval treats a cell with a count as run; its outputs as reference
    nb.metadata.pop("widgets", None)
    nbf.write(nb, path)


if __name__ == "__main__":
    import sys

    if "--execute" in sys.argv:
        for name in ("01_quickstart.ipynb", "03_monitoring_dashboard.ipynb"):
            execute_and_keep_stable_outputs(ROOT / name)
            print("executed", name)
