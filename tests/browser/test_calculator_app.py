"""The Voila unit-economics calculator in chromium: the seeds' example shows $480 gross and $255 net a day, and a
changed input recomputes the results and the plot."""

from __future__ import annotations


import pytest

from tests.browser.conftest import artifacts_dir, voila
from tests.live.test_engine import wait_for as _wait

pytestmark = pytest.mark.browser



def test_the_calculator_app_recomputes_when_an_input_changes(page):
    with voila("calculator") as (url, proc):
        page.goto(url, timeout=120_000)
        net = page.locator(".wb-calc-net-day")
        net.wait_for(timeout=120_000)
        _wait(lambda: "$255.00" in net.inner_text(), 30, "the seeds' $255 net")
        assert "$480.00" in page.locator(".wb-calc-gross-day").inner_text()
        assert "3.00 bp" in page.locator(".wb-calc-net-bp-taker").inner_text()  # 12 - 5 - 3 - 1
        plot = page.locator(".wb-calc-plot")
        assert plot.locator("svg path.dot").count() == 1  # the current inputs, marked on the curve
        svg0 = plot.inner_html()
        page.screenshot(path=str(artifacts_dir() / "calculator.png"), full_page=True)

        box = page.locator(".wb-calc-win-rate input")
        box.fill("70")
        box.press("Enter")
        # 150 x (0.7 x 12 - 0.3 x 10) = 810 gross, less 150 x 1.50 of costs = 585 net
        _wait(lambda: "$585.00" in net.inner_text(), 30, "the net after the win rate changed")
        _wait(lambda: plot.inner_html() != svg0, 20, "the plot to follow (the current point moves)")
        page.screenshot(path=str(artifacts_dir() / "calculator-changed.png"), full_page=True)
