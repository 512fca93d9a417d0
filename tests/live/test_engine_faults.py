"""Issue 5's faults, each injected into a running engine trading the venue served by the test: a venue that goes
away and comes back, a dropped depth event (gap), a stale snapshot, ``serverShutdown``, -1021, 429, an order whose
execution status is unknown, a strategy that raises, a frozen feed.

For each: the engine survives; its book equals the venue's afterwards; no strategy order reaches the venue while
trading is unsafe (checked in the venue's own records of accepted orders, against the halts the journal recorded);
the reason is in the snapshot (``halts``, ``faults``) and in the journal (``faults`` table, or risk events); and
trading resumes where it should. The strategy (:class:`Prober`) keeps a post-only bid replaced every 30 ms, so an
order that slipped through a halt would be seen."""

from __future__ import annotations

import contextlib
import time

import pytest

from tests.live.venue_records import (
    SYM,
    USER,
    Prober,
    alerts,
    book_matches_venue,
    guard_pauses,
    halt_intervals,
    journal_rows,
    on_loop,
    orders_accepted_while,
    served,
    stop_all,
    wait_for,
)
from workbench.live.engine import Engine
from workbench.strategy.orders import OrderState


@contextlib.contextmanager
def trading(tmp_path, seed: int, **cfg):
    """A venue, and an engine running the prober against it with a journal; both stopped after the body."""
    with served(seed) as rig:
        path = tmp_path / "j.sqlite"
        prober = Prober()
        eng = Engine(prober, rig.config(journal_path=str(path), **cfg)).start()
        try:
            wait_for(lambda: len(rig.venue.accepted_of(USER)) >= 3, 30, "the prober's first orders at the venue")
            yield rig, eng, prober, path
        finally:
            stop_all(eng)


def accepted(rig) -> int:
    return len(rig.venue.accepted_of(USER))


def resumes(rig, eng, what: str) -> None:
    """Trading goes on: nothing halts, and the venue accepts the prober's orders again."""
    wait_for(lambda: not eng.snapshot().halts, 30, f"no halt after {what}")
    n = accepted(rig)
    wait_for(lambda: accepted(rig) >= n + 2, 30, f"orders reaching the venue again after {what}")


def snapshot_shows(eng, *texts: str, timeout: float = 10.0) -> tuple:
    """Wait for a snapshot whose halts mention every text; returns those halts."""
    def ok():
        s = eng.snapshot()
        return s is not None and all(any(t in h for h in s.halts) for t in texts)

    wait_for(ok, timeout, f"a snapshot with halts {texts}; last: {eng.snapshot().halts}")
    return eng.snapshot().halts


def faults_of(path, kind: str) -> list[dict]:
    return journal_rows(path, "faults", f"kind = '{kind}'")


def no_order_while_halted(rig, eng, path, key: str) -> list:
    ivs = halt_intervals(path, key)
    assert ivs, f"no halt {key!r} in the journal"
    assert orders_accepted_while(rig, eng, ivs) == []
    return ivs


# --------------------------------------------------------------------------------------------------------- faults

def test_the_venue_goes_away_and_comes_back(tmp_path):
    with trading(tmp_path, seed=21) as (rig, eng, prober, path):
        rig.stop()  # every connection closed, the port refused
        halts = snapshot_shows(eng, "orders", f"book {SYM}")
        assert any("disconnected" in h or "not ready" in h for h in halts)
        tries = prober.attempts
        wait_for(lambda: prober.attempts >= tries + 3, 10, "the strategy trying while the venue is away")
        rig.start()  # the same venue (its book and our resting order kept), the same port
        resumes(rig, eng, "the venue's return")
        assert book_matches_venue(eng, rig)
        assert eng.counters["exec_reconnects"] + eng.executor.stats["reconnects"] >= 1
        no_order_while_halted(rig, eng, path, "orders")
        no_order_while_halted(rig, eng, path, f"book {SYM}")
        assert faults_of(path, "disconnected") and any("disconnected" in f for f in alerts(eng))
        # the engine's orders agree with the venue's
        wait_for(lambda: sorted(o.client_order_id for o in on_loop(eng, eng.orders.open_orders))
                 == sorted(v.client_order_id for v in rig.open_orders()), 10, "open orders agreeing")


def test_a_dropped_depth_event_halts_until_the_book_is_resynced(tmp_path):
    with trading(tmp_path, seed=22) as (rig, eng, prober, path):
        # the snapshot endpoint fails for a while, so the book stays out of sync long enough to watch
        rig.call(lambda: rig.server.protocol.faults.fail("/api/v3/depth", -1000, times=None))
        rig.call(lambda: setattr(rig.server.faults, "drop_depth", 1))
        halts = snapshot_shows(eng, f"book {SYM}: out of sync (gap")
        assert not eng.snapshot().in_sync[SYM]
        n, tries = accepted(rig), prober.attempts
        wait_for(lambda: prober.attempts >= tries + 5, 10, "the strategy trying while out of sync")
        assert accepted(rig) == n  # the venue saw none of those
        rig.call(lambda: rig.server.protocol.faults.clear("/api/v3/depth"))
        resumes(rig, eng, "the resync")
        assert book_matches_venue(eng, rig)
        no_order_while_halted(rig, eng, path, f"book {SYM}")
        gaps = faults_of(path, "gap")
        assert gaps and gaps[0]["symbol"] == SYM and "does not follow" in gaps[0]["detail"]
        assert faults_of(path, "snapshot_error") and "out of sync" in halts[0]
        assert any(f"feed {SYM} gap: " in f for f in alerts(eng))


def test_a_stale_snapshot_is_skipped_and_the_book_resynced(tmp_path):
    with trading(tmp_path, seed=23) as (rig, eng, prober, path):
        rig.call(lambda: setattr(rig.server.faults, "stale_snapshot", 3))  # the first snapshot ever served, again
        rig.call(lambda: setattr(rig.server.faults, "drop_depth", 1))
        wait_for(lambda: eng.feed.stats["stale_snapshots"] >= 1, 20, "a stale snapshot skipped")
        resumes(rig, eng, "the resync")
        assert book_matches_venue(eng, rig)
        no_order_while_halted(rig, eng, path, f"book {SYM}")
        stale = faults_of(path, "stale_snapshot")
        assert stale and "older than the buffered diffs" in stale[0]["detail"]
        assert any("stale_snapshot" in f for f in alerts(eng))


def test_server_shutdown_reconnects_the_order_connection(tmp_path):
    with trading(tmp_path, seed=24) as (rig, eng, prober, path):
        assert rig.call(rig.server.send_server_shutdown) == 1
        wait_for(lambda: faults_of(path, "server_shutdown"), 10, "serverShutdown in the journal")
        wait_for(lambda: eng.executor.stats["reconnects"] >= 1, 20, "the reconnect")
        resumes(rig, eng, "serverShutdown")
        assert book_matches_venue(eng, rig)
        ivs = no_order_while_halted(rig, eng, path, "orders")
        assert any("server shutdown" in r["detail"] for r in faults_of(path, "halt"))
        assert any("server_shutdown" in f for f in alerts(eng))
        assert ivs[0][1] > ivs[0][0]


def test_1021_halts_until_the_clock_is_checked_and_corrected(tmp_path):
    with trading(tmp_path, seed=25) as (rig, eng, prober, path):
        # the venue's time endpoint fails for a while: the clock cannot be checked yet
        rig.call(lambda: rig.server.protocol.faults.fail("/api/v3/time", -1000, times=None))
        wrong = lambda: time.time_ns() - 30_000_000_000  # noqa: E731  the local clock jumps 30 s back
        eng.executor.clock = wrong
        halts = snapshot_shows(eng, "clock")
        assert "-1021" in " ".join(halts)
        n, tries = accepted(rig), prober.attempts
        wait_for(lambda: prober.attempts >= tries + 5, 10, "the strategy trying while the clock is unchecked")
        assert accepted(rig) == n
        rig.call(lambda: rig.server.protocol.faults.clear("/api/v3/time"))
        resumes(rig, eng, "the clock's correction")  # signed with the corrected clock, orders pass again
        assert abs(eng.executor.clock() - time.time_ns()) < 1_000_000_000 and eng.executor.clock is not wrong
        assert book_matches_venue(eng, rig)
        no_order_while_halted(rig, eng, path, "clock")
        assert faults_of(path, "clock_corrected")
        refused = journal_rows(path, "orders", "reason LIKE '-1021%'")
        assert refused and all(rig.call(lambda c=r["client_order_id"]: rig.venue.order(USER, SYM, client_order_id=c))
                               is None for r in refused)


def test_1021_on_reconnect_is_survived_once_the_clock_is_corrected(tmp_path):
    """The clock goes wrong while the order connection is down: the user-data subscription of the reconnect is
    refused with -1021. That is the clock, not the key: the engine checks the clock, corrects it, and the
    executor's next attempt connects (it used to give up for good)."""
    import asyncio

    with trading(tmp_path, seed=27) as (rig, eng, prober, path):
        eng.pause()  # no order on the way: the subscription alone meets the wrong clock
        eng.executor.clock = lambda: time.time_ns() - 30_000_000_000
        eng._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(eng.executor.connection.close()))
        wait_for(lambda: faults_of(path, "clock"), 20, "the subscription's -1021 reported")
        wait_for(lambda: faults_of(path, "clock_corrected"), 20, "the clock checked and corrected")
        wait_for(lambda: eng.executor.ready.is_set(), 20, "the order connection back")
        eng.resume()
        resumes(rig, eng, "the reconnect with the corrected clock")
        assert abs(eng.executor.clock() - time.time_ns()) < 1_000_000_000


def test_429_backs_off_then_trades_again(tmp_path):
    with trading(tmp_path, seed=26, rate_limit_backoff_s=0.8) as (rig, eng, prober, path):
        rig.call(lambda: rig.server.protocol.faults.fail("order.place", -1015, times=1))
        halts = snapshot_shows(eng, "rate limit")
        assert "-1015" in " ".join(halts) and "backing off" in " ".join(halts)
        resumes(rig, eng, "the backoff")
        (a, b, _), = no_order_while_halted(rig, eng, path, "rate limit")
        assert 0.7e9 <= b - a <= 5e9
        assert book_matches_venue(eng, rig)
        assert any("rate limit" in f for f in alerts(eng))


@pytest.mark.parametrize("executed", [True, False], ids=["executed", "not-executed"])
def test_an_unknown_order_status_halts_until_the_venue_says(tmp_path, executed):
    with trading(tmp_path, seed=27) as (rig, eng, prober, path):
        faults = rig.server.protocol.faults

        def inject():
            if executed:  # the next order is placed, its answer says "execution status unknown"
                faults.unknown_status("order.place")
            else:  # the next order is answered "execution status unknown" and was not placed; order.status fails
                faults.fail("order.place", -1007)
                faults.fail("order.status", -1000, times=None)

        rig.call(inject)
        wait_for(lambda: faults_of(path, "unknown_status"), 10, "the unknown status in the journal")
        coid = faults_of(path, "unknown_status")[0]["detail"].split(":")[0]
        # executed, its execution report may come in before the answer is handled: then nothing is unknown any
        # more and there is nothing to halt for; not executed, the engine must halt until order.status answers
        if not executed:
            wait_for(lambda: halt_intervals(path, f"unknown {coid}"), 10, "the unknown-status halt in the journal")
            snapshot_shows(eng, f"unknown {coid}")
            assert on_loop(eng, lambda: eng.orders.get(coid).state) is OrderState.PENDING_NEW
            n = accepted(rig)
            time.sleep(1.5)  # asked again at least once, still failing: still halted
            assert accepted(rig) == n and eng.executor.stats["status_queries"] >= 2
            assert on_loop(eng, lambda: eng.orders.get(coid).state) is OrderState.PENDING_NEW
            rig.call(lambda: faults.clear("order.status"))
        resumes(rig, eng, "the status")
        venue_view = rig.call(lambda: rig.venue.order(USER, SYM, client_order_id=coid))
        mine = on_loop(eng, lambda: eng.orders.get(coid))
        if executed:  # the venue has it; the engine knows it (from its report or its status)
            assert venue_view is not None and mine.order_id == venue_view.order_id
            wait_for(lambda: on_loop(eng, lambda: eng.orders.get(coid).state.name) == rig.call(
                lambda: rig.venue.order(USER, SYM, client_order_id=coid).status.name), 10, "states agreeing")
        else:  # never placed: the venue has no such order, and the engine says so
            assert venue_view is None and mine.state is OrderState.REJECTED
        assert orders_accepted_while(rig, eng, halt_intervals(path, "unknown")) == []
        assert executed or halt_intervals(path, f"unknown {coid}")
        assert faults_of(path, "unknown_status") and any("unknown_status" in f for f in alerts(eng))
        assert book_matches_venue(eng, rig)


def test_a_strategy_that_raises_is_stopped_and_nothing_it_asks_reaches_the_venue(tmp_path):
    with trading(tmp_path, seed=28) as (rig, eng, prober, path):
        prober.boom = True
        wait_for(lambda: eng.last_error is not None, 10, "the strategy's error")
        halts = snapshot_shows(eng, "guard HALTED (kill)")
        assert "strategy raised RuntimeError: bug in the strategy" in " ".join(halts)
        wait_for(lambda: rig.open_orders() == [], 10, "the prober's bid cancelled at the venue")
        (err,) = faults_of(path, "error")
        after = [v.client_order_id for t, v in rig.venue.accepted_of(USER, err["ts_ns"])
                 if on_loop(eng, lambda c=v.client_order_id: eng.orders.get(c).tag) != "guard"]
        time.sleep(0.3)
        assert after == [] and [v for t, v in rig.venue.accepted_of(USER, err["ts_ns"])
                                if eng.orders.get(v.client_order_id).tag != "guard"] == []
        kills = journal_rows(path, "risk_events", "rule = 'kill'")
        assert kills and "strategy raised" in kills[0]["reason"]
        assert eng.snapshot().guard_state == "HALTED" and book_matches_venue(eng, rig)


def test_a_frozen_feed_pauses_entries_and_cancels_resting_orders(tmp_path):
    with trading(tmp_path, seed=29) as (rig, eng, prober, path):
        rig.call(lambda: setattr(rig.server.faults, "freeze_feed", True))
        halts = snapshot_shows(eng, "guard REDUCING (stale)")
        assert "no book update for" in " ".join(halts)
        wait_for(lambda: rig.open_orders() == [], 10, "resting orders cancelled at the venue")
        n, tries = accepted(rig), prober.attempts
        wait_for(lambda: prober.attempts >= tries + 5, 10, "the strategy trying while the feed is frozen")
        assert accepted(rig) == n
        rig.call(lambda: setattr(rig.server.faults, "freeze_feed", False))  # the held messages go out, in order
        wait_for(lambda: eng.snapshot().guard_state == "ACTIVE", 10, "the guard active again")
        resumes(rig, eng, "the thaw")
        assert book_matches_venue(eng, rig) and eng.feed.stats["gaps"] == 0
        pauses = [p for p in guard_pauses(path) if p[2] == "stale"]
        assert pauses and orders_accepted_while(rig, eng, pauses) == []
        assert any("stale" in f for f in alerts(eng))


def test_the_snapshot_field_has_a_default():
    from workbench.live.engine import Snapshot

    s = Snapshot(ts_ns=0, running=True, paused=False, guard_state="ACTIVE", halted_by=None, tops={}, in_sync={},
                 positions={}, cash=0.0, fees=0.0, equity_change=0.0, open_orders=0, counters={}, last_error=None)
    assert s.halts == [] and Snapshot.from_dict(s.to_dict()) == s


def test_a_kill_whose_flatten_hits_the_rate_limit_flattens_after_the_backoff(tmp_path):
    from workbench.venue.api import OrderType, TimeInForce

    with trading(tmp_path, seed=27, rate_limit_backoff_s=0.5) as (rig, eng, prober, path):
        async def buy():
            eng._send("BTCUSDT", 1, OrderType.MARKET, 3, 0, TimeInForce.IOC, "", "user")

        eng._call(buy())
        wait_for(lambda: eng.positions["BTCUSDT"] > 0, 20, "a long position")
        rig.call(lambda: rig.server.protocol.faults.fail("order.place", -1015, times=1))  # the kill's flatten
        assert eng.kill() is True
        assert eng.positions["BTCUSDT"] == 0 and eng.counters["guard_orders"] >= 2
        assert rig.call(lambda: rig.venue.open_orders(USER)) == []
        assert any("-1015" in h for h in " ".join(a[1] for a in eng.snapshot().alerts).split("; "))


def test_a_burst_of_orders_meets_the_90_percent_rate_monitor_before_the_venue_limit():
    """The guard's API-rate monitor counts each order as it goes (the venue's counts on connect and with each
    answer, plus the orders still in flight), not only at its 50 ms tick: a strategy that sends 30 orders in one
    decision against a limit of 20 orders / 10 s gets 18 out (90 %), the guard refuses the rest, and the venue
    refuses none with -1015 (which would halt trading); once the venue's window has ended, orders go out again."""
    from tests.live.test_engine import config
    from workbench.strategy import Strategy
    from workbench.venue.keys import new_api_key
    from workbench.venue.protocol import ProtocolConfig
    from workbench.venue.server import ThreadedVenue
    from workbench.venue.synthetic import SyntheticVenue

    class Burst(Strategy):
        name = "burst"

        def __init__(self):
            super().__init__()
            self.sent: list = []
            self.more = 0  # orders to try on the next book updates
            self.later: list = []

        def on_book(self, env, symbol):
            bid = env.book().best_bid_ticks()
            if not self.sent:
                self.sent = [env.limit(1, 100, bid - 500 - k, post_only=True) for k in range(30)]
            elif self.more:
                self.more -= 1
                self.later.append(env.limit(1, 100, bid - 600, post_only=True))

    venue = SyntheticVenue.default(seed=41)
    key = new_api_key(USER)
    with ThreadedVenue(venue, [key], protocol_config=ProtocolConfig(orders_per_10s=20)) as tv:
        strat = Burst()
        eng = Engine(strat, config(tv.urls, key, control=False)).start()
        try:
            wait_for(lambda: strat.sent, 20, "the burst")
            out = [o for o in strat.sent if o is not None]
            assert len(out) == 18  # 90 % of 20: the monitor saw each order as it went
            wait_for(lambda: all(o.state is OrderState.NEW for o in out), 10, "the venue's answers")
            assert len(venue.open_orders(USER)) == 18
            assert not [o for o in eng.orders.orders.values() if "-1015" in o.reason]
            assert not any("rate limit" in h for h in eng.snapshot().halts)
            assert any(e.rule == "api_rate" for e in eng.risk_events)
            # no answer brings a count while the guard holds orders back: the venue's 10 s window ends, the count
            # starts afresh (the guard loop rolls it) and orders go out again
            wait_for(lambda: not on_loop(eng, lambda: eng.guard.breakers()["api_rate"][2]), 15,
                     "the monitor to clear with the window")
            strat.more = 1
            wait_for(lambda: strat.later, 10, "another decision")
            assert strat.later[0] is not None
            wait_for(lambda: strat.later[0].state is OrderState.NEW, 10, "the venue to take it")
        finally:
            stop_all(eng)
