"""The Voila dashboard in chromium, attached over the control plane to an engine that this test runs against the
embedded venue: the heatmap's SVG marks are there and change, P&L moves, a slider changes the running strategy's
parameter (checked on the engine), Kill halts the engine and the venue shows no open order and a flat position.
Then: the page closed frees its kernel."""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import artifacts_dir, kernel_pids, voila
from tests.live.test_engine import wait_for as _wait
from workbench.live import Sandbox

pytestmark = pytest.mark.browser



def test_the_dashboard_app_renders_moves_and_kills(page):
    with Sandbox() as sb:
        base0 = sum(sb.balances()["BTC"])
        env = {"WORKBENCH_CONTROL_URL": sb.engine.control_url, "WORKBENCH_CONTROL_TOKEN": sb.engine.control_token}
        with voila("dashboard", env=env) as (url, proc):
            page.goto(url, timeout=120_000)
            page.wait_for_selector(".wb-heatmap svg", timeout=120_000)
            heat = page.locator(".wb-heatmap")
            _wait(lambda: heat.locator("image, rect.heatmapcell, path.dot").count() > 0, 30, "heatmap marks")
            svg0 = heat.inner_html()
            equity = page.locator(".wb-pnl-figure path.line").first
            eq0 = equity.get_attribute("d")
            _wait(lambda: heat.inner_html() != svg0, 20, "the heatmap to change")
            _wait(lambda: equity.get_attribute("d") != eq0, 20, "the equity line to move")
            assert page.locator(".wb-pnl-equity").count() == 1
            page.screenshot(path=str(artifacts_dir() / "dashboard.png"), full_page=True)

            # a parameter slider: its readout is editable; the change is applied to the running strategy
            assert sb.engine.strategy.params.half_spread_ticks == 1
            readout = page.locator(".wb-param-half_spread_ticks .widget-readout")
            readout.click()
            readout.press("Control+A")
            readout.type("4")
            readout.press("Enter")
            _wait(lambda: sb.engine.strategy.params.half_spread_ticks == 4, 20, "the engine's parameter")

            page.locator(".wb-kill button, button.wb-kill").first.click()
            _wait(lambda: page.locator(".wb-kill-confirmed").count() > 0, 30, "the kill confirmation on the page")
            assert sb.engine.guard_state.name == "HALTED"
            assert sb.open_orders() == [] and sum(sb.balances()["BTC"]) == base0
            page.screenshot(path=str(artifacts_dir() / "dashboard-killed.png"), full_page=True)

            assert len(kernel_pids(proc.pid)) == 1
            page.goto("about:blank")
            _wait(lambda: not kernel_pids(proc.pid), 30, "the closed page's kernel to be shut down")


def test_an_abandoned_page_is_culled_although_its_dashboard_keeps_redrawing(browser):
    """A page that vanished without unloading (a crashed browser, a closed laptop) leaves a kernel whose dashboard
    task still sends ``comm_msg`` ten times a second. Those are untracked, so the idle culler frees the kernel."""
    with Sandbox() as sb:
        env = {"WORKBENCH_CONTROL_URL": sb.engine.control_url, "WORKBENCH_CONTROL_TOKEN": sb.engine.control_token}
        with voila("dashboard", env=env, cull_idle_s=12, cull_interval_s=1) as (url, proc):
            ctx = browser.new_context()
            page = ctx.new_page()
            page.goto(url, timeout=120_000)
            page.wait_for_selector(".wb-heatmap svg", timeout=120_000)
            assert len(kernel_pids(proc.pid)) == 1
            ctx.close()  # no beforeunload: the kernel is not shut down by the page
            time.sleep(1)
            assert len(kernel_pids(proc.pid)) == 1
            _wait(lambda: not kernel_pids(proc.pid), 40, "the idle culler to free the abandoned kernel")
