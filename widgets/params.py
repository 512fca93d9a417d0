"""Parameter controls generated from a strategy's typed, bounded parameters, applied to the running strategy.

Each :class:`~workbench.strategy.Param` becomes a slider (int or float with bounds), a number box (no bounds), a
checkbox (bool) or a dropdown (choices). A change is sent as one ``set_params`` command when the slider is released;
the engine applies it on its own loop and journals it; the panel shows the answer. Values changed elsewhere (another
dashboard, code) come back with the next snapshot.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

import ipywidgets as ipw

from workbench.live import Snapshot

__all__ = ["ParamsPanel", "control_for"]


def control_for(spec: dict) -> ipw.ValueWidget:
    """The widget for one parameter spec (``dataclasses.asdict`` of a Param)."""
    name, default, lo, hi, step = spec["name"], spec["default"], spec.get("lo"), spec.get("hi"), spec.get("step")
    unit = f" ({spec['unit']})" if spec.get("unit") else ""
    common = dict(description=name + unit, tooltip=spec.get("doc") or None, continuous_update=False,
                  style={"description_width": "150px"}, layout=ipw.Layout(width="420px"))
    if spec.get("choices"):
        w = ipw.Dropdown(options=list(spec["choices"]), value=default,
                         **{k: v for k, v in common.items() if k != "continuous_update"})
    elif isinstance(default, bool):
        w = ipw.Checkbox(value=default, indent=False, description=common["description"])
    elif isinstance(default, int):
        if lo is not None and hi is not None:
            w = ipw.IntSlider(value=default, min=int(lo), max=int(hi), step=int(step or 1), **common)
        else:
            w = ipw.IntText(value=default, **common)
    else:
        if lo is not None and hi is not None:
            w = ipw.FloatSlider(value=default, min=float(lo), max=float(hi),
                                step=float(step or (float(hi) - float(lo)) / 100), readout_format=".4g", **common)
        else:
            w = ipw.FloatText(value=default, **common)
    w.add_class("wb-param")
    w.add_class(f"wb-param-{name}")
    return w


class ParamsPanel(ipw.VBox):
    """Controls for ``specs``; ``apply(**values)`` sends a change and returns a future (a source's command)."""

    def __init__(self, specs: list[dict], apply: Callable[..., concurrent.futures.Future]) -> None:
        self.apply = apply
        self.controls = {s["name"]: control_for(s) for s in specs}
        self.status = ipw.HTML()
        self.status.add_class("wb-param-status")
        self._pending: list[tuple[str, object, concurrent.futures.Future]] = []
        self._syncing = False
        for name, w in self.controls.items():
            w.observe(lambda ch, name=name: self._changed(name, ch["new"]), "value")
        super().__init__([ipw.HTML("<b>Parameters</b>"), *self.controls.values(), self.status])

    def _changed(self, name: str, value) -> None:
        if self._syncing:
            return
        self._pending.append((name, value, self.apply(**{name: value})))
        self.status.value = f"sending {name} = {value!r}"

    def update(self, snap: Snapshot) -> None:
        """Show the answers that came back, and values changed elsewhere."""
        still = []
        for name, value, fut in self._pending:
            if not fut.done():
                still.append((name, value, fut))
            elif fut.exception() is not None:
                self.status.value = f"<span style='color:#d62728'>{name}: {fut.exception()}</span>"
            else:
                self.status.value = f"applied {name} = {value!r}"
        self._pending = still
        if still:
            return  # do not move a control back while its change is on its way
        self._syncing = True
        try:
            for name, w in self.controls.items():
                if name in snap.params and w.value != snap.params[name]:
                    w.value = snap.params[name]
        finally:
            self._syncing = False
