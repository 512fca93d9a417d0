"""The backtester on hand-built recordings with answers worked out by hand: the two clocks (feed, order-entry and
response latencies), fills through the queue model, the guard between strategy and venue, a strategy that raises,
parameter changes, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from tests.venue.test_replay import diff, snap, trade
from workbench.backtest import Backtest, BacktestConfig, MarketData
from workbench.exceptions import ConfigError
from workbench.instrument import Instrument
from workbench.risk import RiskConfig
from workbench.strategy import OrderState, Param, Strategy
from workbench.venue.api import FeeSchedule
from workbench.venue.latency import LatencyModel
from workbench.venue.queue import ConservativeQueue

INS = Instrument("TEST", tick_size="0.01", lot_size="1")
MS = 1_000_000
BUY, SELL = 1, -1


def market(*parts) -> MarketData:
    return MarketData(INS, np.concatenate(parts), "BASE", "QUOTE")


def config(**kw) -> BacktestConfig:
    base = dict(latency=LatencyModel.constant(2 * MS, 3 * MS, 5 * MS), fees=FeeSchedule(-100, 500),
                queue=ConservativeQueue(), mark_every_ns=1000 * MS,
                risk=RiskConfig(stale_after_ns=10_000 * MS, max_depth_frac=1.0))
    base.update(kw)
    return BacktestConfig(**base)


class Scripted(Strategy):
    """Does what its script says at given times (local ns) and records what it saw."""

    name = "scripted"
    act_on_book = True
    act_on_trade = True
    params_spec = (Param("x", 1, lo=0, hi=10, doc="a parameter to change"),)

    def __init__(self, script=(), **params):
        super().__init__(**params)
        self.script = list(script)
        self.seen: list[tuple] = []

    def _run_script(self, env):
        while self.script and self.script[0][0] <= env.now_ns:
            _, action = self.script.pop(0)
            action(env)

    def on_book(self, env, symbol):
        b = env.book()
        self.seen.append(("book", env.now_ns, b.best_bid_ticks(), b.best_ask_ticks()))
        self._run_script(env)

    def on_trade(self, env, symbol, px, qty, aggressor, ts):
        self.seen.append(("trade", env.now_ns, px, qty))
        self._run_script(env)

    def on_order(self, env, order):
        self.seen.append(("order", env.now_ns, order.client_order_id, order.state, order.filled_lots))

    def on_fill(self, env, order, px, qty, fee, maker):
        self.seen.append(("fill", env.now_ns, px, qty, fee, maker))

    def on_params(self, env, changes):
        self.seen.append(("params", env.now_ns, [(c.name, c.new) for c in changes]))


T0 = 1_000 * MS
BOOK = snap(T0, 100, bids=[(100, 10), (99, 5)], asks=[(101, 7), (102, 8)])


def test_latencies_of_the_feed_the_order_and_the_answer():
    # the book arrives at T0 + 2 ms (feed); a buy of 4 lots joins the bid of 10 lots at 100 when the strategy sees
    # it; it reaches the exchange 3 ms later; sells of 10 and 3 lots hit the level at T0 + 50 ms and + 60 ms: the
    # first clears the 10 ahead (conservative queue), the second fills 3 of ours; the answer comes 5 ms later
    s = Scripted([(T0, lambda env: env.limit(BUY, 4, 100, tag="bid"))])
    res = Backtest(s, market(BOOK, trade(T0 + 50 * MS, 1, 100, 10, SELL), diff(T0 + 50 * MS, 101, bids=[(100, 0)]),
                             trade(T0 + 60 * MS, 2, 100, 3, SELL), diff(T0 + 60 * MS, 102, bids=[(100, 1)])),
                   config()).run()
    assert s.seen[0] == ("book", T0 + 2 * MS, 100, 101)
    orders = [x for x in s.seen if x[0] == "order"]
    assert orders[0] == ("order", T0 + 2 * MS + 3 * MS + 5 * MS, "bt1", OrderState.NEW, 0)  # the ack
    fills = [x for x in s.seen if x[0] == "fill"]
    # maker fill of 3 lots at 100: a rebate of 1 bp of 300 units, rounded toward the venue: ceil(-0.03) = 0
    assert fills == [("fill", T0 + 60 * MS + 5 * MS, 100, 3, 0, True)]
    assert res.fills[["px_ticks", "qty_lots", "is_maker"]].values.tolist() == [[100, 3, True]]
    assert res.fills["ts_ns"].tolist() == [T0 + 65 * MS] and res.fills["exch_ts_ns"].tolist() == [T0 + 60 * MS]
    assert res.orders.loc[0, "state"] == "PARTIALLY_FILLED" and res.orders.loc[0, "filled_qty"] == 3


def test_an_order_that_arrives_after_the_trade_does_not_fill():
    # the strategy acts on the book at T0 + 2 ms; its order reaches the exchange at T0 + 5 ms: a trade through
    # the level at T0 + 4 ms happened before it existed there
    s = Scripted([(T0, lambda env: env.limit(BUY, 4, 100))])
    res = Backtest(s, market(BOOK, trade(T0 + 4 * MS, 1, 99, 15, SELL), diff(T0 + 4 * MS, 101, bids=[(100, 0)]),
                             diff(T0 + 9 * MS, 102, bids=[(100, 3)])), config()).run()
    assert res.fills.empty


def test_a_marketable_order_takes_the_book_as_taker_with_fees_and_the_position_and_equity_follow():
    s = Scripted([(T0, lambda env: env.market(BUY, 9))])
    res = Backtest(s, market(BOOK, diff(T0 + 100 * MS, 101, bids=[(100, 12)])), config()).run()
    # 7 lots at 101 and 2 at 102; taker fee 5 bp, rounded up per fill: ceil(707 * 0.0005) = 1, ceil(204 * ...) = 1
    assert res.fills[["px_ticks", "qty_lots", "fee_units", "is_maker"]].values.tolist() == [
        [101, 7, 1, False], [102, 2, 1, False]]
    eq = res.equity.iloc[-1]
    assert eq["position_lots"] == 9
    # cash moved -911 - 2 units of 0.01; position of 9 at the mid 100.5 ticks -> equity 100000 - 9.13 + 9.045
    assert eq["equity"] == pytest.approx(100_000 - 9.13 + 9 * 1.005)


def test_the_guard_refuses_orders_beyond_its_limits_and_a_kill_stops_everything():
    calls = []
    bt = None
    s = Scripted([(T0, lambda env: calls.append(env.limit(BUY, 50, 99))),  # 50 lots > 10 % of the 15 bid lots
                  (T0, lambda env: calls.append(env.limit(BUY, 1, 99))),   # 1 lot fits
                  (T0 + 40 * MS, lambda env: bt.guard.kill(env.now_ns, "test")),
                  (T0 + 60 * MS, lambda env: calls.append(env.limit(BUY, 1, 98)))])
    bt = Backtest(s, market(BOOK, diff(T0 + 40 * MS, 101, bids=[(98, 1)]), diff(T0 + 60 * MS, 102, bids=[(98, 2)])),
                  config(risk=RiskConfig(max_depth_frac=0.1, concentration_action="reject",
                                         stale_after_ns=10_000 * MS)))
    res = bt.run()
    assert calls[0] is None and calls[1] is not None and calls[2] is None
    assert res.counters["orders_sent"] == 1 and res.counters["orders_refused"] == 2
    assert list(res.risk_events["rule"])[:2] == ["concentration", "kill"]
    # the kill cancelled the resting 1-lot bid: nothing of the strategy's is left open
    assert res.orders["state"].tolist() == ["CANCELED"]


class Raises(Scripted):
    def on_trade(self, env, symbol, px, qty, aggressor, ts):
        raise RuntimeError("bug in the strategy")


def test_a_strategy_that_raises_is_stopped_and_flattened_and_the_run_reports_it():
    s = Raises([(T0, lambda env: env.market(BUY, 5))])
    res = Backtest(s, market(BOOK, trade(T0 + 30 * MS, 1, 101, 1, BUY), diff(T0 + 30 * MS, 101, asks=[(101, 1)]),
                             diff(T0 + 200 * MS, 102, bids=[(100, 20)])), config()).run()
    assert res.error == "RuntimeError: bug in the strategy"
    assert "kill" in set(res.risk_events["rule"])
    # bought 5 (taker), then the guard's own market sell of 5 flattened it
    assert res.fills["side"].tolist() == [1, -1] and res.fills["qty_lots"].tolist() == [5, 5]
    assert res.fills["tag"].tolist()[1] == "guard" and res.equity.iloc[-1]["position_lots"] == 0
    assert res.counters["guard_orders"] == 1


def test_parameter_changes_are_events_and_reach_the_strategy():
    bt = None

    def change(env):
        bt.set_params(x=7)

    s = Scripted([(T0, change)])
    bt = Backtest(s, market(BOOK), config())
    res = bt.run()
    assert res.param_changes[["ts_ns", "name", "old", "new", "source"]].values.tolist() == [
        [T0 + 2 * MS, "x", 1, 7, "user"]]
    assert ("params", T0 + 2 * MS, [("x", 7)]) in s.seen and res.params == {"x": 7}
    with pytest.raises(ConfigError):
        bt.set_params(x=11)


def test_config_is_checked():
    with pytest.raises(ConfigError):
        BacktestConfig(initial_cash="-5")
    with pytest.raises(ConfigError):
        BacktestConfig(mark_every_ns=0)
    with pytest.raises(ConfigError, match="2 symbol"):
        from workbench.strategy import PairsArb

        Backtest(PairsArb(), market(BOOK), config())


def test_sampled_latencies_give_the_same_run_twice_from_one_config():
    from workbench.venue.latency import SampledLatency

    legs = [SampledLatency(np.array([1, 2, 3, 5, 8]) * MS, seed=s) for s in (1, 2, 3)]
    cfg = config(latency=LatencyModel(*legs))

    def run():
        s = Scripted([(T0, lambda env: env.limit(BUY, 4, 100)), (T0 + 20 * MS, lambda env: env.market(SELL, 2))])
        res = Backtest(s, market(BOOK, trade(T0 + 50 * MS, 1, 100, 12, SELL), diff(T0 + 50 * MS, 101, bids=[(100, 1)]),
                                 diff(T0 + 80 * MS, 102, asks=[(101, 9)])), cfg).run()
        return s.seen, res.fills

    (seen1, f1), (seen2, f2) = run(), run()
    assert seen1 == seen2 and len(f1) >= 2
    assert f1.equals(f2)
