"""What the views see of a running engine: :class:`Snapshot`, and :class:`Telemetry` that gathers it.

A snapshot is a plain value: integers in ticks and lots, P&L in quote currency, times in ns; lists and dicts only,
so that it crosses the control plane as JSON and comes back with :meth:`Snapshot.from_dict`. Panels read the newest
one at their own frame rate; whatever they missed in between is summarised in it (the last trades and fills carry
a sequence number, so a panel that skipped frames still draws each of them once).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Snapshot", "Telemetry", "LatencyRing", "LATENCY_EDGES_US"]

# Bin edges of the latency histograms, microseconds (the last bin is everything above).
LATENCY_EDGES_US = (0, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """The engine at ``ts_ns`` as the views show it. Prices in ticks, sizes in lots, money in quote currency.

    ``books``: symbol -> ``{"bids": [[px_ticks, qty_lots], ...], "asks": [...]}``, best first.
    ``trades``: the market's last trades, ``[seq, ts_ns, symbol, px_ticks, qty_lots, aggressor]`` (aggressor +1: a
    buyer lifted the ask). ``fills``: ours, ``[seq, ts_ns, symbol, side, px_ticks, qty_lots, fee, is_maker]``.
    ``own_orders``: ``[symbol, side, px_ticks, open_lots, client_order_id]``. ``breakers``: rule ->
    ``[value, threshold, tripped]`` (see :meth:`workbench.risk.RiskGuard.breakers`). ``latency``: name ->
    ``{"p50_us", "p99_us", "n", "counts"}`` over :data:`LATENCY_EDGES_US`. ``feed``: messages/s, gaps, resyncs,
    age of the last book update per symbol (ms).
    """

    ts_ns: int
    running: bool
    paused: bool
    guard_state: str
    halted_by: str | None
    tops: dict[str, tuple]                 # symbol -> (bid ticks, bid lots, ask ticks, ask lots)
    in_sync: dict[str, bool]
    positions: dict[str, int]
    cash: float
    fees: float
    equity_change: float                   # cash moved + positions at mid, since start
    open_orders: int
    counters: dict[str, int]
    last_error: str | None
    strategy: str = ""
    instruments: dict[str, list] = field(default_factory=dict)   # symbol -> [tick_size, lot_size] (decimal texts)
    books: dict[str, dict] = field(default_factory=dict)
    trades: list = field(default_factory=list)
    fills: list = field(default_factory=list)
    own_orders: list = field(default_factory=list)
    realised: float = 0.0                  # includes fees (negative fees are rebates)
    unrealised: float = 0.0
    rebates: float = 0.0                   # maker rebates received (>= 0)
    peak_equity: float = 0.0
    drawdown: float = 0.0                  # from peak_equity, quote currency (>= 0)
    breakers: dict[str, list] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    param_specs: list = field(default_factory=list)  # the strategy's Params as dicts (name, default, lo, hi, ...)
    latency: dict[str, dict] = field(default_factory=dict)
    feed: dict[str, object] = field(default_factory=dict)
    alerts: list = field(default_factory=list)  # recent faults and halts, human-readable: [ts_ns, text]
    halts: list = field(default_factory=list)   # why strategy orders are refused now (engine halts, guard pauses)

    def to_dict(self) -> dict:
        """The fields as a dict, shallow: the values are already plain lists and dicts, made for this snapshot
        (``dataclasses.asdict`` would deep-copy some 50 kB at every publish, on the engine's loop)."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, d: dict) -> "Snapshot":
        """A snapshot received as JSON (unknown keys from a newer engine are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


_FIELDS = tuple(f.name for f in dataclasses.fields(Snapshot))


class LatencyRing:
    """The last ``n`` samples of one latency (ns in, microseconds out): percentiles and a histogram."""

    def __init__(self, n: int = 2048) -> None:
        self._buf = np.zeros(n, np.int64)
        self._n = 0
        self._summary: tuple[int, dict] | None = None  # (samples seen, summary) of the last summary()

    def add(self, ns: int) -> None:
        self._buf[self._n % len(self._buf)] = ns
        self._n += 1

    def summary(self) -> dict:
        if self._summary is not None and self._summary[0] == self._n:
            return self._summary[1]
        k = min(self._n, len(self._buf))
        if k == 0:
            return {"p50_us": None, "p99_us": None, "n": 0, "counts": [0] * len(LATENCY_EDGES_US)}
        us = self._buf[:k] / 1e3
        p50, p99 = np.percentile(us, (50, 99))
        idx = np.searchsorted(np.asarray(LATENCY_EDGES_US[1:], float), us, side="right")
        counts = np.bincount(idx, minlength=len(LATENCY_EDGES_US))
        out = {"p50_us": round(float(p50), 1), "p99_us": round(float(p99), 1), "n": int(self._n),
               "counts": [int(c) for c in counts]}
        self._summary = (self._n, out)
        return out


class Telemetry:
    """What the engine remembers only for its views: the last trades and fills, latencies, the feed's rate."""

    def __init__(self, n_trades: int = 256, n_fills: int = 256, n_alerts: int = 32) -> None:
        self.trades: deque = deque(maxlen=n_trades)
        self.fills: deque = deque(maxlen=n_fills)
        self.alerts: deque = deque(maxlen=n_alerts)
        self.latency = {"tick_to_order": LatencyRing(), "order_ack": LatencyRing()}
        self._seq = 0
        self.book_updates = 0
        self.last_book_ns: dict[str, int] = {}
        self._rate_ref = (0, 0)            # (ts_ns, book_updates) at the start of the rate's window
        self.book_rate = 0.0
        self.peak_equity = 0.0
        self._lat: tuple[int, dict] = (0, {})  # (ts_ns, summaries): percentiles are recomputed 4 times a second

    def on_book(self, ts_ns: int, symbol: str) -> None:
        self.book_updates += 1
        self.last_book_ns[symbol] = ts_ns

    def on_trade(self, ts_ns: int, symbol: str, px_ticks: int, qty_lots: int, aggressor: int) -> None:
        self._seq += 1
        self.trades.append([self._seq, ts_ns, symbol, px_ticks, qty_lots, aggressor])

    def on_fill(self, ts_ns: int, symbol: str, side: int, px_ticks: int, qty_lots: int, fee: float,
                is_maker: bool) -> None:
        self._seq += 1
        self.fills.append([self._seq, ts_ns, symbol, side, px_ticks, qty_lots, fee, bool(is_maker)])

    def alert(self, ts_ns: int, text: str) -> None:
        """A fault or a halt the user should see (the same text goes to the log and, with one, the journal)."""
        if not self.alerts or self.alerts[-1][1] != text:
            self.alerts.append([ts_ns, text])

    def feed_health(self, ts_ns: int, counters: dict) -> dict:
        t0, n0 = self._rate_ref
        if not t0:
            self._rate_ref = (ts_ns, self.book_updates)
        elif ts_ns - t0 >= 1_000_000_000:  # over a second at least: snapshots come faster than some feeds
            self.book_rate = (self.book_updates - n0) * 1e9 / (ts_ns - t0)
            self._rate_ref = (ts_ns, self.book_updates)
        return {"book_updates_per_s": round(self.book_rate, 1),
                "book_updates": self.book_updates,
                "gaps": int(counters.get("feed_gap", 0)),
                "resyncs": int(counters.get("feed_resync", 0)),
                "disconnects": int(counters.get("feed_disconnected", 0)),
                "malformed": int(counters.get("feed_malformed", 0)),
                "age_ms": {s: round((ts_ns - t) / 1e6, 1) for s, t in self.last_book_ns.items()}}

    def latency_summary(self, ts_ns: int = 0) -> dict:
        """Percentiles and histograms of each latency, recomputed at most every 250 ms of ``ts_ns``."""
        if not self._lat[1] or ts_ns - self._lat[0] >= 250_000_000 or ts_ns < self._lat[0]:
            self._lat = (ts_ns, {k: r.summary() for k, r in self.latency.items()})
        return self._lat[1]
