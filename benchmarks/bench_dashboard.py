"""The dashboard's speed, in the browser and in the kernel.

    .venv/bin/python benchmarks/bench_dashboard.py [--seconds 10]

- heatmap refreshes per second in the browser: the Voila dashboard attached to an engine trading the embedded
  synthetic venue, opened in Debian's headless chromium; a MutationObserver counts the batches of DOM changes that
  redraw the heatmap's image over ``--seconds``. Target >= 10/s (the figure is printed with its ratio to that target).
- widget traffic: websocket frames the page receives from the server per second over the same window. Jupyter
  servers cap widget traffic at about 1000 messages/s; the figure is printed with its ratio to that cap.
- a notebook cell during a live session: ``execute_request`` -> reply of a trivial cell, 100 times, in a kernel that
  runs an engine and its dashboard (20 Hz); baseline the same in an idle kernel measured in the same run.
  Target p99 <= 100 ms.

The load average is printed first: on a 2-core machine other work moves these figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import ARGS, CHROMIUM, voila  # noqa: E402

# One count per batch of DOM changes that touches the heatmap's image (bqplot changes its attributes or replaces it).
COUNTER = """() => {
  window.__heat = 0;
  const fig = document.querySelector('.wb-heatmap');
  new MutationObserver((ms) => {
    if (ms.some(m => m.target.tagName === 'image' || [...m.addedNodes].some(n => n.tagName === 'image'))) {
      window.__heat += 1;
    }
  }).observe(fig, {attributes: true, childList: true, subtree: true});
}"""


def bench_browser(seconds: float) -> None:
    from playwright.sync_api import sync_playwright

    from workbench.live import Sandbox

    with Sandbox() as sb, sync_playwright() as pw:
        env = {"WORKBENCH_CONTROL_URL": sb.engine.control_url, "WORKBENCH_CONTROL_TOKEN": sb.engine.control_token}
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        with voila("dashboard", env=env) as (url, proc):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            frames = []
            page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(time.monotonic())))
            page.goto(url, timeout=120_000)
            page.wait_for_selector(".wb-heatmap image.heatmap", timeout=120_000)
            time.sleep(2.0)  # past the first paint
            page.evaluate(COUNTER)
            t0 = time.monotonic()
            time.sleep(seconds)
            n_heat = page.evaluate("() => window.__heat")
            t1 = time.monotonic()
            rate_book = sb.engine.snapshot().feed.get("book_updates_per_s", 0)
            page.goto("about:blank")
        browser.close()
    heat_hz = n_heat / (t1 - t0)
    ws_hz = sum(t0 <= t <= t1 for t in frames) / (t1 - t0)
    print(f"heatmap refreshes in the browser: {heat_hz:6.1f} /s   (target >= 10/s: {heat_hz / 10:.2f}x)"
          f"  feed {rate_book:.0f} book updates/s")
    print(f"widget traffic to the page:       {ws_hz:6.1f} msg/s (server cap ~1000/s: {ws_hz / 1000:.2f}x of it)")


def _cell_times(kc, n: int) -> np.ndarray:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        reply = kc.execute_interactive("1 + 1", timeout=30, output_hook=lambda m: None)
        assert reply["content"]["status"] == "ok"
        out.append(time.perf_counter() - t)
    return np.array(out) * 1e3


def bench_cell(n: int) -> None:
    import jupyter_client

    setup = ("import asyncio, widgets\nfrom workbench.live import Sandbox\nsb = Sandbox().start()\n"
             "dash = widgets.dashboard(sb.engine)\nawait asyncio.sleep(2)\n")
    res = {}
    for label, code in (("idle kernel", None), ("engine + dashboard at 20 Hz", setup)):
        km = jupyter_client.KernelManager(kernel_name="python3")
        km.start_kernel(env=dict(os.environ))
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            if code:
                kc.execute_interactive(code, timeout=120, output_hook=lambda m: None)
            _cell_times(kc, 10)  # warm
            res[label] = _cell_times(kc, n)
            if code:
                kc.execute_interactive("dash.close(); sb.stop()", timeout=60, output_hook=lambda m: None)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    base = res["idle kernel"]
    for label, ms in res.items():
        p50, p99 = np.percentile(ms, (50, 99))
        print(f"cell round trip, {label:28s}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
              f"(p99 {p99 / np.percentile(base, 99):.2f}x the idle kernel; target p99 <= 100 ms)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--cells", type=int, default=100)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if os.path.exists(CHROMIUM):
        bench_browser(args.seconds)
    else:
        print(f"heatmap/traffic: skipped, no chromium at {CHROMIUM}")
    bench_cell(args.cells)


if __name__ == "__main__":
    main()
