"""Latency models: how long a message takes between the exchange and the trader, in integer nanoseconds.

Sans-I/O: a model only *returns* durations. Whoever schedules messages (the venue server, the backtester) adds them
to the time an event happened. The replay venue itself takes ``now_ns`` of an order as the time the order *reaches
the exchange*: the caller has already added the order-entry latency.

Three legs, bundled in :class:`LatencyModel`:

- ``feed``: exchange event -> the trader sees it (market data);
- ``order_entry``: the trader sends an order -> it reaches the matching engine;
- ``response``: the matching engine acts -> the trader gets the acknowledgement or the fill.

Each leg is a :class:`ConstantLatency` or a :class:`SampledLatency` (seeded draws, with replacement, from measured
durations). :func:`feed_latency_samples` measures feed latencies in a recording: ``ts_local_ns - ts_exch_ns`` of
its messages.

The clock-offset caveat: the two stamps come from different clocks. In the Binance captures of
``../shared/data`` the local receive clock runs about 1.27 s *behind* the exchange, so the raw differences are
negative (about -1.276 s to -1.06 s on the spot capture). The offset is unknown, only constant (over minutes), so
:func:`feed_latency_samples` subtracts a baseline, by default the minimum: what it returns is the latency *above the
fastest message of the recording* (the fastest message counts as 0 ns). That is a lower bound of the true latency
(the fastest message took some time too); add a constant for the part no recording can see, e.g. the round trip
to the exchange measured by a ping. A low quantile as the baseline (``baseline_quantile=0.001``) is more robust to
one message stamped wrongly; values under it are then clipped to 0.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from workbench.enums import F_BATCH_END, K_DEPTH, K_TRADE
from workbench.exceptions import ConfigError

__all__ = ["Latency", "ConstantLatency", "SampledLatency", "LatencyModel", "DelayLine", "feed_latency_samples"]


class Latency(Protocol):
    """One leg's latency: draws of int nanoseconds (>= 0)."""

    def draw_ns(self) -> int: ...

    def draw_many_ns(self, n: int) -> np.ndarray: ...


class ConstantLatency:
    """The same latency every time."""

    def __init__(self, ns: int) -> None:
        if isinstance(ns, bool) or not isinstance(ns, (int, np.integer)) or ns < 0:
            raise ConfigError(f"latency must be a non-negative integer of ns, got {ns!r}")
        self.ns = int(ns)

    def draw_ns(self) -> int:
        return self.ns

    def draw_many_ns(self, n: int) -> np.ndarray:
        return np.full(int(n), self.ns, np.int64)

    def __repr__(self) -> str:
        return f"ConstantLatency({self.ns})"


class SampledLatency:
    """Draws, with replacement and seeded, from measured latencies (e.g. :func:`feed_latency_samples`).

    Parameters
    ----------
    samples_ns : the measured durations, int ns >= 0 (at least one).
    seed : the generator's seed: the same seed gives the same sequence of draws.
    """

    def __init__(self, samples_ns, seed: int | None = 0) -> None:
        s = np.asarray(samples_ns)
        if s.ndim != 1 or len(s) == 0:
            raise ConfigError("samples_ns must be a non-empty 1-d array")
        if not np.issubdtype(s.dtype, np.integer):
            raise ConfigError(f"samples_ns must be integer nanoseconds, got dtype {s.dtype}")
        if s.min() < 0:
            raise ConfigError("latency samples must be >= 0 (subtract the clock offset first: feed_latency_samples)")
        self.samples_ns = s.astype(np.int64, copy=True)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def draw_ns(self) -> int:
        return int(self.samples_ns[self._rng.integers(len(self.samples_ns))])

    def draw_many_ns(self, n: int) -> np.ndarray:
        return self.samples_ns[self._rng.integers(len(self.samples_ns), size=int(n))]

    def quantile_ns(self, q: float) -> int:
        """A quantile of the samples (not of the draws), e.g. ``0.5`` for the median."""
        return int(np.quantile(self.samples_ns, q, method="lower"))

    def __repr__(self) -> str:
        return f"SampledLatency({len(self.samples_ns)} samples, median {self.quantile_ns(0.5)} ns, seed={self.seed})"


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """The three legs of a venue's latency (see the module docstring)."""

    feed: Latency
    order_entry: Latency
    response: Latency

    @classmethod
    def constant(cls, feed_ns: int, order_entry_ns: int, response_ns: int | None = None) -> LatencyModel:
        """Constant legs; ``response_ns`` defaults to ``order_entry_ns`` (a symmetric link)."""
        r = order_entry_ns if response_ns is None else response_ns
        return cls(ConstantLatency(feed_ns), ConstantLatency(order_entry_ns), ConstantLatency(r))

    def feed_ns(self) -> int:
        return self.feed.draw_ns()

    def order_entry_ns(self) -> int:
        return self.order_entry.draw_ns()

    def response_ns(self) -> int:
        return self.response.draw_ns()

    def round_trip_ns(self) -> int:
        """One order-entry draw plus one response draw."""
        return self.order_entry.draw_ns() + self.response.draw_ns()


class DelayLine:
    """Messages on one link, each released no earlier than its due time and never before one put earlier.

    With sampled latencies a later message may draw a shorter delay; on one connection (TCP) it still cannot
    overtake, so its due time is raised to the previous one's. Sans-I/O: the owner asks what is due.
    """

    __slots__ = ("_items", "_last_ns")

    def __init__(self) -> None:
        self._items: deque = deque()
        self._last_ns = -(2**63)

    def put(self, due_ns: int, item) -> int:
        """Queue ``item`` for ``due_ns``; returns the due time it got (``>=`` every earlier one)."""
        due = due_ns if due_ns > self._last_ns else self._last_ns
        self._last_ns = due
        self._items.append((due, item))
        return due

    def next_due_ns(self) -> int | None:
        """When the first waiting item is due, or None when nothing waits."""
        return self._items[0][0] if self._items else None

    def pop_due(self, now_ns: int) -> list:
        """The items due by ``now_ns``, in the order they were put."""
        items, out = self._items, []
        while items and items[0][0] <= now_ns:
            out.append(items.popleft()[1])
        return out

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def feed_latency_samples(
    events: np.ndarray | Iterable[np.ndarray],
    *,
    kinds: tuple[int, ...] = (K_DEPTH, K_TRADE),
    baseline_quantile: float = 0.0,
) -> np.ndarray:
    """Feed latencies of a recording, int64 ns >= 0: ``ts_local_ns - ts_exch_ns`` minus a baseline.

    Parameters
    ----------
    events : one event array or an iterable of chunks (e.g. a :class:`~workbench.data.BinanceCapture`).
    kinds : event kinds whose exchange time is a real stamp of the venue. The default, depth diffs (``E``) and
        trades (``T``), leaves out spot ``bookTicker`` rows and REST snapshots, whose exchange time the reader
        *estimates* from the receive stamp (their difference would be an artefact, not a measurement).
    baseline_quantile : the quantile of the raw differences taken as zero latency (see the module docstring for
        why one is needed at all); 0 subtracts the minimum, so the fastest message is 0 ns.

    One sample per message: only rows flagged BATCH_END count, so a diff of 40 levels is one sample, not 40.
    Returns an empty array when no row qualifies.
    """
    if not 0.0 <= baseline_quantile < 1.0:
        raise ConfigError(f"baseline_quantile must be in [0, 1), got {baseline_quantile!r}")
    chunks = [events] if isinstance(events, np.ndarray) else events
    parts = []
    kinds_arr = np.asarray(kinds, np.uint8)
    for ev in chunks:
        m = np.isin(ev["kind"], kinds_arr) & ((ev["flags"] & F_BATCH_END) != 0)
        parts.append((ev["ts_local_ns"][m] - ev["ts_exch_ns"][m]).astype(np.int64))
    raw = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if len(raw) == 0:
        return raw
    base = int(raw.min()) if baseline_quantile == 0.0 else int(np.quantile(raw, baseline_quantile, method="lower"))
    return np.maximum(raw - base, 0)
