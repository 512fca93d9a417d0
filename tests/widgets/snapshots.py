"""Hand-built snapshots for panel tests (no engine)."""

from __future__ import annotations

import concurrent.futures

from workbench.live import Snapshot


def snap(ts_ns: int = 1_700_000_000_000_000_000, *, bids=((100, 5), (99, 3)), asks=((101, 4), (102, 2)),
         trades=(), fills=(), own_orders=(), params=None, specs=None, **kw) -> Snapshot:
    base = dict(ts_ns=ts_ns, running=True, paused=False, guard_state="ACTIVE", halted_by=None,
                tops={"X": (bids[0][0] if bids else None, 0, asks[0][0] if asks else None, 0)}, in_sync={"X": True},
                positions={"X": 0}, cash=0.0, fees=0.0, equity_change=0.0, open_orders=len(own_orders), counters={},
                last_error=None, strategy="Test", instruments={"X": ["0.5", "0.001"]},
                books={"X": {"bids": [list(b) for b in bids], "asks": [list(a) for a in asks]}},
                trades=[list(t) for t in trades], fills=[list(f) for f in fills],
                own_orders=[list(o) for o in own_orders], params=params or {}, param_specs=specs or [],
                breakers={"kill": [0.0, 1.0, False], "stale": [5e6, 3e8, False]})
    base.update(kw)
    return Snapshot(**base)


class Recorder:
    """A source's ``command``: records calls and answers with futures the test completes."""

    def __init__(self):
        self.calls: list[tuple[str, dict, concurrent.futures.Future]] = []

    def __call__(self, name, **params):
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.calls.append((name, params, fut))
        return fut
