"""The dashboard over a real engine trading the served synthetic venue: in the same process (EngineSource) and over
the control plane (RemoteSource); a moved slider changes the running strategy's parameter, Kill halts it and the
venue shows no open order, the render task keeps its frame rate on a running loop, a wrong token is refused."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.live.test_engine import USER, config, served_venue, wait_for
from widgets import Dashboard, RemoteSource, dashboard
from workbench.live.engine import Engine
from workbench.strategy import MarketMaker


def _engine(urls, key, **kw):
    mm = MarketMaker(half_spread_ticks=0, order_qty=0.001, max_position=3, decide_every_ms=50)
    return Engine(mm, config(urls, key, snapshot_hz=20, **kw)).start()


def _render_until(d: Dashboard, pred, timeout=20.0, what=""):
    wait_for(lambda: (d.render() or True) and pred(), timeout, what)


@pytest.mark.parametrize("remote", [False, True], ids=["in-kernel", "control-plane"])
def test_the_dashboard_draws_the_engine_and_its_controls_reach_it(remote):
    with served_venue() as (venue, urls, key):
        eng = _engine(urls, key)
        d = (dashboard(url=eng.control_url, token=eng.control_token, start=False) if remote
             else dashboard(eng, start=False))
        try:
            _render_until(d, lambda: d.frames >= 5 and d.heatmap._n >= 2 and eng.counters["fills"] >= 1, 60,
                          "frames and fills")
            assert d.heatmap.heat.color.shape[0] == d.heatmap.rows and len(d.heatmap.quotes.x) >= 2
            assert "BTCUSDT" in d.ladder.value and "ACTIVE" in d.risk.state.value
            _render_until(d, lambda: len(d.pnl.equity.x) >= 3, 10, "equity points")
            assert d.params is not None and "half_spread_ticks" in d.params.controls
            d.params.controls["half_spread_ticks"].value = 3
            wait_for(lambda: eng.strategy.params.half_spread_ticks == 3, 10, "the parameter change")
            _render_until(d, lambda: "applied half_spread_ticks = 3" in d.params.status.value, 10, "the answer")
            d.risk.kill_button.click()
            _render_until(d, lambda: "venue confirmed flat" in d.risk.result.value, 20, "the kill's confirmation")
            assert eng.guard_state.name == "HALTED" and venue.open_orders(USER) == []
            _render_until(d, lambda: "HALTED" in d.risk.state.value, 10, "the halted state")
        finally:
            d.close()
            eng.stop()
    assert not [t for t in threading.enumerate() if t.name == "workbench-remote-source"]


def test_the_render_task_runs_at_its_frame_rate_on_the_running_loop():
    with served_venue() as (venue, urls, key):
        eng = _engine(urls, key)
        try:
            async def main():
                d = dashboard(eng, fps=20)  # started on this loop, as in a kernel
                await asyncio.sleep(1.5)
                d.stop()
                return d

            d = asyncio.run(main())
            assert 15 <= d.frames <= 31  # 20 Hz for 1.5 s, snapshots at 20 Hz; a loaded machine draws fewer
            assert d.render_s / d.frames < 0.03
        finally:
            eng.stop()


def test_a_wrong_token_is_refused_with_a_clear_error():
    with served_venue() as (venue, urls, key):
        eng = _engine(urls, key)
        try:
            with pytest.raises(ConnectionError, match="token"):
                RemoteSource(eng.control_url, "x" * 32, connect_timeout_s=5)
            with pytest.raises(ValueError, match="token"):
                dashboard(url=eng.control_url)
        finally:
            eng.stop()
    assert not [t for t in threading.enumerate() if t.name == "workbench-remote-source"]


def test_a_remote_dashboard_outlives_a_lost_engine_and_says_so():
    with served_venue() as (venue, urls, key):
        eng = _engine(urls, key)
        src = RemoteSource(eng.control_url, eng.control_token)
        try:
            wait_for(lambda: src.latest() is not None, 10, "a snapshot")
            eng.stop()
            fut = src.command("pause")
            with pytest.raises(ConnectionError):
                fut.result(10)
            assert src.error is not None
        finally:
            src.close()
