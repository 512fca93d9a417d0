"""ipywidgets + bqplot panels over workbench engine snapshots: views that hold traits and nothing else.

``dashboard(engine)`` or ``dashboard(url=..., token=...)`` builds the whole monitoring dashboard; the panels are
usable alone. Panels take :class:`workbench.live.Snapshot` values; commands go through a source's ``command``.
"""

from widgets.dashboard import Dashboard, dashboard
from widgets.economics import EconomicsCalculator, fills_from_journal, fills_from_snapshot
from widgets.heatmap import BookHeatmap
from widgets.ladder import DepthLadder
from widgets.latency import LatencyPanel
from widgets.params import ParamsPanel
from widgets.pnl import PnLPanel
from widgets.replay import RecordingView
from widgets.report import BacktestReport
from widgets.risk import RiskPanel
from widgets.source import EngineSource, RemoteSource

__all__ = ["BacktestReport", "BookHeatmap", "Dashboard", "DepthLadder", "EconomicsCalculator", "EngineSource",
           "LatencyPanel", "ParamsPanel", "PnLPanel", "RecordingView", "RemoteSource", "RiskPanel", "dashboard",
           "fills_from_journal", "fills_from_snapshot"]
