"""The dashboard: heatmap and ladder, P&L, risk with Kill, parameters, latency, composed over one snapshot source.

``dashboard(engine)`` attaches to an engine in this kernel; ``dashboard(url=..., token=...)`` to one elsewhere over
its control plane. A task on the kernel's own event loop renders the newest snapshot ``fps`` times a second (10-20
Hz), setting each mark's traits inside ``hold_sync()``; only the kernel's thread touches the widgets. While a cell
blocks, the task waits and then jumps to the newest snapshot; trading and the breakers go on in the engine's thread.
"""

from __future__ import annotations

import asyncio
import logging
import time

import ipywidgets as ipw

from widgets.heatmap import BookHeatmap
from widgets.ladder import DepthLadder
from widgets.latency import LatencyPanel
from widgets.params import ParamsPanel
from widgets.pnl import PnLPanel
from widgets.risk import RiskPanel
from widgets.source import EngineSource, RemoteSource, SnapshotSource

__all__ = ["Dashboard", "dashboard"]

log = logging.getLogger("workbench.widgets")


class Dashboard(ipw.VBox):
    """Panels over ``source``; :meth:`start` renders on the running loop, :meth:`render` draws one frame."""

    def __init__(self, source: SnapshotSource, *, fps: float = 20.0, symbol: str | None = None,
                 own_source: bool = False) -> None:
        if not 1 <= fps <= 30:
            raise ValueError("fps must be between 1 and 30 (the Jupyter server caps widget traffic)")
        self.source, self.fps, self._own_source = source, fps, own_source
        self.heatmap = BookHeatmap(symbol)
        self.ladder = DepthLadder(symbol)
        self.pnl = PnLPanel()
        self.risk = RiskPanel(source.command)
        self.latency = LatencyPanel()
        self.params: ParamsPanel | None = None
        self._params_box = ipw.VBox()
        self.header = ipw.HTML("waiting for the engine's first snapshot")
        self.header.add_class("wb-header")
        self.frames = 0
        self.render_s = 0.0                  # time spent drawing, seconds (for the frame budget)
        self._last_ts = 0
        self._task: asyncio.Task | None = None
        self._error: str | None = None
        left = ipw.VBox([self.heatmap, self.pnl], layout=ipw.Layout(width="68%"))
        right = ipw.VBox([self.risk, self.ladder], layout=ipw.Layout(width="32%"))
        bottom = ipw.HBox([ipw.VBox([self._params_box], layout=ipw.Layout(width="45%")),
                           ipw.VBox([self.latency], layout=ipw.Layout(width="55%"))])
        super().__init__([self.header, ipw.HBox([left, right]), bottom])
        self.add_class("wb-dashboard")

    def render(self) -> bool:
        """Draw the newest snapshot (if new); returns whether anything was drawn. Kernel thread only."""
        snap = self.source.latest()
        if snap is None:
            return False
        t0 = time.perf_counter()
        self.risk.update(snap)
        if self.params is None and snap.param_specs:
            self.params = ParamsPanel(snap.param_specs, lambda **v: self.source.command("set_params", **v))
            self._params_box.children = [self.params]
        if self.params is not None:
            self.params.update(snap)
        fresh = snap.ts_ns != self._last_ts
        if fresh:
            self._last_ts = snap.ts_ns
            self.heatmap.update(snap)
            self.ladder.update(snap)
            self.pnl.update(snap)
            self.latency.update(snap)
            self.frames += 1
        age_s = (time.time_ns() - snap.ts_ns) / 1e9
        problem = snap.last_error or getattr(self.source, "error", None)
        self.header.value = (f"<b>{snap.strategy}</b> on {', '.join(snap.positions)} &nbsp; "
                             f"{'running' if snap.running else 'stopped'}{' (paused)' if snap.paused else ''} "
                             f"&nbsp; snapshot {age_s:.1f} s old &nbsp; frame {self.frames}"
                             f" ({1e3 * self.render_s / max(1, self.frames):.1f} ms to draw)"
                             + (f" &nbsp; <span style='color:#d62728'>{problem}</span>" if problem else ""))
        if not fresh:
            return False
        self.render_s += time.perf_counter() - t0
        return True

    def start(self) -> "Dashboard":
        """Render from a task on the running loop (the kernel's); idempotent. Returns self for display."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_event_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        period = 1 / self.fps
        loop = asyncio.get_running_loop()
        nxt = loop.time()
        while True:
            try:
                self.render()
            except Exception as exc:  # a drawing bug must not kill the updater; show it once
                msg = f"{type(exc).__name__}: {exc}"
                if msg != self._error:
                    self._error = msg
                    log.exception("dashboard frame failed")
                    self.header.value = f"<span style='color:#d62728'>dashboard error: {msg}</span>"
            # a fixed rate, not a fixed pause: the frame's own time does not slow the rate; after a blocked cell,
            # the next frame is drawn at once and the schedule starts again from now
            nxt = max(nxt + period, loop.time())
            await asyncio.sleep(nxt - loop.time())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def close(self) -> None:
        self.stop()
        if self._own_source:
            self.source.close()
        super().close()


def dashboard(engine=None, *, url: str | None = None, token: str | None = None, fps: float = 20.0,
              symbol: str | None = None, start: bool = True) -> Dashboard:
    """The dashboard of ``engine`` (in this kernel), or of the engine at control-plane ``url`` with ``token``."""
    if (engine is None) == (url is None):
        raise ValueError("give either an engine or a control-plane url (with its token)")
    if engine is not None:
        d = Dashboard(EngineSource(engine), fps=fps, symbol=symbol)
    else:
        if not token:
            raise ValueError("a control-plane url needs its token")
        d = Dashboard(RemoteSource(url, token), fps=fps, symbol=symbol, own_source=True)
    return d.start() if start else d
