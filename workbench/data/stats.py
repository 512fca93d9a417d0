"""Re-export of :class:`workbench.stats.ReadStats` for the readers (it lives in the foundation layer)."""

from workbench.stats import ReadStats

__all__ = ["ReadStats"]
