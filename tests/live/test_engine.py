"""The live engine in its own thread against the simulated venue served in another: it starts at once, trades,
publishes snapshots, takes parameter changes, pauses, and a kill leaves the venue with no open order and a flat
position (checked on the venue's side). Also: a strategy that raises is stopped and flattened."""

from __future__ import annotations

import contextlib
import threading
import time

from workbench.live.engine import Engine, EngineConfig
from workbench.live.executor import Credentials
from workbench.risk import RiskConfig
from workbench.strategy import MarketMaker, Strategy
from workbench.venue.keys import new_api_key
from workbench.venue.server import ThreadedVenue
from workbench.venue.synthetic import SyntheticVenue

USER = 1


@contextlib.contextmanager
def served_venue(seed: int = 7):
    """The synthetic venue served on 127.0.0.1 from a thread of its own; stopped on exit. Yields (venue, urls, key);
    the venue is only read while it runs."""
    venue = SyntheticVenue.default(seed=seed)
    key = new_api_key(USER)
    with ThreadedVenue(venue, [key]) as tv:
        yield venue, tv.urls, key


def config(urls, key, **kw) -> EngineConfig:
    return EngineConfig(rest=urls["rest"], stream=urls["stream"], ws_api=urls["ws_api"],
                        credentials=Credentials(key.key, key.secret), symbols=("BTCUSDT",),
                        risk=kw.pop("risk", RiskConfig(max_depth_frac=1.0)), **kw)


def wait_for(pred, timeout=20.0, what=""):
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_the_engine_trades_takes_commands_and_a_kill_leaves_the_venue_flat(tmp_path):
    with served_venue() as (venue, urls, key):
        base0 = venue.balances(USER)["BTC"]
        mm = MarketMaker(half_spread_ticks=0, order_qty=0.001, max_position=3, decide_every_ms=50)
        eng = Engine(mm, config(urls, key, journal_path=str(tmp_path / "j.sqlite")))
        t0 = time.monotonic()
        eng.start()
        assert eng.running and "secret" not in repr(eng.config) and key.secret not in repr(eng.config)
        wait_for(lambda: eng.counters["fills"] >= 2, 60, "fills from the synthetic flow")
        snap = eng.snapshot()
        assert snap.running and snap.guard_state == "ACTIVE" and snap.in_sync["BTCUSDT"]
        assert snap.tops["BTCUSDT"][0] < snap.tops["BTCUSDT"][2]
        assert [c.name for c in eng.set_params(half_spread_ticks=2)] == ["half_spread_ticks"]
        assert mm.params.half_spread_ticks == 2
        eng.pause()
        sent = eng.counters["orders_sent"]
        time.sleep(0.3)
        assert eng.counters["orders_sent"] == sent and eng.snapshot().paused
        eng.resume()
        assert eng.kill("test") is True
        # the venue's side: no open order of the user, and the base balance back where it started
        assert venue.open_orders(USER) == []
        free, locked = venue.balances(USER)["BTC"]
        assert (free + locked) == sum(base0) and locked == 0
        assert eng.snapshot().guard_state == "HALTED"
        eng.stop()
        eng.stop()  # idempotent
        assert not eng.running
        assert time.monotonic() - t0 < 120
        assert not [t for t in threading.enumerate() if t.name == "workbench-engine"]

        from workbench.journal import Journal

        with Journal(str(tmp_path / "j.sqlite")) as j:
            assert j.positions()["BTCUSDT"][0] == 0
            assert len(j.fills_frame()) == eng.counters["fills"]


class Raises(Strategy):
    name = "raises"
    act_on_book = False

    @property
    def timer_ns(self):
        return 50_000_000

    def __init__(self):
        super().__init__()
        self.n = 0

    def on_timer(self, env):
        self.n += 1
        if self.n == 1:
            env.market(1, 100)  # 0.001 BTC bought
        elif self.n == 5:
            raise RuntimeError("bug in the strategy")


def test_a_strategy_that_raises_is_stopped_and_the_position_flattened():
    with served_venue(seed=8) as (venue, urls, key):
        base0 = venue.balances(USER)["BTC"]
        eng = Engine(Raises(), config(urls, key)).start()
        try:
            wait_for(lambda: eng.last_error is not None, 20, "the strategy's error")
            wait_for(lambda: eng.positions["BTCUSDT"] == 0 and eng.counters["guard_orders"] >= 1, 20, "flatten")
            assert eng.last_error == "RuntimeError: bug in the strategy"
            assert eng.guard.state.name == "HALTED"
            wait_for(lambda: sum(venue.balances(USER)["BTC"]) == sum(base0), 10, "the venue's flat balance")
        finally:
            eng.stop()


def test_the_strategy_hears_nothing_before_on_start():
    """The books sync and the executor reconciles before trading may begin; a strategy's first callback is
    on_start (book events of the sync used to reach on_book first, and their orders were refused)."""
    from workbench.strategy import Strategy

    class Recorder(Strategy):
        name = "recorder"
        act_on_book = act_on_trade = True

        def __init__(self):
            super().__init__()
            self.calls: list[str] = []

        def on_start(self, env):
            self.calls.append("start")

        def on_book(self, env, symbol):
            self.calls.append("book")

        def on_trade(self, env, *a):
            self.calls.append("trade")

    with served_venue() as (venue, urls, key):
        rec = Recorder()
        eng = Engine(rec, config(urls, key)).start()
        try:
            wait_for(lambda: "book" in rec.calls, 20, "book events")
            assert rec.calls[0] == "start"
        finally:
            eng.stop()
