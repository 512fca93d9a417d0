"""Ladder, P&L, parameters, risk and latency panels through their state, with hand-built snapshots and a command
recorder in place of an engine."""

from __future__ import annotations

import dataclasses

import ipywidgets as ipw

from tests.widgets.snapshots import Recorder, snap
from widgets import DepthLadder, LatencyPanel, ParamsPanel, PnLPanel, RiskPanel
from widgets.params import control_for
from workbench.live.snapshot import LatencyRing
from workbench.strategy import MarketMaker

T0 = 1_700_000_000_000_000_000


def test_the_ladder_shows_prices_and_sizes_in_the_venues_decimals_and_marks_our_orders():
    lad = DepthLadder(n=2)
    lad.update(snap(bids=[(100, 5), (99, 3), (98, 1)], asks=[(101, 4), (102, 2)],
                    own_orders=[("X", -1, 102, 2, "a"), ("X", -1, 102, 1, "b"), ("X", 1, 99, 1, "c")]))
    v = lad.value
    assert "49.0" not in v  # only the top 2 of each side
    order = [v.index(p) for p in ("51.0", "50.5", "50.0", "49.5")]
    assert order == sorted(order)  # asks above bids, best in the middle
    assert "&#9733; 0.003" in v and "&#9733; 0.001" in v and "0.005" in v


def test_pnl_keeps_the_equity_line_and_marks_each_fill_once():
    p = PnLPanel(points=3, every_ms=0)
    fills = [(1, T0, "X", 1, 100, 1, 0.0, True)]
    for i in range(5):
        p.update(snap(T0 + i * 10**8, equity_change=float(i), drawdown=0.5, realised=1.0, unrealised=float(i) - 1,
                      fills=fills if i >= 1 else [], rebates=0.25))
    assert list(p.equity.y) == [2.0, 3.0, 4.0] and list(p.drawdown.y) == [-0.5] * 3
    assert len(p.marks.x) == 0  # the fill at T0 + 1e8 has left the 3-point window
    assert "wb-pnl-rebates" in p.stats.value and "0.2500" in p.stats.value


def test_controls_follow_the_parameter_specs():
    specs = [dataclasses.asdict(s) for s in MarketMaker.params_spec]
    kinds = {s["name"]: type(control_for(s)) for s in specs}
    assert all(k in (ipw.IntSlider, ipw.FloatSlider, ipw.Checkbox, ipw.Dropdown, ipw.IntText, ipw.FloatText)
               for k in kinds.values())
    assert control_for({"name": "n", "default": 3, "lo": 1, "hi": 9}).max == 9
    assert isinstance(control_for({"name": "b", "default": True}), ipw.Checkbox)
    assert isinstance(control_for({"name": "c", "default": "a", "choices": ["a", "b"]}), ipw.Dropdown)
    assert isinstance(control_for({"name": "f", "default": 0.5}), ipw.FloatText)


def test_a_moved_slider_sends_one_change_and_shows_the_answer():
    rec = Recorder()
    panel = ParamsPanel([{"name": "k", "default": 2, "lo": 0, "hi": 10}], lambda **v: rec("set_params", **v))
    panel.controls["k"].value = 5
    assert [(n, p) for n, p, _ in rec.calls] == [("set_params", {"k": 5})]
    panel.update(snap(params={"k": 2}))  # the answer is not back: the slider is not moved back
    assert panel.controls["k"].value == 5
    rec.calls[0][2].set_result([{"name": "k", "old": 2, "new": 5}])
    panel.update(snap(params={"k": 5}))
    assert "applied k = 5" in panel.status.value
    panel.update(snap(params={"k": 7}))  # changed elsewhere: shown, and not sent back
    assert panel.controls["k"].value == 7 and len(rec.calls) == 1


def test_a_refused_change_says_why():
    rec = Recorder()
    panel = ParamsPanel([{"name": "k", "default": 2, "lo": 0, "hi": 10}], lambda **v: rec("set_params", **v))
    panel.controls["k"].value = 4
    rec.calls[0][2].set_exception(RuntimeError("ConfigError: k must be <= 3"))
    panel.update(snap(params={"k": 2}))
    assert "k must be &lt;= 3" in panel.status.value or "k must be <= 3" in panel.status.value
    assert panel.controls["k"].value == 2


def test_kill_acts_at_once_and_shows_the_venues_confirmation():
    rec = Recorder()
    r = RiskPanel(rec)
    r.kill_button.click()
    assert [c[0] for c in rec.calls] == ["kill"]  # no confirmation asked
    r.update(snap())
    assert "kill: sent" in r.result.value
    rec.calls[0][2].set_result(True)
    r.update(snap(guard_state="HALTED", halted_by="kill switch (user)",
                  breakers={"kill": [1.0, 1.0, True], "stale": [4.2e8, 3e8, True]},
                  alerts=[[T0, "risk ACTIVE -> HALTED (kill): kill button"]]))
    assert "venue confirmed flat" in r.result.value and "HALTED" in r.state.value and "kill switch" in r.state.value
    assert "420 ms" in r.lights.value and "300 ms" in r.lights.value and "kill button" in r.lights.value


def test_pause_toggles_and_follows_the_engine():
    rec = Recorder()
    r = RiskPanel(rec)
    r.pause_button.value = True
    r.pause_button.value = False
    assert [c[0] for c in rec.calls] == ["pause", "resume"]
    r.update(snap(paused=True))  # paused elsewhere: the button shows it without sending anything
    assert r.pause_button.value is True and len(rec.calls) == 2
    r.flatten_button.click()
    assert rec.calls[-1][0] == "flatten"


def test_latency_histograms_and_feed_health():
    ring = LatencyRing()
    for us in (5, 15, 15, 700):
        ring.add(us * 1000)
    panel = LatencyPanel()
    panel.update(snap(latency={"tick_to_order": ring.summary(), "order_ack": LatencyRing().summary()},
                      feed={"book_updates_per_s": 812.0, "gaps": 1, "resyncs": 2, "disconnects": 0, "malformed": 3,
                            "age_ms": {"X": 12.0}}, in_sync={"X": False}))
    assert list(panel.bars.y[0][:3]) == [1, 2, 0] and panel.bars.y[0][6] == 1 and panel.bars.y[1].sum() == 0
    assert "p50 15 us" in panel.stats.value
    h = panel.health.value
    assert "812 book updates/s" in h and "gaps 1" in h and "malformed 3" in h and "OUT OF SYNC" in h


def test_pnl_keeps_one_point_per_interval_with_the_newest_value():
    p = PnLPanel(every_ms=250)
    for i in range(6):  # 100 ms apart: intervals from 0 ms (0-200) and from 300 ms (300-500)
        p.update(snap(T0 + i * 10**8, equity_change=float(i)))
    assert list(p.equity.y) == [2.0, 5.0]  # each the newest value of its interval
    assert list(p.equity.x.astype("int64") - T0 // 10**6) == [200, 500]
