"""The risk guard, sans-I/O: events in (book, fills, equity marks, rate usage, time), verdicts on orders, actions
and risk events out. The same object guards a backtest and a live account. See :mod:`workbench.risk.guard`."""

from workbench.risk.config import RiskConfig
from workbench.risk.guard import ActionKind, GuardAction, GuardState, RiskEvent, RiskGuard, Verdict

__all__ = ["ActionKind", "GuardAction", "GuardState", "RiskConfig", "RiskEvent", "RiskGuard", "Verdict"]
