"""Counters that every reader keeps: what was read, what was skipped and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ReadStats"]


@dataclass
class ReadStats:
    """What a reader saw. Bad rows are counted here instead of raising.

    ``counts`` holds named counters (``lines``, ``events``, ``malformed`` and reader-specific ones such as
    ``gaps`` or ``resyncs``); ``problems`` keeps the first ``max_problems`` messages, each with its line number,
    so that a user can find the bad input without the reader keeping all of it.
    """

    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    max_problems: int = 20

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def problem(self, name: str, where: str, why: str) -> None:
        """Count one bad input under ``name`` and remember the first few, e.g. ``("malformed", "file:12", "...")``."""
        self.counts[name] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(f"{where}: {name}: {why}")

    def note(self, where: str, why: str) -> None:
        """Remember where something already counted happened (a gap, a crossed book), within ``max_problems``."""
        if len(self.problems) < self.max_problems:
            self.problems.append(f"{where}: {why}")

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    def summary(self) -> str:
        """One line ``name=value`` per counter, in a stable order."""
        return " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
