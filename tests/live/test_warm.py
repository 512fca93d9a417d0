"""Keep-warm dry ticks (workbench.live.warm): they run the strategy's decision, the guard, the order book, signing
and framing on scratch objects, and change nothing of the real engine, its strategy or its journal; the venue
receives nothing from them."""

from __future__ import annotations

import contextlib
import copy
import sqlite3
import time

import numpy as np
import orjson

from workbench.live.engine import Engine
from workbench.strategy import Strategy
from workbench.venue.keys import new_api_key
from workbench.venue.server import ThreadedVenue
from workbench.venue.synthetic import SyntheticVenue

from tests.live.test_engine import USER, config, wait_for
from tests.live.venue_records import on_loop


class Quoter(Strategy):
    """Answers every book update with an order: a post-only bid far from the touch, or the cancel of the last one;
    keeps its own state (calls seen, the environments it was given)."""

    name = "quoter"

    def __init__(self, send: bool = True):
        super().__init__()
        self.send = send
        self.books = 0
        self.envs: set[int] = set()
        self.placed: list[str] = []

    def on_book(self, env, symbol):
        self.books += 1
        self.envs.add(id(env))
        if not self.send:
            return
        opened = env.open_orders()
        if not opened:
            o = env.limit(1, 100, env.book().best_bid_ticks() - 500, post_only=True)
            if o is not None:
                self.placed.append(o.client_order_id)
        elif opened[0].state.name == "NEW":
            env.cancel(opened[0])


@contextlib.contextmanager
def counted_venue(seed: int = 7):
    """The synthetic venue served from a thread; yields (urls, key, frames): ``frames`` lists the WebSocket API
    methods the venue received, as its server read them."""
    venue = SyntheticVenue.default(seed=seed)
    key = new_api_key(USER)
    frames: list[str] = []
    with ThreadedVenue(venue, [key]) as tv:
        proto = tv.server.protocol
        orig = proto.handle_ws_api

        def handle(session, text, *a, **kw):
            frames.append(text if isinstance(text, str) else bytes(text).decode())
            return orig(session, text, *a, **kw)

        proto.handle_ws_api = handle
        yield tv.urls, key, frames


def _journal_rows(path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


def test_dry_ticks_send_nothing_and_change_no_state(tmp_path):
    path = str(tmp_path / "j.sqlite")
    with counted_venue() as (urls, key, frames):
        strat = Quoter(send=False)
        eng = Engine(strat, config(urls, key, journal_path=path, keep_warm_us=1000, control=False)).start()
        try:
            wait_for(lambda: eng.warmer is not None and eng.warmer.frames >= 100, 20, "dry ticks with orders")
            n_frames = len(frames)
            books0 = eng._call(_books(eng, strat))
            snap0 = eng.snapshot()
            rows0 = _journal_rows(path)
            t0 = eng.warmer.ticks
            wait_for(lambda: eng.warmer.ticks >= t0 + 200, 20, "200 more dry ticks")
            time.sleep(0.2)  # a fresh snapshot
            snap1 = eng.snapshot()
            assert eng.warmer.frames > 100  # the order path did run, dry
            assert frames[n_frames:] == []  # not one frame reached the venue
            assert eng.orders.orders == {} and snap1.open_orders == 0
            assert eng.positions == {"BTCUSDT": 0} and snap1.positions == {"BTCUSDT": 0}
            assert snap1.counters == snap0.counters
            assert _journal_rows(path) == rows0
            # the real strategy heard only real book events, with the real environment
            books1 = eng._call(_books(eng, strat))
            assert books1[0] - books0[0] == books1[1] - books0[1]
            assert strat.envs == {id(eng.env)}
            assert eng.warmer.scratch.strategy is not strat and eng.warmer.scratch.strategy.books > 200
        finally:
            eng.stop()
        assert eng.warmer is None  # stopped with the engine


async def _books(eng: Engine, strat: Quoter) -> tuple[int, int]:
    """Book events heard by the strategy, and by the engine (read together on its loop)."""
    return strat.books, eng.telemetry.book_updates


def _state(eng: Engine, strat: Quoter) -> dict:
    """What the engine, its strategy and its executor hold (copied)."""
    ex = eng.executor
    return copy.deepcopy({
        "orders": {k: (o.state, o.filled_lots, tuple(o.history)) for k, o in eng.orders.orders.items()},
        "open": [o.client_order_id for o in eng.orders.open_orders()],
        "positions": dict(eng.positions), "cash": dict(eng._cash_units), "counters": dict(eng.counters),
        "risk_events": len(eng.risk_events), "guard": (eng.guard.state, eng.guard.breakers()),
        "strategy": (strat.books, set(strat.envs), list(strat.placed)),
        "book": {s: (eng.feed.top(s), eng.feed.symbols[s].last_update_id) for s in eng.config.symbols},
        "feed": dict(eng.feed.stats), "executor": (dict(ex.stats), len(ex._pending), ex.rate_usage),
        "telemetry": (eng.telemetry.book_updates, len(eng.telemetry.alerts)), "sent": dict(eng._sent_ns),
        "halts": dict(eng._halts),
    })


def test_a_dry_tick_changes_nothing_of_a_trading_engine(tmp_path):
    """An engine whose strategy sends on every book update: dry ticks run back to back on its loop, with nothing
    else in between, leave every piece of its state as it was; the copy of the strategy did send (dry)."""
    path = str(tmp_path / "j.sqlite")
    with counted_venue() as (urls, key, frames):
        strat = Quoter()
        eng = Engine(strat, config(urls, key, journal_path=path, keep_warm_us=1000, control=False)).start()
        try:
            wait_for(lambda: eng.warmer is not None and len(strat.placed) >= 2, 20, "real orders and a warmer")

            async def dry(n):
                before, rows0, n_frames = _state(eng, strat), _journal_rows(path), len(frames)
                f0 = eng.warmer.frames
                for _ in range(n):
                    eng.warmer.tick()
                return before, _state(eng, strat), rows0, _journal_rows(path), eng.warmer.frames - f0, n_frames

            before, after, rows0, rows1, dry_frames, n_frames = eng._call(dry(300))
            assert dry_frames >= 300  # each dry tick framed at least one order
            assert after == before
            assert rows1 == rows0
            # every order the venue ever got is one of the real strategy's
            placed = [orjson.loads(f)["params"]["newClientOrderId"] for f in list(frames) if '"order.place"' in f]
            assert placed and set(placed) <= set(eng.orders.orders)
        finally:
            eng.stop()


def test_keep_warm_is_off_by_default():
    with counted_venue() as (urls, key, frames):
        cfg = config(urls, key, control=False)
        assert cfg.keep_warm_us == 0  # opt-in: it costs a sixth of a core while the market is quiet
        eng = Engine(Quoter(send=False), cfg).start()
        try:
            time.sleep(0.3)
            assert eng.warmer is None
            assert not any(t.get_name() == "engine-keep-warm" for t in eng._tasks)
        finally:
            eng.stop()


def test_keep_warm_config_is_checked():
    import pytest

    from workbench.exceptions import ConfigError
    from workbench.live.executor import Credentials
    from workbench.live.engine import EngineConfig

    def cfg(**kw):
        return EngineConfig(rest="http://x", stream="ws://x", ws_api="ws://x", credentials=Credentials("k", "s"),
                            symbols=("BTCUSDT",), **kw)

    with pytest.raises(ConfigError):
        cfg(keep_warm_us=-1)
    with pytest.raises(ConfigError, match="busy_poll"):  # asyncio's timers cannot keep a sub-ms period
        cfg(keep_warm_us=200)
    assert cfg(keep_warm_us=200, busy_poll=True).keep_warm_us == 200
    assert cfg(busy_poll=True).keep_warm_us == 0  # spinning alone is allowed


def test_busy_poll_runs_dry_ticks_at_a_sub_ms_period_and_stops_with_the_engine():
    """busy_poll: the loop never waits, dry ticks come every keep_warm_us (here 200 us: far more than asyncio's
    1 ms timers allow) while the market is quiet, the engine trades as before, and stop() ends the spinning."""
    import threading

    with counted_venue() as (urls, key, frames):
        strat = Quoter()
        eng = Engine(strat, config(urls, key, keep_warm_us=200, busy_poll=True, control=False)).start()
        try:
            wait_for(lambda: eng.warmer is not None and eng.warmer.ticks > 0, 20, "dry ticks")
            w = eng.warmer
            starts: list[int] = []
            tick = w.tick

            def timed():
                starts.append(time.perf_counter_ns())
                tick()

            w.tick = timed  # the spinning loop calls it on the warmer
            wait_for(lambda: len(starts) >= 500, 20, "500 timed dry ticks")
            gaps = np.diff(np.array(starts[:500]))
            # the market is quiet most of the time (about 10 frames/s): many dry ticks follow each other within
            # 0.2-0.3 ms, which asyncio's 1 ms timers could not do (a loaded machine stretches some gaps)
            assert np.percentile(gaps, 10) < 900_000, f"gaps p10 {np.percentile(gaps, 10) / 1e3:.0f} us"
            assert len(on_loop(eng, lambda: set(w.scratch.executor._places))) <= 1  # dry orders leave no count
            wait_for(lambda: len(strat.placed) >= 3, 20, "real orders while spinning")
            # dry ticks sent nothing: the venue's order.place count meets the strategy's (a dry order among them
            # would keep it ahead for good; the strategy's last one may still be on its way, hence the wait)
            wait_for(lambda: [orjson.loads(f)["method"] for f in frames].count("order.place") == len(strat.placed),
                     10, "the venue to have read exactly the strategy's orders")
        finally:
            eng.stop()
        assert eng.warmer is None and eng._tasks == []
        assert not [t for t in threading.enumerate() if t.name.startswith("workbench-engine")]


def test_busy_poll_without_keep_warm_spins_and_trades():
    with counted_venue() as (urls, key, frames):
        strat = Quoter()
        eng = Engine(strat, config(urls, key, busy_poll=True, control=False)).start()
        try:
            assert eng.warmer is None  # no dry ticks: only the spinning
            assert any(t.get_name() == "engine-keep-warm" for t in eng._tasks)
            wait_for(lambda: len(strat.placed) >= 3, 20, "real orders while spinning")
            assert eng.snapshot().running
        finally:
            eng.stop()
        assert eng._tasks == []


def test_the_dry_connection_frames_as_the_real_one_and_writes_nowhere():
    """The scratch executor's connection is the real executor's connection class of its transport, over a
    transport with no socket: ``send_text`` makes the same websocket frame (masked, as a client must), which is
    counted and dropped; the scratch executor takes the real one's transport."""
    import asyncio
    import types

    import pytest

    from workbench.live import executor as ex_mod
    from workbench.live.executor import Credentials, Executor, ExecutorConfig
    from workbench.live.warm import _Dropped, _DryExecutor, _dry_connection
    from workbench.strategy.orders import OrderBook

    def unmasked(data: bytes) -> bytes:
        assert data[0] == 0x81 and data[1] & 0x80  # FIN + text, masked
        n, i = data[1] & 0x7F, 2
        if n == 126:
            n, i = int.from_bytes(data[2:4], "big"), 4
        mask, payload = data[i:i + 4], data[i + 4:]
        assert len(payload) == n
        return bytes(b ^ mask[k % 4] for k, b in enumerate(payload))

    async def scenario():
        transports = ["websockets"] + (["picows"] if ex_mod.picows is not None else [])
        for transport in transports:
            dropped = _Dropped()
            conn = _dry_connection(transport, dropped)
            assert type(conn).__name__ == {"picows": "_PicowsConnection", "websockets": "_WebsocketsConnection"}[transport]
            for frame in (b'{"id":1,"method":"order.place"}', b'{"x":"' + b"y" * 300 + b'"}'):
                conn.send_text(frame)
                assert unmasked(bytes(dropped.last)) == frame
            assert dropped.frames == 2 and conn.is_open
            real = Executor(ExecutorConfig(ws_api_url="ws://127.0.0.1:9", transport=transport),
                            Credentials("k" * 64, "s" * 64), {}, OrderBook("t"))
            dry = _DryExecutor(real, OrderBook("d"), types.SimpleNamespace(_on_order=None, _on_fill=None))
            assert dry.transport == transport and type(dry.connection) is type(conn)
        if ex_mod.picows is None:
            pytest.skip("picows is not installed")

    asyncio.run(scenario())
