"""The risk guard's configuration: one frozen, keyword-only dataclass; the defaults are the house limits."""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.exceptions import ConfigError

__all__ = ["RiskConfig"]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True, kw_only=True)
class RiskConfig:
    """Limits of the :class:`~workbench.risk.guard.RiskGuard`. Fractions are of equity or depth (0.015 = 1.5 %).

    Parameters
    ----------
    max_daily_drawdown_frac : HALT when equity falls this far below the UTC day's peak equity.
    max_hourly_loss_frac : HALT (and disable the API key) when equity is this far below its value one hour ago.
    spread_widen_x : pause new entries while a symbol's spread > this x its rolling median (must be > 1).
    spread_window_ns : the rolling median's window.
    spread_min_samples : samples in the window before the spread rule may trip.
    spread_sample_ns : at most one spread sample per this interval (bounds the window to window/sample samples).
    stale_after_ns : pause new entries and cancel a symbol's resting orders when its book is older than this.
    max_depth_frac : |position after an order| <= this x the visible depth that would absorb its exit.
    depth_levels : levels summed when ``on_book`` is given per-level sizes instead of a total.
    concentration_action : ``"resize"`` an order down to the cap, or ``"reject"`` it whole.
    api_rate_frac : throttle when any advertised rate limit is used to this fraction or more.
    trade_stop_ticks : exit a position when the price to exit it is this many ticks worse than the average
        entry; None: no trade-level stop.
    """

    max_daily_drawdown_frac: float = 0.015
    max_hourly_loss_frac: float = 0.02
    spread_widen_x: float = 3.0
    spread_window_ns: int = 60_000_000_000
    spread_min_samples: int = 20
    spread_sample_ns: int = 100_000_000
    stale_after_ns: int = 300_000_000
    max_depth_frac: float = 0.10
    depth_levels: int = 10
    concentration_action: str = "resize"
    api_rate_frac: float = 0.90
    trade_stop_ticks: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_daily_drawdown_frac", "max_hourly_loss_frac", "max_depth_frac", "api_rate_frac"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v <= 1:
                raise ConfigError(f"{name} must be a fraction in (0, 1], got {v!r}")
        x = self.spread_widen_x
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 1:
            # x <= 1 would call every ordinary spread (about half of them exceed the median) "widened"
            raise ConfigError(f"spread_widen_x must be a finite number > 1, got {x!r}")
        for name in ("spread_window_ns", "stale_after_ns", "spread_min_samples", "depth_levels"):
            v = getattr(self, name)
            if not _is_int(v) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not _is_int(self.spread_sample_ns) or not 0 <= self.spread_sample_ns < self.spread_window_ns:
            raise ConfigError(f"spread_sample_ns must be an integer in [0, spread_window_ns), "
                              f"got {self.spread_sample_ns!r}")
        if self.spread_sample_ns and -(-self.spread_window_ns // self.spread_sample_ns) < self.spread_min_samples:
            raise ConfigError(f"a {self.spread_window_ns} ns window sampled every {self.spread_sample_ns} ns never "
                              f"holds spread_min_samples={self.spread_min_samples}: the spread rule could never trip")
        if self.concentration_action not in ("resize", "reject"):
            raise ConfigError(f"concentration_action must be 'resize' or 'reject', got {self.concentration_action!r}")
        t = self.trade_stop_ticks
        if t is not None and (not _is_int(t) or t <= 0):
            raise ConfigError(f"trade_stop_ticks must be a positive integer of ticks or None, got {t!r}")
