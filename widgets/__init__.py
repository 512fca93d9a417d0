"""ipywidgets + bqplot panels over workbench engine snapshots: views that hold traits and nothing else.

``dashboard(engine)`` or ``dashboard(url=..., token=...)`` builds the whole monitoring dashboard; the panels are
usable alone. Panels take :class:`workbench.live.Snapshot` values; commands go through a source's ``command``.
"""

from widgets.dashboard import Dashboard, dashboard
from widgets.heatmap import BookHeatmap
from widgets.ladder import DepthLadder
from widgets.latency import LatencyPanel
from widgets.params import ParamsPanel
from widgets.pnl import PnLPanel
from widgets.risk import RiskPanel
from widgets.source import EngineSource, RemoteSource

__all__ = ["BookHeatmap", "Dashboard", "DepthLadder", "EngineSource", "LatencyPanel", "ParamsPanel", "PnLPanel",
           "RemoteSource", "RiskPanel", "dashboard"]
