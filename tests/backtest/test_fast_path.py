"""The fast path (numba market between decisions) against the Python path: the same fills, orders, equity curve and
risk events, fill for fill, on hand-built recordings, on random ones, and on the real Binance captures; its kernels
against plain-Python references; and when it is chosen."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.venue.test_replay import BOOK, brief_history, cancel_history, diff, gap, snap, trade
from workbench.backtest import Backtest, BacktestConfig, MarketData
from workbench.backtest import nb
from workbench.backtest.feed import LocalFeed
from workbench.data.recording import load_recording
from workbench.book import nb as book_nb
from workbench.enums import F_BATCH_END, K_BBO, K_DEPTH, K_SNAPSHOT, K_TRADE
from workbench.exceptions import ConfigError
from workbench.instrument import Instrument
from workbench.risk import RiskConfig
from workbench.strategy import ImbalanceScalper, MarketMaker, OrderState, Param, Strategy
from workbench.types import empty_events
from workbench.venue.api import FeeSchedule, commission_units
from workbench.venue.latency import ConstantLatency, LatencyModel, SampledLatency
from workbench.venue.queue import ConservativeQueue, NoQueue, ProbabilisticQueue, QueuePos

INS = Instrument("TEST", tick_size="0.01", lot_size="1")
MS = 1_000_000
BUY, SELL = 1, -1
QUEUES = [ConservativeQueue(), ProbabilisticQueue(3), ProbabilisticQueue(1), ProbabilisticQueue(0), NoQueue()]
LOOSE = RiskConfig(stale_after_ns=10_000 * MS, max_depth_frac=1.0)


def market(*parts) -> MarketData:
    return MarketData(INS, np.concatenate(parts), "BASE", "QUOTE")


def config(**kw) -> BacktestConfig:
    base = dict(latency=LatencyModel.constant(2 * MS, 3 * MS, 5 * MS), fees=FeeSchedule(-100, 500),
                queue=ConservativeQueue(), mark_every_ns=50 * MS, risk=LOOSE)
    base.update(kw)
    return BacktestConfig(**base)


class Timed(Strategy):
    """Decides on a timer only; runs its script (local ns -> action) at the first decision at or after each time."""

    name = "timed"
    act_on_book = False
    act_on_trade = False
    params_spec = (Param("decide_every_ms", 10, lo=1, hi=60_000, unit="ms", doc="decision interval"),)

    def __init__(self, script=(), **params):
        super().__init__(**params)
        self.script = sorted(script, key=lambda x: x[0])
        self.seen: list[tuple] = []

    def on_timer(self, env):
        b = env.book()
        self.seen.append(("timer", env.now_ns, b.best_bid_ticks(), b.best_ask_ticks(), env.position_lots(),
                          tuple((o.client_order_id, o.state) for o in env.open_orders())))
        while self.script and self.script[0][0] <= env.now_ns:
            self.script.pop(0)[1](env)


class Watching(Timed):
    """Also reacts to answers (the fast path then stops at each one) and records what it saw there."""

    def on_order(self, env, order):
        self.seen.append(("order", env.now_ns, order.client_order_id, order.state, order.filled_lots,
                          env.book().best_bid_ticks()))

    def on_fill(self, env, order, px, qty, fee, maker):
        self.seen.append(("fill", env.now_ns, px, qty, fee, maker))


def run_both(make_strategy, data, cfg) -> tuple:
    """Run on the Python and the fast path; returns (python result, fast result, python strategy, fast strategy)."""
    out = []
    for fast in (False, True):
        strat = make_strategy()
        bt = Backtest(strat, data, BacktestConfig(**{**cfg.__dict__, "fast": fast, "compiled": False}))
        res = bt.run()
        assert bt.path == ("fast" if fast else "python"), bt.fast_path_reason
        out += [res, strat]
    return out[0], out[2], out[1], out[3]


def run_compiled(make_strategy, data, cfg):
    """Run on the compiled path, or None when the strategy offers no kernel."""
    strat = make_strategy()
    bt = Backtest(strat, data, BacktestConfig(**{**cfg.__dict__, "fast": None, "compiled": None}))
    res = bt.run()
    if bt.path != "compiled":
        assert "no compiled kernel" in bt.compiled_reason, bt.compiled_reason
        return None
    return res


def assert_same(a, b) -> None:
    for name in ("fills", "orders", "equity", "risk_events", "param_changes"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True, obj=name)
    assert a.counters == b.counters
    assert a.error == b.error
    assert a.metrics == pytest.approx(b.metrics, nan_ok=True) and a.metrics.keys() == b.metrics.keys()


def check(make_strategy, data, cfg):
    """The fast path (and the compiled path, for a strategy with a kernel) against the Python path."""
    a, b, sa, sb = run_both(make_strategy, data, cfg)
    assert_same(a, b)
    assert getattr(sa, "seen", None) == getattr(sb, "seen", None)
    c = run_compiled(make_strategy, data, cfg)
    if c is not None:
        assert_same(a, c)
    return b


# -- hand-built recordings ---------------------------------------------------------------------------------------------
T0 = 1_000 * MS


@pytest.mark.parametrize("cls", [Timed, Watching])
@pytest.mark.parametrize("queue", QUEUES, ids=repr)
def test_queue_fills_by_hand(queue, cls):
    # the venue's brief history, in ms: our bid joins behind 10 lots; sells of 4 and 5 lots, 2 lots join, a sell of 3
    hist = [snap(T0, 100, bids=[(100, 10), (99, 5)], asks=[(101, 7), (102, 8)]),
            trade(T0 + 30 * MS, 1, 100, 4, SELL), diff(T0 + 30 * MS, 101, bids=[(100, 6)]),
            trade(T0 + 40 * MS, 2, 100, 5, SELL), diff(T0 + 40 * MS, 102, bids=[(100, 1)]),
            diff(T0 + 45 * MS, 103, bids=[(100, 3)]),
            trade(T0 + 50 * MS, 3, 100, 3, SELL), diff(T0 + 50 * MS, 104, bids=[(100, 0)]),
            diff(T0 + 90 * MS, 105, bids=[(100, 2)])]
    res = check(lambda: cls([(T0, lambda env: env.limit(BUY, 2, 100, tag="q"))]), market(*hist),
                config(queue=queue))
    assert len(res.fills) >= 1


@pytest.mark.parametrize("queue", QUEUES, ids=repr)
def test_cancels_move_the_probabilistic_queue(queue):
    hist = [snap(T0, 100, bids=[(100, 10), (99, 5)], asks=[(101, 7), (102, 8)]),
            diff(T0 + 25 * MS, 101, bids=[(100, 20)]), diff(T0 + 26 * MS, 102, bids=[(100, 14)]),
            trade(T0 + 30 * MS, 1, 100, 4, SELL), diff(T0 + 30 * MS, 103, bids=[(100, 10)]),
            trade(T0 + 40 * MS, 2, 100, 5, SELL), diff(T0 + 40 * MS, 104, bids=[(100, 5)]),
            trade(T0 + 70 * MS, 3, 100, 5, SELL), diff(T0 + 70 * MS, 105, bids=[(100, 1)])]
    check(lambda: Timed([(T0, lambda env: env.limit(BUY, 2, 100)), (T0, lambda env: env.limit(BUY, 3, 100))]),
          market(*hist), config(queue=queue))


def test_trade_through_crossing_taking_post_only_ioc_fok_market_and_cancels():
    up = diff(T0 + 60 * MS, 103, bids=[(100, 0), (103, 4)], asks=[(101, 0), (102, 0), (104, 5)])
    hist = [snap(T0, 100, bids=[(100, 10), (99, 5)], asks=[(101, 7), (102, 8)]),
            trade(T0 + 35 * MS, 1, 98, 1, SELL), diff(T0 + 35 * MS, 101, bids=[(99, 4)]),
            diff(T0 + 45 * MS, 102, asks=[(102, 9)]), up,
            diff(T0 + 120 * MS, 104, bids=[(103, 6)], asks=[(104, 2), (105, 3)]),
            trade(T0 + 150 * MS, 2, 104, 2, BUY), diff(T0 + 150 * MS, 105, asks=[(104, 0)]),
            diff(T0 + 200 * MS, 106, bids=[(102, 1)])]
    script = [
        (T0, lambda env: env.limit(BUY, 3, 99, tag="through")),     # filled by the print at 98
        (T0, lambda env: env.limit(SELL, 3, 102, tag="crossed")),   # the bid at 103 crosses it
        (T0, lambda env: env.limit(BUY, 1, 101, post_only=True)),   # would take: rejected
        (T0, lambda env: env.limit(BUY, 10, 105, tag="walk")),      # takes 101 and 102 as taker
        (T0 + 10 * MS, lambda env: env.limit(BUY, 10, 102, tif="IOC")),  # what was taken is not offered again
        (T0 + 20 * MS, lambda env: env.limit(BUY, 40, 102, tif="FOK")),  # not enough: expires whole
        (T0 + 20 * MS, lambda env: env.market(SELL, 4)),
        (T0 + 50 * MS, lambda env: env.limit(SELL, 2, 110, tag="far")),
        (T0 + 70 * MS, lambda env: env.cancel_all()),
        (T0 + 100 * MS, lambda env: env.limit(SELL, 1, 105, tag="late")),
        (T0 + 130 * MS, lambda env: env.limit(BUY, 2, 104, tif="IOC")),
        (T0 + 160 * MS, lambda env: [env.cancel(o) for o in env.open_orders()]),
    ]
    for queue in QUEUES:
        res = check(lambda: Watching(list(script)), market(*hist), config(queue=queue))
        assert {"REJECTED", "EXPIRED", "CANCELED", "FILLED"} <= set(res.orders["state"])
        assert (~res.fills["is_maker"]).any() and res.fills["is_maker"].any()


def test_a_cancel_that_crosses_a_fill_is_refused_and_the_order_reported_filled():
    hist = [BOOK, snap(T0, 100, bids=[(100, 10)], asks=[(101, 7)]), trade(T0 + 12 * MS, 1, 99, 1, SELL),
            diff(T0 + 12 * MS, 101, bids=[(100, 0), (99, 3)]), diff(T0 + 40 * MS, 102, bids=[(99, 4)])]
    # the order fills at T0 + 12 ms; the cancel sent at T0 + 10 ms reaches the exchange at T0 + 13 ms
    res = check(lambda: Watching([(T0, lambda env: env.limit(BUY, 2, 100)), (T0 + 10 * MS, lambda env: env.cancel_all())]),
                market(*hist), config(latency=LatencyModel.constant(0, 3 * MS, 1 * MS)))
    assert res.orders["state"].tolist() == ["FILLED"]


@pytest.mark.parametrize("queue", QUEUES, ids=repr)
def test_a_gap_empties_the_book_and_the_next_snapshot_restates_the_queue(queue):
    hist = [snap(T0, 100, bids=[(100, 10), (99, 5)], asks=[(101, 7), (102, 8)]),
            diff(T0 + 20 * MS, 101, bids=[(100, 12)]),
            gap(T0 + 30 * MS, 102),
            diff(T0 + 35 * MS, 103, bids=[(100, 3)]),       # out of sync: the venue's book stays empty
            trade(T0 + 40 * MS, 1, 100, 2, SELL),
            snap(T0 + 60 * MS, 200, bids=[(100, 4), (98, 5)], asks=[(100 + 2, 7), (103, 1)]),
            trade(T0 + 80 * MS, 2, 100, 5, SELL), diff(T0 + 80 * MS, 201, bids=[(100, 0)]),
            snap(T0 + 120 * MS, 300, bids=[(96, 4)], asks=[(97, 1)]),  # a snapshot through our bid fills it
            diff(T0 + 150 * MS, 301, bids=[(95, 4)])]
    script = [(T0, lambda env: env.limit(BUY, 2, 100)), (T0 + 10 * MS, lambda env: env.limit(BUY, 1, 99)),
              (T0 + 45 * MS, lambda env: env.market(BUY, 1)), (T0 + 45 * MS, lambda env: env.limit(SELL, 1, 104))]
    check(lambda: Watching(list(script)), market(*hist), config(queue=queue))


def test_a_strategy_that_raises_is_flattened_by_the_guard_on_both_paths():
    class Raises(Timed):
        def on_timer(self, env):
            super().on_timer(env)
            if env.position_lots() > 0:
                raise RuntimeError("bug in the strategy")

    hist = [snap(T0, 100, bids=[(100, 10), (99, 5)], asks=[(101, 7), (102, 8)]),
            diff(T0 + 100 * MS, 101, bids=[(100, 20)]), diff(T0 + 300 * MS, 102, asks=[(101, 9)])]
    res = check(lambda: Raises([(T0, lambda env: env.market(BUY, 5))]), market(*hist), config())
    assert res.error == "RuntimeError: bug in the strategy" and res.counters["guard_orders"] == 1
    assert res.equity.iloc[-1]["position_lots"] == 0


def test_guard_rules_trade_stop_stale_book_and_concentration_on_both_paths():
    # the trade stop is judged on every book update (the fast path then stops after each one), a quiet feed goes
    # stale (its cancel is asked for while an order is checked and done at the next drain), orders are resized
    hist = [snap(T0, 100, bids=[(100, 10), (99, 5)], asks=[(101, 7), (102, 8)])]
    t = T0
    for k in range(40):
        t += (5 if k % 9 else 700) * MS
        px = 100 - (k % 7)
        hist += [trade(t, k + 1, px, 1, SELL), diff(t, 101 + k, bids=[(px, 3 + k % 4), (px - 1, 6)],
                                                       asks=[(px + 1, 5)])]
    for k in range(12):  # a slide: a long position is stopped out
        t += 20 * MS
        hist.append(snap(t, 200 + k, bids=[(93 - k, 9)], asks=[(95 - k, 9)]))
    script = [(T0 + k * 60 * MS, (lambda side: lambda env: env.limit(side, 4, (env.book().best_bid_ticks() or 100)
                                                                     - (1 if side > 0 else -2)))(BUY if k % 3 else SELL))
              for k in range(60)] + [(T0 + 3000 * MS, lambda env: env.market(BUY, 3))]
    risk = RiskConfig(stale_after_ns=300 * MS, max_depth_frac=0.5, trade_stop_ticks=3)
    res = check(lambda: Watching(list(script)), market(*hist), config(risk=risk, queue=NoQueue()))
    assert {"stale", "trade_stop", "concentration"} <= set(res.risk_events["rule"])


def test_feed_from_recording_sampled_feed_latency_a_window_and_zero_latency():
    rng = np.random.default_rng(1)
    ev = random_market(rng, 300)
    ev["ts_local_ns"] = ev["ts_exch_ns"] + rng.integers(0, 5 * MS, len(ev))
    data = MarketData(INS, ev, "BASE", "QUOTE")
    mk = lambda: RandomTrader(11, decide_every_ms=7)  # noqa: E731
    check(mk, data, config(feed_from_recording=True))
    samples = np.array([0, MS, 3 * MS, 9 * MS])
    for seed in (0, 1):
        # the fast path takes the feed's draws up front as the local feed does: a fresh model per run
        a = Backtest(mk(), data, config(fast=False, latency=LatencyModel(SampledLatency(samples, seed),
                                                                          ConstantLatency(MS), ConstantLatency(MS)))).run()
        b = Backtest(mk(), data, config(fast=True, latency=LatencyModel(SampledLatency(samples, seed),
                                                                         ConstantLatency(MS), ConstantLatency(MS)))).run()
        assert_same(a, b)
    mid = int(np.median(ev["ts_exch_ns"]))
    check(mk, data, config(start_ns=mid - 500 * MS, end_ns=mid + 800 * MS))
    check(mk, data, config(latency=LatencyModel.constant(0, 0, 0)))
    check(mk, data, config(latency=LatencyModel.constant(0, 2 * MS, 0)))


def test_levels_outside_the_dense_window_overflow_walks_and_resting_orders():
    # prices two million ticks apart: the far levels live in the books' overflow maps, which only the facade
    # (Python) updates; the walks read the window and the overflow levels merged (the window holds fewer than 16
    # levels a side), an IOC takes an overflow ask, a bid rests and fills at an overflow level
    top, far = 2_000_000, 150
    hist = [snap(T0, 100, bids=[(top, 5), (top - 1, 5), (far, 4), (far - 50, 7)], asks=[(top + 1, 5), (5_000_000, 3)]),
            diff(T0 + 30 * MS, 101, bids=[(far - 20, 2)]),
            trade(T0 + 60 * MS, 1, far, 6, SELL), diff(T0 + 60 * MS, 102, bids=[(far, 0)]),
            diff(T0 + 90 * MS, 103, asks=[(4_000_000, 1)]),
            gap(T0 + 100 * MS, 104),
            snap(T0 + 120 * MS, 200, bids=[(top, 5), (far, 9)], asks=[(top + 1, 5), (6_000_000, 2)]),
            diff(T0 + 160 * MS, 201, bids=[(far, 3)]), trade(T0 + 170 * MS, 2, far, 12, SELL)]
    script = [(T0, lambda env: env.limit(BUY, 2, far)),
              (T0 + 10 * MS, lambda env: env.market(SELL, 14)),
              (T0 + 70 * MS, lambda env: env.limit(BUY, 3, far)),
              (T0 + 95 * MS, lambda env: env.market(BUY, 7)),
              (T0 + 130 * MS, lambda env: env.limit(BUY, 20, 6_000_000, tif="IOC"))]
    for queue in QUEUES:
        res = check(lambda: Watching(list(script)), market(*hist), config(queue=queue))
        f = res.fills
        # the bid resting at an overflow level filled there; the IOC walked into the overflow asks
        assert f[f["px_ticks"] == far]["is_maker"].all() and (f["px_ticks"] == 6_000_000).any()


# -- the local book's reads, computed once per recording (the compiled path) --------------------------------------------
def _reference_tops(rows: np.ndarray, FD: np.ndarray, first_px, max_levels: int, initial: int) -> np.ndarray:
    """The local book's top and the sizes of its best 10 levels a side after each feed message, by the facade."""
    from workbench.book import L2Book

    book = L2Book(initial_levels=initial, max_levels=max_levels)
    if first_px is not None:
        book._set_window(first_px - initial // 2, initial)
    out = np.zeros((FD.shape[1], 6), np.int64)
    for k in range(FD.shape[1]):
        book.apply(rows[:int(FD[1, k])], int(FD[0, k]))
        top = book.top()
        bq = top.bid_qty_lots if top.bid_px_ticks is not None else 0
        aq = top.ask_qty_lots if top.ask_px_ticks is not None else 0
        lo, hi = book.st[book_nb.ST_BASE], book.st[book_nb.ST_BASE] + book.bid.shape[0]
        bids = [q for p, q in zip(*book.side_levels(1)) if lo <= p < hi][:10]  # the window's levels only
        asks = [q for p, q in zip(*book.side_levels(-1)) if lo <= p < hi][:10]
        out[k] = (top.bid_px_ticks or 0, bq, top.ask_px_ticks or 0, aq, sum(bids), sum(asks))
    return out, book


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [(1 << 17, 1 << 17), (64, 16)])
def test_local_tops_equal_the_facade_applied_message_by_message(seed, levels):
    # a narrow window (64 ticks) makes the facade move it and keep levels outside it, in the middle of messages
    from workbench.backtest.fast import BOOK_ROW_DT, local_tops

    rng = np.random.default_rng(300 + seed)
    ev = random_market(rng, 300)
    rows = np.empty(len(ev), BOOK_ROW_DT)
    for c in BOOK_ROW_DT.names:
        rows[c] = ev[c]
    _, msgs, *_ = nb.prepare_nb(ev["kind"], ev["ts_exch_ns"], ev["flags"])
    adds = np.flatnonzero(np.isin(ev["kind"], (K_DEPTH, K_SNAPSHOT)) & (ev["qty_lots"] > 0))
    first_px = int(ev["px_ticks"][adds[0]])
    LT, book = local_tops(rows, msgs, first_px, *levels)
    ref, ref_book = _reference_tops(rows, msgs, first_px, levels[0], min(levels))
    np.testing.assert_array_equal(LT, ref)
    assert book.top() == ref_book.top()
    for side in (1, -1):
        np.testing.assert_array_equal(np.concatenate(book.side_levels(side)),
                                      np.concatenate(ref_book.side_levels(side)))


def test_a_compiled_run_leaves_the_local_book_as_the_fast_path_does():
    rng = np.random.default_rng(5)
    data = MarketData(INS, random_market(rng, 300), "BASE", "QUOTE")
    books = {}
    for compiled in (True, False):
        bt = Backtest(MarketMaker(decide_every_ms=5), data, config(compiled=compiled))
        bt.run()
        assert bt.path == ("compiled" if compiled else "fast")
        books[compiled] = bt.env.book()  # the strategy's view of the local book
    a, b = books[True], books[False]
    assert a.top() == b.top() and a.top().bid_px_ticks is not None
    for side in (1, -1):
        assert a.levels(side, 50) == b.levels(side, 50) and len(a.levels(side, 50)) > 1


# -- random recordings and random decisions ----------------------------------------------------------------------------
def random_market(rng: np.random.Generator, n_steps: int, t0: int = T0) -> np.ndarray:
    """A random but consistent Binance-like recording: a snapshot, diffs near the touch, trades at the touch (most
    followed by the diff that shows them), sometimes a trade stamped after its diff, a gap and a new snapshot."""
    bids = {100 - i: int(rng.integers(1, 20)) for i in range(6)}
    asks = {101 + i: int(rng.integers(1, 20)) for i in range(6)}
    parts = [snap(t0, 100, bids=sorted(bids.items(), reverse=True), asks=sorted(asks.items()))]
    t, uid, tid = t0, 101, 1
    for _ in range(n_steps):
        t += int(rng.integers(0, 15)) * MS
        u = rng.random()
        if u < 0.4 and bids and asks:  # a trade at the touch, then the diff showing it
            side = BUY if rng.random() < 0.5 else SELL
            book = asks if side == BUY else bids
            px = min(book) if side == BUY else max(book)
            qty = int(rng.integers(1, book[px] + 3))
            parts.append(trade(t, tid, px, qty, side))
            tid += 1
            left = max(book[px] - qty, 0)
            if left:
                book[px] = left
            else:
                del book[px]
            kw = {"asks": [(px, left)]} if side == BUY else {"bids": [(px, left)]}
            if rng.random() < 0.9:
                parts.append(diff(t + (int(rng.integers(0, 3)) * MS if rng.random() < 0.2 else 0), uid, **kw))
                uid += 1
        elif u < 0.97:  # levels change near the touch
            nb_, na_ = [], []
            for _ in range(int(rng.integers(1, 4))):
                if rng.random() < 0.5:
                    ref = max(bids) if bids else (min(asks) - 1 if asks else 100)
                    px = ref + int(rng.integers(-3, 2))
                    if asks and px >= min(asks):
                        continue
                    q = int(rng.integers(0, 25)) if rng.random() < 0.8 else 0
                    (bids.__setitem__(px, q) if q else bids.pop(px, None))
                    nb_.append((px, q))
                else:
                    ref = min(asks) if asks else (max(bids) + 1 if bids else 101)
                    px = ref + int(rng.integers(-1, 4))
                    if bids and px <= max(bids):
                        continue
                    q = int(rng.integers(0, 25)) if rng.random() < 0.8 else 0
                    (asks.__setitem__(px, q) if q else asks.pop(px, None))
                    na_.append((px, q))
            if nb_ or na_:
                parts.append(diff(t, uid, bids=nb_, asks=na_))
                uid += 1
        else:  # the stream breaks; a new snapshot (maybe elsewhere) follows
            parts.append(gap(t, uid))
            uid += 1
            t += int(rng.integers(1, 30)) * MS
            shift = int(rng.integers(-3, 4))
            bids = {max(bids, default=100) + shift - i: int(rng.integers(1, 20)) for i in range(5)}
            asks = {max(bids) + 1 + i: int(rng.integers(1, 20)) for i in range(5)}
            uid += 1000
            parts.append(snap(t, uid, bids=sorted(bids.items(), reverse=True), asks=sorted(asks.items())))
            uid += 1
    return np.concatenate(parts)


class RandomTrader(Timed):
    """Random decisions near the touch: every order kind, cancels, cancel-all (seeded)."""

    def __init__(self, seed=0, **params):
        super().__init__((), **params)
        self.rnd = random.Random(seed)

    def on_timer(self, env):
        super().on_timer(env)
        r = self.rnd
        b = env.book()
        bid, ask = b.best_bid_ticks(), b.best_ask_ticks()
        ref = bid if bid is not None else (ask - 1 if ask is not None else 100)
        for _ in range(r.randrange(3)):
            u = r.random()
            side = r.choice((BUY, SELL))
            px = ref + r.randrange(-3, 5) if side > 0 else ref + r.randrange(-2, 6)
            qty = r.randrange(1, 12)
            if u < 0.45:
                env.limit(side, qty, px, post_only=r.random() < 0.5, tag=r.choice(("a", "b")))
            elif u < 0.55:
                env.limit(side, qty, px, tif=r.choice(("IOC", "FOK")))
            elif u < 0.6:
                env.market(side, qty)
            elif u < 0.85:
                opened = env.open_orders()
                if opened:
                    env.cancel(r.choice(opened))
            elif u < 0.9:
                env.cancel_all()


class RandomWatching(RandomTrader, Watching):
    pass


@pytest.mark.parametrize("seed", range(12))
def test_random_markets_and_decisions(seed):
    rng = np.random.default_rng(seed)
    data = MarketData(INS, random_market(rng, 400), "BASE", "QUOTE")
    queue = QUEUES[seed % len(QUEUES)]
    cls = RandomWatching if seed % 3 == 0 else RandomTrader
    lat = [LatencyModel.constant(2 * MS, 3 * MS, 5 * MS), LatencyModel.constant(0, MS, MS),
           LatencyModel.constant(MS, 5 * MS, 0)][seed % 3]
    risk = LOOSE if seed % 2 else RiskConfig(stale_after_ns=200 * MS, trade_stop_ticks=4 if seed % 4 == 0 else None)
    res = check(lambda: cls(seed, decide_every_ms=[3, 10, 25][seed % 3]), data,
                config(queue=queue, latency=lat, risk=risk, fees=FeeSchedule(-2_000, 3_000),
                       mark_every_ns=[10, 50, 1][seed % 3] * MS))
    assert len(res.orders) > 20


# -- the compiled path: the market maker's kernel, the guard's kernels, the orders on arrays ----------------------------
class MMWatching(MarketMaker):
    """The market maker with a callback of its own: its Python code must run, so no compiled path."""

    def on_fill(self, env, order, px, qty, fee, maker):
        pass


GUARDS = [LOOSE,
          RiskConfig(stale_after_ns=40 * MS, max_depth_frac=0.3, trade_stop_ticks=2),
          RiskConfig(max_daily_drawdown_frac=0.0005, max_hourly_loss_frac=0.001, spread_widen_x=1.2,
                     spread_window_ns=2_000 * MS, spread_min_samples=3, spread_sample_ns=20 * MS),
          RiskConfig(stale_after_ns=25 * MS, max_depth_frac=0.05, concentration_action="reject", trade_stop_ticks=1)]


@pytest.mark.parametrize("seed", range(12))
def test_compiled_market_maker_on_random_markets_with_guard_events(seed):
    # tight thresholds: the guard's events (stale, spread, concentration, trade stop, drawdown, hourly loss) and its
    # actions (cancel all, flatten with market orders) happen on every path, identically
    rng = np.random.default_rng(100 + seed)
    data = MarketData(INS, random_market(rng, 400), "BASE", "QUOTE")
    # decide_every_ms 0: after every book message (the kernel hands messages over one at a time)
    params = dict(decide_every_ms=[3, 10, 25, 0][seed % 4], half_spread_ticks=seed % 3, order_qty=float(1 + seed % 4),
                  max_position=[1, 3, 10][seed % 3], skew_ticks=[0.0, 0.5, 2.0][seed % 3])
    lat = [LatencyModel.constant(2 * MS, 3 * MS, 5 * MS), LatencyModel.constant(0, MS, MS),
           LatencyModel.constant(MS, 5 * MS, 0)][seed % 3]
    cfg = config(queue=QUEUES[seed % len(QUEUES)], latency=lat, risk=GUARDS[seed % len(GUARDS)],
                 fees=FeeSchedule(-2_000, 3_000), mark_every_ns=[10, 50, 1][seed % 3] * MS, initial_cash="50")
    a, _, _, _ = run_both(lambda: MarketMaker(**params), data, cfg)
    c = run_compiled(lambda: MarketMaker(**params), data, cfg)
    assert c is not None
    assert_same(a, c)
    assert len(c.orders) > 0


class Trading(Timed):
    """Reads the trades: the fast path does not hand them over, so the Python path runs."""

    act_on_trade = True

    def on_trade(self, env, symbol, px_ticks, qty_lots, aggressor, ts_ns):
        pass


@pytest.mark.parametrize("seed", range(6))
def test_a_strategy_acting_on_every_book_message_on_the_fast_path(seed):
    # Python callbacks after each book message (none after trade messages), the guard on every message
    rng = np.random.default_rng(200 + seed)
    data = MarketData(INS, random_market(rng, 300), "BASE", "QUOTE")
    params = dict(decide_every_ms=0, levels=[1, 3, 5][seed % 3], threshold=[0.2, 0.4, 0.6][seed % 3],
                  entry=["market", "join"][seed % 2], take_profit_ticks=2, stop_loss_ticks=2, max_hold_ms=50)
    cfg = config(queue=QUEUES[seed % len(QUEUES)], risk=GUARDS[seed % len(GUARDS)])
    b = check(lambda: ImbalanceScalper(**params), data, cfg)
    assert b.counters["decisions"] > 100


def test_compiled_path_trips_every_guard_rule_it_runs():
    rules = set()
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        data = MarketData(INS, random_market(rng, 400), "BASE", "QUOTE")
        bt = Backtest(MarketMaker(decide_every_ms=[3, 10, 25][seed % 3], half_spread_ticks=seed % 3,
                                  order_qty=float(1 + seed % 4), max_position=[1, 3, 10][seed % 3]), data,
                      config(risk=GUARDS[seed % len(GUARDS)], queue=QUEUES[seed % len(QUEUES)],
                             fees=FeeSchedule(-2_000, 3_000), initial_cash="50"))
        res = bt.run()
        assert bt.path == "compiled"
        rules |= set(res.risk_events["rule"])
        if res.counters["guard_orders"]:
            rules.add("flatten")
    assert {"stale", "spread", "concentration", "trade_stop", "daily_drawdown", "hourly_loss", "flatten"} <= rules


def test_compiled_path_is_chosen_when_it_applies_and_explains_when_not():
    data = market(BOOK, diff(T0, 101, bids=[(100, 3)]), diff(T0 + 500 * MS, 102, asks=[(101, 2)]))
    bt = Backtest(MarketMaker(), data, config())
    bt.run()
    assert bt.path == "compiled" and bt.compiled_reason is None
    for strat, cfg, why in [(MMWatching(), config(), "no compiled kernel"),
                            (Timed(), config(), "no compiled kernel"),
                            (MarketMaker(), config(compiled=False), "compiled=False"),
                            (MarketMaker(), config(progress=True), "progress"),
                            (MarketMaker(), config(risk=RiskConfig(spread_sample_ns=0)), "spread_sample_ns")]:
        bt = Backtest(strat, data, cfg)
        bt.run()
        assert bt.path == "fast" and why in bt.compiled_reason, bt.compiled_reason
    bt = Backtest(MarketMaker(), data, config())
    bt.guard.kill(0, "before the run")
    bt.run()
    assert bt.path == "fast" and "guard was used" in bt.compiled_reason
    with pytest.raises(ConfigError, match="no compiled kernel"):
        Backtest(Timed(), data, config(compiled=True)).run()
    bt = Backtest(MarketMaker(decide_every_ms=0), data, config())  # after every book message
    bt.run()
    assert bt.path == "compiled"
    bt = Backtest(ImbalanceScalper(decide_every_ms=0), data, config())
    bt.run()
    assert bt.path == "fast" and "no compiled kernel" in bt.compiled_reason


def test_compiled_frames_are_built_once_when_first_read_and_travel_with_a_pickled_result(monkeypatch):
    import pickle

    from workbench.backtest import compiled

    rng = np.random.default_rng(11)
    data = MarketData(INS, random_market(rng, 300), "BASE", "QUOTE")
    calls = []
    real = compiled.CompiledRun.frames
    monkeypatch.setattr(compiled.CompiledRun, "frames", lambda self, prefix: calls.append(1) or real(self, prefix))
    res = Backtest(MarketMaker(decide_every_ms=5), data, config()).run()
    assert calls == [] and res.counters["decisions"] > 0
    n = len(res.fills)
    assert calls == [1] and n > 0
    res.orders, res.equity, res.metrics
    assert calls == [1]
    back = pickle.loads(pickle.dumps(res))
    assert calls == [1]
    pd.testing.assert_frame_equal(back.fills, res.fills)
    assert pd.Series(back.metrics).equals(pd.Series(res.metrics))  # NaN where equal NaN
    ref = Backtest(MarketMaker(decide_every_ms=5), data, config(compiled=False)).run()
    assert_same(ref, back)


def test_a_compiled_run_that_gives_up_runs_again_on_the_fast_path(monkeypatch):
    from workbench.backtest import compiled

    rng = np.random.default_rng(7)
    data = MarketData(INS, random_market(rng, 300), "BASE", "QUOTE")
    cfg = config(risk=GUARDS[1])
    real = compiled.CompiledRun.run

    def gives_up(self, start_ns, timer_ns):
        real(self, start_ns, timer_ns)
        raise compiled.Bail("test")

    monkeypatch.setattr(compiled.CompiledRun, "run", gives_up)
    bt = Backtest(MarketMaker(decide_every_ms=5), data, cfg)
    bt.set_params(half_spread_ticks=2)  # kept across the restart
    py = Backtest(MarketMaker(decide_every_ms=5), data, replace(cfg, fast=False))
    py.set_params(half_spread_ticks=2)
    ref = py.run()
    res = bt.run()
    assert bt.path == "fast" and "gave up: test" in bt.compiled_reason
    assert_same(ref, res)
    assert len(res.param_changes) == 1


# -- the real captures -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def usdm(shared_data) -> MarketData:
    ins, ev = load_recording([shared_data / "binance" / "usdm" / "btcusdt_20240808.gz"])
    return MarketData(ins, ev, "BTC", "USDT")


@pytest.fixture(scope="module")
def spot(shared_data) -> MarketData:
    """Both spot files: one continuous stream, 10.8 minutes."""
    ins, ev = load_recording([shared_data / "binance" / "spot" / f"btcusdt_2024080{d}.gz" for d in (8, 9)])
    return MarketData(ins, ev, "BTC", "USDT")


@pytest.fixture(scope="module")
def spot_0808(shared_data) -> MarketData:
    ins, ev = load_recording([shared_data / "binance" / "spot" / "btcusdt_20240808.gz"])
    return MarketData(ins, ev, "BTC", "USDT")


BENCH = dict(latency=LatencyModel.constant(1_000_000, 1_000_000), fees=FeeSchedule(-50, 700))
PARAMS = [dict(decide_every_ms=100, half_spread_ticks=1, order_qty=0.01, max_position=10),
          dict(decide_every_ms=250, half_spread_ticks=0, order_qty=0.002, max_position=3, skew_ticks=1.5),
          dict(decide_every_ms=40, half_spread_ticks=4, order_qty=0.05, max_position=2)]


@pytest.mark.parametrize("params", range(len(PARAMS)))
@pytest.mark.parametrize("queue", [ConservativeQueue(), ProbabilisticQueue(3)], ids=repr)
@pytest.mark.parametrize("capture", ["usdm", "spot_0808", "spot"])
def test_market_maker_on_the_real_captures(capture, queue, params, request):
    data = request.getfixturevalue(capture)
    res = check(lambda: MarketMaker(**PARAMS[params]), data, BacktestConfig(queue=queue, **BENCH))
    assert len(res.fills) > 10 and res.fills["is_maker"].all()


def test_market_maker_with_the_default_config_and_tight_guard_on_spot(spot):
    check(lambda: MarketMaker(), spot, BacktestConfig())
    res = check(lambda: MarketMaker(skew_ticks=2.0), spot,
                BacktestConfig(risk=RiskConfig(max_daily_drawdown_frac=0.00002, max_depth_frac=0.02,
                                               spread_widen_x=1.5)))
    assert "daily_drawdown" in set(res.risk_events["rule"])


# -- when the fast path runs -------------------------------------------------------------------------------------------
def test_the_fast_path_is_chosen_when_it_applies_and_explains_when_not(usdm):
    data = market(BOOK, diff(T0, 101, bids=[(100, 3)]))
    bt = Backtest(Timed(), data, config())
    bt.run()
    assert bt.path == "fast" and bt.fast_path_reason is None
    # a strategy reading the trades
    bt = Backtest(Trading(), data, config())
    bt.run()
    assert bt.path == "python" and "acts on trades" in bt.fast_path_reason
    # the choice is made when the run starts, from what the strategy says then
    bt = Backtest(Timed(), data, config())
    bt.strategy.act_on_trade = True
    bt.run()
    assert bt.path == "python"
    sampled = LatencyModel(ConstantLatency(MS), SampledLatency(np.array([MS, 2 * MS])), ConstantLatency(MS))
    for cfg, why in [(config(latency=sampled), "order_entry latency"),
                     (config(queue=ProbabilisticQueue(3, sampled=True)), "sampled"),
                     (config(fast=False), "fast=False")]:
        bt = Backtest(Timed(), data, cfg)
        bt.run()
        assert bt.path == "python" and why in bt.fast_path_reason
    with pytest.raises(ConfigError, match="sampled"):
        Backtest(Timed(), data, config(fast=True, queue=ProbabilisticQueue(3, sampled=True))).run()
    # order-level recordings (LOBSTER) take the Python path
    ev = np.concatenate([BOOK, diff(T0, 101, bids=[(100, 3)])])
    ev["kind"][-1] = 5
    bt = Backtest(Timed(), market(ev), config())
    bt.run()
    assert bt.path == "python" and "order-level" in bt.fast_path_reason


def test_an_empty_recording_runs_nothing_on_both_paths():
    check(lambda: Timed(), MarketData(INS, empty_events(0), "BASE", "QUOTE"), config())


# -- kernels against plain-Python references ---------------------------------------------------------------------------
_UNCOMPILED = """
import numpy as np
from tests.backtest.test_fast_path import (QUEUES, MS, RandomWatching, Timed, check, config, random_market, MarketData,
                                           INS, LatencyModel, FeeSchedule)
from tests.backtest.test_fast_path import MarketMaker, GUARDS
for seed in range(3):
    data = MarketData(INS, random_market(np.random.default_rng(seed), 120), "BASE", "QUOTE")
    check(lambda: RandomWatching(seed, decide_every_ms=5), data,
          config(queue=QUEUES[seed], latency=LatencyModel.constant(MS, 2 * MS, MS), fees=FeeSchedule(-2_000, 3_000)))
    # the compiled path's kernels (runner, guard, strategy) as plain Python too
    check(lambda: MarketMaker(decide_every_ms=5, order_qty=2.0, max_position=2), data,
          config(queue=QUEUES[seed], risk=GUARDS[seed + 1], fees=FeeSchedule(-2_000, 3_000)))
print("ok")
"""


def test_the_fast_path_uncompiled_equals_the_python_path():
    # NUMBA_DISABLE_JIT=1: every kernel (the fast path's and the books') runs as plain Python, with Python integers
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _UNCOMPILED], cwd=root, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def _venue_order_reference(ev: np.ndarray) -> tuple[np.ndarray, ...]:
    """ReplayVenue._load written plainly: classes, running-max release times, sort by (release, class, order); each
    row's message end, and the last CLEAR book row at or before it."""
    trade_kinds, book_kinds = {3, 9, 10}, {1, 2, 5, 6, 7, 8}
    rows, mx = [], {0: None, 1: None}
    for i, r in enumerate(ev):
        k = int(r["kind"])
        c = 0 if k in trade_kinds else 1 if k in book_kinds else None
        if c is None:
            continue
        t = int(r["ts_exch_ns"])
        mx[c] = t if mx[c] is None or t > mx[c] else mx[c]
        rows.append((mx[c], c, i))
    rows.sort()
    idx = [i for _, _, i in rows]
    ends, end = [], -1
    for p in range(len(idx) - 1, -1, -1):
        if int(ev["flags"][idx[p]]) & (F_BATCH_END | 16):
            end = p
        ends.append(end)
    clears, last = [], -1
    for p, (_, c, i) in enumerate(rows):
        if c == 1 and int(ev["flags"][i]) & 2:
            last = p
        clears.append(last)
    return (np.array(idx, np.int64), np.array([r for r, _, _ in rows], np.int64), np.array(ends[::-1], np.int64),
            np.array(clears, np.int64))


@pytest.mark.parametrize("seed", range(6))
def test_merged_order_equals_the_reference(seed):
    rng = np.random.default_rng(seed)
    ev = random_market(rng, 300)
    # shuffle the trade stamps a little: trades recorded behind later diffs, and book tickers among them
    t = ev["kind"] == K_TRADE
    ev["ts_exch_ns"][t] += rng.integers(-5, 5, t.sum()) * MS
    extra = ev[rng.choice(len(ev), 30)].copy()
    extra["kind"], extra["flags"] = K_BBO, F_BATCH_END
    ev = np.insert(ev, rng.choice(len(ev), 30), extra)
    V, _, ok, order_level = nb.prepare_nb(ev["kind"], ev["ts_exch_ns"], ev["flags"])
    idx, rel, ends, clears = _venue_order_reference(ev)
    assert ok and not order_level
    np.testing.assert_array_equal(V[nb.V_IX], idx)
    np.testing.assert_array_equal(V[nb.V_REL], rel)
    np.testing.assert_array_equal(V[nb.V_END], ends)
    np.testing.assert_array_equal(V[nb.V_CLEAR], clears)


def test_prepare_flags_a_message_mixing_trades_and_book_rows():
    ev = np.concatenate([BOOK, diff(2000, 101, bids=[(100, 3)])])
    ev = np.insert(ev, len(BOOK), trade(1500, 1, 100, 1, SELL))
    ev["flags"][len(BOOK)] = 0  # a trade that does not end its message, before a diff
    assert not nb.prepare_nb(ev["kind"], ev["ts_exch_ns"], ev["flags"])[2]


@pytest.mark.parametrize("seed", range(4))
def test_feed_messages_equal_the_local_feed(seed):
    rng = np.random.default_rng(seed)
    ev = random_market(rng, 200)
    extra = ev[rng.choice(len(ev), 20)].copy()
    extra["kind"] = K_BBO
    ev = np.insert(ev, rng.choice(len(ev), 20), extra)
    ev["flags"][-1] = 0  # the recording ends inside a message
    feed = LocalFeed(ev, None)
    keep = np.flatnonzero(~np.isin(ev["kind"], [K_BBO, 11]))
    msgs = nb.prepare_nb(ev["kind"], ev["ts_exch_ns"], ev["flags"])[1]
    np.testing.assert_array_equal(msgs[0], keep[feed.msg_start])
    np.testing.assert_array_equal(msgs[1], keep[feed.msg_end - 1] + 1)
    np.testing.assert_array_equal(msgs[2], keep[feed.msg_end - 1])


@pytest.mark.parametrize("jit", [True, False], ids=["compiled", "python"])
def test_queue_kernels_equal_the_queue_models(jit):
    rnd = random.Random(5)
    f = (lambda k: k) if jit else (lambda k: k.py_func)
    models = [(nb.Q_CONSERVATIVE, ConservativeQueue(), 0.0), (nb.Q_NONE, NoQueue(), 0.0)] + [
        (nb.Q_PROBABILISTIC, ProbabilisticQueue(p), float(p)) for p in (0, 0.5, 1, 2, 3, 7)]
    for code, model, power in models:
        for _ in range(400):
            displayed = rnd.randrange(-2, 60)
            pos = model.join(displayed)
            ahead = f(nb.queue_join_nb)(code, displayed)
            assert ahead == pos.ahead
            traded = 0.0
            level = max(displayed, 0)
            for _ in range(12):
                if rnd.random() < 0.4:
                    q = rnd.randrange(1, 30)
                    over = model.on_trade(pos, q)
                    o2, ahead, traded = f(nb.queue_trade_nb)(code, ahead, traded, q)
                    assert (o2, ahead, traded) == (over, pos.ahead, pos.traded)
                else:
                    new = max(level + rnd.randrange(-25, 25), 0)
                    model.on_level(pos, level, new)
                    ahead, traded = f(nb.queue_level_nb)(code, power, ahead, traded, level, new)
                    assert (ahead, traded) == (pos.ahead, pos.traded)
                    level = new
    p = ProbabilisticQueue(3)
    for a, b in [(0, 5), (5, 0), (1e-100, 1e200), (1e200, 1e-100), (1e-9, 1e12), (3.5, 2.25)]:
        assert f(nb.prob_behind_nb)(a, b, 3.0) == p.prob_behind(a, b)


@pytest.mark.parametrize("jit", [True, False], ids=["compiled", "python"])
def test_commission_kernel_equals_the_venue(jit):
    rnd = random.Random(2)
    fn = nb.commission_nb if jit else nb.commission_nb.py_func
    for _ in range(3000):
        px, qty = rnd.randrange(1, 10**8), rnd.randrange(1, 10**9)
        fee = rnd.choice((-50, 0, 1, 700, 1000, -100_000, 999_999, rnd.randrange(-10**6, 10**6)))
        assert fn(px, qty, fee) == commission_units(px, qty, fee)


def test_queue_pos_is_what_the_kernels_keep():
    # the kernels keep (ahead, traded) per order: the two fields of QueuePos
    assert [f for f in QueuePos.__dataclass_fields__] == ["ahead", "traded"]


def test_order_state_values_are_the_venue_statuses():
    # the kernel reports the venue's OrderStatus as an int that the engine reads as an OrderState
    from workbench.venue.api import OrderStatus

    for s in OrderStatus:
        assert OrderState(int(s)).name == s.name
