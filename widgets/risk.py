"""Risk: the guard's state and why, one light per breaker (value against threshold), and Kill, Flatten,
Pause/Resume.

Kill asks nothing and acts at once: it sends ``kill`` and the panel shows "venue confirmed flat" when the engine
has seen, from the venue, no open order and a flat position. Buttons are handled on the kernel's thread, which waits
while a cell is busy; the breakers themselves run inside the engine and need no UI, and ``workbench kill`` or a
dashboard in another kernel reach the engine through its control plane.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from math import isinf

import ipywidgets as ipw

from workbench.live import Snapshot

__all__ = ["RiskPanel"]

_STATE_COLOUR = {"ACTIVE": "#2ca02c", "REDUCING": "#ff7f0e", "HALTED": "#d62728"}
# how to show a breaker's value and threshold (units as in RiskGuard.breakers)
_FMT = {"daily_drawdown": "{:.3%}", "hourly_loss": "{:.3%}", "concentration": "{:.1%}", "api_rate": "{:.0%}",
        "spread": "{:.2f}x", "trade_stop": "{:.0f} ticks", "kill": "{:.0f}"}


def _show(rule: str, v: float) -> str:
    if v is None:
        return "-"
    if isinf(v):
        return "inf"
    if rule == "stale":
        return f"{v / 1e6:.0f} ms"
    return _FMT.get(rule, "{:.3g}").format(v)


class RiskPanel(ipw.VBox):
    """``command(name)`` sends a control command and returns a future (a source's command)."""

    def __init__(self, command: Callable[..., concurrent.futures.Future]) -> None:
        self.command = command
        self.state = ipw.HTML()
        self.state.add_class("wb-risk-state")
        self.lights = ipw.HTML()
        self.lights.add_class("wb-risk-breakers")
        self.kill_button = ipw.Button(description="KILL", button_style="danger", icon="stop",
                                      tooltip="stop new orders, cancel all, flatten, confirm from the venue")
        self.kill_button.add_class("wb-kill")
        self.flatten_button = ipw.Button(description="Flatten", button_style="warning")
        self.flatten_button.add_class("wb-flatten")
        self.pause_button = ipw.ToggleButton(description="Pause", value=False, tooltip="no new strategy orders")
        self.pause_button.add_class("wb-pause")
        self.result = ipw.HTML()
        self.result.add_class("wb-risk-result")
        self._pending: dict[str, concurrent.futures.Future] = {}
        self._syncing = False
        self.kill_button.on_click(lambda b: self._send("kill", reason="kill button"))
        self.flatten_button.on_click(lambda b: self._send("flatten"))
        self.pause_button.observe(self._pause, "value")
        super().__init__([self.state, ipw.HBox([self.kill_button, self.flatten_button, self.pause_button]),
                          self.result, self.lights])

    def _send(self, name: str, **params) -> None:
        self._pending[name] = self.command(name, **params)
        self.result.value = f"{name}: sent"

    def _pause(self, ch) -> None:
        if not self._syncing:
            self._send("pause" if ch["new"] else "resume")

    def update(self, snap: Snapshot) -> None:
        for name, fut in list(self._pending.items()):
            if fut.done():
                del self._pending[name]
                if fut.exception() is not None:
                    self.result.value = f"<span style='color:#d62728'>{name} failed: {fut.exception()}</span>"
                elif name == "kill":
                    self.result.value = ("<b class='wb-kill-confirmed'>killed: venue confirmed flat, no open orders"
                                         "</b>" if fut.result() else
                                         "<b style='color:#d62728'>kill sent, but the venue did not confirm flat "
                                         "in time</b>")
                else:
                    self.result.value = f"{name}: done"
        colour = _STATE_COLOUR.get(snap.guard_state, "gray")
        why = f" &mdash; {snap.halted_by}" if snap.halted_by else ""
        extra = " (paused)" if snap.paused else ""
        extra += "" if snap.running else " (stopped)"
        self.state.value = (f"<span style='font-size:16px;font-weight:bold;color:{colour}' data-state="
                            f"'{snap.guard_state}'>{snap.guard_state}</span>{extra}{why}")
        rows = []
        for rule, (value, threshold, tripped) in snap.breakers.items():
            dot = "#d62728" if tripped else "#2ca02c"
            rows.append(f"<tr><td><span style='color:{dot}'>&#9679;</span> {rule}</td>"
                        f"<td style='text-align:right'>{_show(rule, value)}</td>"
                        f"<td style='text-align:right;color:gray'>/ {_show(rule, threshold)}</td></tr>")
        alerts = "".join(f"<li>{a[1]}</li>" for a in snap.alerts[-5:])
        self.lights.value = ("<table style='font-family:monospace;font-size:12px'>" + "".join(rows) + "</table>"
                             + (f"<ul style='font-size:11px;margin:2px'>{alerts}</ul>" if alerts else ""))
        self._syncing = True
        try:
            self.pause_button.value = snap.paused
        finally:
            self._syncing = False
