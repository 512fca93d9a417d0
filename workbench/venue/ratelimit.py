"""Binance's rate limiters, sans-I/O: fixed windows aligned to the clock, counts in, ``rateLimits`` entries out.

Binance accounts every limit by intervals that start on round boundaries ("a 1 MINUTE interval starts every
minute ... 10 SECOND interval resets at 00, 10, 20... seconds of each minute ... 1 DAY resets at 00:00 UTC"), so a
window here is ``[k * interval, (k + 1) * interval)`` of epoch time. Request weight is kept per client address and
shared by all its connections; the unfilled order count is kept per account (shared by all its API keys).
Weight is charged even when the request then fails, as on Binance; a request over a limit is answered 429.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limit", "Window", "LimitTable"]

_NS = {"SECOND": 1_000_000_000, "MINUTE": 60_000_000_000, "HOUR": 3_600_000_000_000, "DAY": 86_400_000_000_000}


@dataclass(frozen=True, slots=True)
class Limit:
    """One advertised limit, as in ``exchangeInfo.rateLimits``: ``limit`` per ``interval_num`` ``interval``."""

    rate_limit_type: str  # REQUEST_WEIGHT, ORDERS, RAW_REQUESTS, CONNECTIONS
    interval: str         # SECOND, MINUTE, HOUR, DAY
    interval_num: int
    limit: int

    @property
    def interval_ns(self) -> int:
        return self.interval_num * _NS[self.interval]

    def describe(self) -> str:
        """``"10 SECOND"``, ``"1 MINUTE"``: the wording of Binance's 429 messages."""
        return f"{self.interval_num} {self.interval}"

    def info(self) -> dict:
        """The ``exchangeInfo`` entry (no count)."""
        return {"rateLimitType": self.rate_limit_type, "interval": self.interval,
                "intervalNum": self.interval_num, "limit": self.limit}


class Window:
    """The count of one limit for one key in the current window."""

    __slots__ = ("limit", "start_ns", "count")

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self.start_ns = -1
        self.count = 0

    def _roll(self, now_ns: int) -> None:
        start = now_ns - now_ns % self.limit.interval_ns
        if start != self.start_ns:
            self.start_ns = start
            self.count = 0

    def peek(self, now_ns: int) -> int:
        self._roll(now_ns)
        return self.count

    def add(self, n: int, now_ns: int) -> int:
        self._roll(now_ns)
        self.count += n
        return self.count

    def reset_ns(self) -> int:
        """When the current window ends (epoch ns)."""
        return self.start_ns + self.limit.interval_ns

    def entry(self) -> dict:
        """The ``rateLimits`` entry of a response."""
        return {**self.limit.info(), "count": self.count}


class LimitTable:
    """Windows of a set of limits, one set per key (client address or account); bounded by ``max_keys``."""

    def __init__(self, limits: tuple[Limit, ...], *, max_keys: int = 4096) -> None:
        self.limits = limits
        self.max_keys = max_keys
        self._windows: dict[object, tuple[Window, ...]] = {}

    def windows(self, key, now_ns: int) -> tuple[Window, ...]:
        ws = self._windows.get(key)
        if ws is None:
            if len(self._windows) >= self.max_keys:
                self._prune(now_ns)
            ws = tuple(Window(lim) for lim in self.limits)
            self._windows[key] = ws
        return ws

    def _prune(self, now_ns: int) -> None:
        # forget keys whose every window has ended: their counts are zero anyway
        stale = [k for k, ws in self._windows.items() if all(w.reset_ns() <= now_ns for w in ws)]
        for k in stale:
            del self._windows[k]
        while len(self._windows) >= self.max_keys:  # still full: drop the oldest key
            del self._windows[next(iter(self._windows))]
