"""Helpers of the engine's fault and restart tests: a venue that keeps its own records, served from a thread of its
own (restartable on the same port), strategies that keep orders flowing, and checks made on the venue's side.

The venue's records are what its matching engine did, taken where it does it (:class:`RecordingVenue` wraps the
synthetic venue): every order it accepted, with the wall time it accepted it, and every fill of every account.
The engine's word is only used to name its own orders (which were sent before a halt began, which are the guard's).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from dataclasses import dataclass

from workbench.live.engine import Engine, EngineConfig
from workbench.live.executor import Credentials
from workbench.risk import RiskConfig
from workbench.strategy import Strategy
from workbench.strategy.orders import OrderState
from workbench.venue.api import ExecutionReport
from workbench.venue.keys import new_api_key
from workbench.venue.protocol import ProtocolConfig
from workbench.venue.server import ServerConfig, ThreadedVenue
from workbench.venue.synthetic import SyntheticVenue

USER = 1
SYM = "BTCUSDT"
LOT = 100  # 0.001 BTC


class RecordingVenue:
    """A :class:`SyntheticVenue` that keeps the venue's own records: ``accepted`` (wall ns when accepted, the order
    as placed) and ``fills`` (execution reports with a fill, every account). Served like any venue (through the
    server's general path: it reads events with ``poll``)."""

    def __init__(self, inner: SyntheticVenue) -> None:
        self._v = inner
        self.symbols = inner.symbols
        self.accepted: list = []
        self.fills: list[ExecutionReport] = []

    def place(self, req, now_ns):
        r = self._v.place(req, now_ns)
        if r.order is not None:
            self.accepted.append((time.time_ns(), r.order))
        return r

    def poll(self):
        events = self._v.poll()
        self.fills.extend(e for e in events if isinstance(e, ExecutionReport) and e.fill is not None)
        return events

    def __getattr__(self, name):
        return getattr(self._v, name)

    def accepted_of(self, account: int = USER, since_ns: int = 0) -> list:
        return [(t, o) for t, o in list(self.accepted) if o.account == account and t >= since_ns]

    def fills_of(self, account: int = USER) -> list[ExecutionReport]:
        return [e for e in list(self.fills) if e.order.account == account]


class Rig:
    """The recording venue served on 127.0.0.1 (a free port, kept across :meth:`restart`)."""

    def __init__(self, seed: int) -> None:
        self.venue = RecordingVenue(SyntheticVenue.default(seed=seed))
        self.key = new_api_key(USER)
        self.port = 0
        self.tv: ThreadedVenue | None = None
        self.start()

    def start(self) -> None:
        self.tv = ThreadedVenue(self.venue, [self.key], config=ServerConfig(port=self.port),
                                protocol_config=ProtocolConfig(orders_per_10s=100_000, orders_per_day=10_000_000))
        self.tv.start()
        self.port = self.tv.server.port

    def stop(self) -> None:
        if self.tv is not None:
            self.tv.stop()

    def restart(self, down_s: float = 0.0) -> None:
        """The venue goes away (every connection closed, the port refused) and comes back on the same port."""
        self.stop()
        time.sleep(down_s)
        self.start()

    @property
    def urls(self) -> dict:
        return self.tv.urls

    @property
    def server(self):
        return self.tv.server

    def call(self, fn):
        """``fn()`` on the venue's loop (faults are set there; reads there see the venue between events)."""
        return self.tv.call(fn)

    def depth(self, n: int = 10):
        return self.call(lambda: self.venue.depth(SYM, n))

    def open_orders(self):
        return self.call(lambda: self.venue.open_orders(USER))

    def base_lots(self) -> int:
        free, locked = self.call(lambda: self.venue.balances(USER))["BTC"]
        return free + locked

    def config(self, **kw) -> EngineConfig:
        return EngineConfig(rest=self.urls["rest"], stream=self.urls["stream"], ws_api=self.urls["ws_api"],
                            credentials=Credentials(self.key.key, self.key.secret), symbols=(SYM,),
                            risk=kw.pop("risk", RiskConfig(max_depth_frac=1.0)), control=kw.pop("control", False),
                            **kw)


@contextlib.contextmanager
def served(seed: int = 11):
    rig = Rig(seed)
    try:
        yield rig
    finally:
        rig.stop()


def wait_for(pred, timeout: float = 30.0, what: str = "") -> None:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def alerts(eng: Engine) -> list[str]:
    """The texts of the snapshot's alerts (recent faults, halts, resumes, risk events)."""
    s = eng.snapshot()
    return [text for _, text in s.alerts] if s is not None else []


def on_loop(eng: Engine, fn, timeout: float = 10.0):
    """``fn()`` on the engine's loop (its books and orders are consistent there)."""
    async def run():
        return fn()

    return asyncio.run_coroutine_threadsafe(run(), eng._loop).result(timeout)


def book_matches_venue(eng: Engine, rig: Rig, n: int = 10, timeout: float = 20.0) -> bool:
    """The engine's book equals the venue's, level for level (top ``n``), at the same update id. The venue moves
    on: both are read at once, on the venue's loop, until their ids agree; then they must be equal."""
    st = eng.feed.symbols[SYM]

    def both():
        snap = rig.venue.depth(SYM, n)
        mine = on_loop(eng, lambda: (st.last_update_id, eng.feed.in_sync(SYM), st.book.levels(n).tolist()))
        return snap, mine

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        snap, (uid, in_sync, lv) = rig.call(both)
        if in_sync and uid == snap.last_update_id:
            bids = [(p, q) for p, q in zip(lv[0], lv[1]) if q]
            asks = [(p, q) for p, q in zip(lv[2], lv[3]) if q]
            return bids == [tuple(x) for x in snap.bids] and asks == [tuple(x) for x in snap.asks]
        time.sleep(0.003)
    raise AssertionError("the engine's book never caught up with the venue's update id")


# -- what the journal says ---------------------------------------------------------------------------------------------

def journal_rows(path, table: str, where: str = "1") -> list[dict]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY rowid")]
    finally:
        con.close()


def halt_intervals(path, key: str | None = None) -> list[tuple[int, int, str]]:
    """``(start_ns, end_ns, key)`` of every engine halt in the journal (end: now if not lifted yet)."""
    open_: dict[str, int] = {}
    out = []
    for r in journal_rows(path, "faults", "source = 'engine' AND kind IN ('halt', 'resume')"):
        k = r["detail"].split(": ", 1)[0]
        if r["kind"] == "halt":
            open_.setdefault(k, r["ts_ns"])
        elif k in open_:
            out.append((open_.pop(k), r["ts_ns"], k))
    out += [(t, time.time_ns(), k) for k, t in open_.items()]
    return [iv for iv in out if key is None or iv[2].startswith(key)]


def guard_pauses(path) -> list[tuple[int, int, str]]:
    """``(start_ns, end_ns, rule)`` of every time the guard was not ACTIVE (risk events)."""
    out, start, rule = [], None, ""
    for r in journal_rows(path, "risk_events"):
        if r["state_from"] == 0 and r["state_to"] != 0:
            start, rule = r["ts_ns"], r["rule"]
        elif r["state_from"] != 0 and r["state_to"] == 0 and start is not None:
            out.append((start, r["ts_ns"], rule))
            start = None
    if start is not None:
        out.append((start, time.time_ns(), rule))
    return out


def orders_accepted_while(rig: Rig, eng: Engine, intervals, *, guard_ok: bool = False) -> list:
    """The venue's accepted orders of the user inside any interval that the engine created inside it too (an order
    sent before a halt began may arrive after: in flight, not a breach). ``guard_ok``: the guard's own orders
    (flatten) do not count."""
    bad = []
    for t, view in rig.venue.accepted_of(USER):
        for a, b, why in intervals:
            if a <= t <= b:
                o = eng.orders.get(view.client_order_id)
                if o is not None and o.created_ns < a:
                    continue  # in flight when the halt began
                if guard_ok and o is not None and o.tag == "guard":
                    continue
                bad.append((why, t - a, view.client_order_id))
    return bad


# -- strategies --------------------------------------------------------------------------------------------------------

class Prober(Strategy):
    """Keeps one post-only bid of 0.001 BTC 20 ticks under the best bid, replaced every 30 ms: a steady stream of
    orders that adds exposure and (nearly) never fills, so every order it sends is one a halt must stop.
    ``attempts`` counts what it asked for; ``boom`` makes its next timer raise."""

    name = "prober"
    act_on_book = False

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0
        self.boom = False

    @property
    def timer_ns(self):
        return 10_000_000

    def on_timer(self, env) -> None:
        if self.boom:
            raise RuntimeError("bug in the strategy")
        bid = env.book().best_bid_ticks()
        if bid is None:
            return
        mine = env.open_orders()
        for o in mine:
            if o.state is OrderState.NEW and env.now_ns - o.created_ns > 30_000_000:
                env.cancel(o)
        if not [o for o in mine if o.state is not OrderState.PENDING_CANCEL]:
            self.attempts += 1
            env.limit(1, LOT, bid - 20, post_only=True, tag="probe")


class Burst(Strategy):
    """A burst of fills: every 5 ms a market order of 0.001 BTC (unless one is in flight), buying and selling in
    turn (position 0 or 0.001 BTC), and one post-only bid resting 50 ticks under the best bid (open orders to restore after a crash).
    ``attempts`` counts every order it asked for."""

    name = "burst"
    act_on_book = False

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0
        self.n = 0

    @property
    def timer_ns(self):
        return 5_000_000

    def on_timer(self, env) -> None:
        self.n += 1
        mine = env.open_orders()
        bid = env.book().best_bid_ticks()
        # the resting bid first: once the burst nears the venue's order rate limit, the guard lets only orders
        # that reduce exposure through, and a new bid would wait for the next quiet moment
        if bid is not None and not [o for o in mine if o.tag == "rest"]:
            self.attempts += 1
            env.limit(1, LOT, bid - 50, post_only=True, tag="rest")
        if not [o for o in mine if o.tag == "burst"]:  # one market order at a time: the position stays 0 or 1 lot
            self.attempts += 1
            env.market(1 if env.position_lots() <= 0 else -1, LOT, tag="burst")


@dataclass
class Seen:
    """What a restarted engine's strategy saw when it started, next to what the venue had at that very moment."""

    orders: list | None = None
    venue_orders: list | None = None
    position: int | None = None
    venue_base: int | None = None


class Checker(Strategy):
    """Sends nothing. On start (once the engine says trading may begin) it notes the engine's open orders and
    position, and reads the venue's at the same moment (blocking the engine's loop for that read: a test only)."""

    name = "checker"
    act_on_book = False

    def __init__(self, rig: Rig) -> None:
        super().__init__()
        self.rig = rig
        self.seen = Seen()

    def on_start(self, env) -> None:
        self.seen.orders = sorted((o.client_order_id, o.state.name, o.filled_lots) for o in env.open_orders())
        self.seen.position = env.position_lots()
        views = self.rig.open_orders()
        self.seen.venue_orders = sorted((v.client_order_id, v.status.name, v.filled_lots) for v in views)
        self.seen.venue_base = self.rig.base_lots()


def stop_all(*engines) -> None:
    for e in engines:
        with contextlib.suppress(Exception):
            e.stop()
    assert not [t for t in threading.enumerate() if t.name == "workbench-engine" and t.is_alive()]
