"""The risk guard, rule by rule, with exact numbers: the trip, its event and actions, the verdicts, the recovery."""

from __future__ import annotations

import pytest

from workbench.exceptions import ConfigError
from workbench.risk import ActionKind, GuardAction, GuardState, RiskConfig, RiskEvent, RiskGuard, Verdict
from workbench.risk.guard import DAY_NS, HOUR_NS

MS = 1_000_000
S = 1_000_000_000
ACTIVE, REDUCING, HALTED = GuardState.ACTIVE, GuardState.REDUCING, GuardState.HALTED
CANCEL_ALL, FLATTEN, DISABLE_KEY = ActionKind.CANCEL_ALL, ActionKind.FLATTEN, ActionKind.DISABLE_KEY


def make(symbols=("BTC",), **cfg) -> RiskGuard:
    return RiskGuard(RiskConfig(**cfg), symbols)


def book(g, ts_ns, bid=1000, ask=1001, bid_depth=10_000, ask_depth=10_000, symbol="BTC"):
    g.on_book(ts_ns, symbol, bid, ask, bid_depth, ask_depth)


def kinds(actions):
    return [(a.kind, a.symbol) for a in actions]


# ---------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("bad", [
    dict(max_daily_drawdown_frac=0), dict(max_daily_drawdown_frac=1.5), dict(max_hourly_loss_frac=-0.02),
    dict(max_hourly_loss_frac=float("nan")), dict(max_depth_frac=True), dict(api_rate_frac="0.9"),
    dict(spread_widen_x=1.0), dict(spread_widen_x=float("inf")), dict(spread_window_ns=0),
    dict(spread_window_ns=1.5e9), dict(spread_min_samples=0), dict(stale_after_ns=-1), dict(depth_levels=0),
    dict(spread_sample_ns=60_000_000_000), dict(spread_sample_ns=-1),
    dict(spread_sample_ns=10 * S, spread_min_samples=20),  # 60 s / 10 s = 6 samples: could never trip
    dict(concentration_action="shrink"), dict(trade_stop_ticks=0), dict(trade_stop_ticks=2.5),
    dict(trade_stop_ticks=True),
])
def test_config_rejects_nonsense(bad):
    with pytest.raises(ConfigError):
        RiskConfig(**bad)


def test_config_defaults_and_frozen():
    c = RiskConfig()
    assert (c.max_daily_drawdown_frac, c.max_hourly_loss_frac, c.spread_widen_x, c.spread_window_ns,
            c.spread_min_samples, c.stale_after_ns, c.max_depth_frac, c.depth_levels, c.concentration_action,
            c.api_rate_frac, c.trade_stop_ticks) == (0.015, 0.02, 3.0, 60 * S, 20, 300 * MS, 0.10, 10, "resize",
                                                      0.90, None)
    with pytest.raises(AttributeError):
        c.max_depth_frac = 0.5
    with pytest.raises(TypeError):
        RiskConfig(0.01)  # keyword-only
    with pytest.raises(ConfigError):
        RiskGuard({"max_depth_frac": 0.1})


# ---------------------------------------------------------------------------------------------------- trade stop


def test_trade_stop_long_exact_and_reduce_only_until_flat():
    g = make(trade_stop_ticks=10)
    book(g, 0)
    g.on_fill(1 * MS, "BTC", 1, 1000, 2)
    g.on_fill(2 * MS, "BTC", 1, 1003, 2)
    assert g.position_lots("BTC") == 4 and g.avg_entry_ticks("BTC") == 1001.5
    book(g, 3 * MS, bid=992, ask=993)  # 9.5 ticks adverse: not yet
    assert g.drain_events() == [] and g.drain_actions() == []
    book(g, 4 * MS, bid=991, ask=993)  # 10.5 ticks >= 10
    (ev,) = g.drain_events()
    assert (ev.rule, ev.state_from, ev.state_to, ev.value, ev.threshold) == ("trade_stop", ACTIVE, ACTIVE, 10.5, 10)
    assert ev.reason == "BTC long 4 lots: best bid 991 is 10.5 ticks below the average entry 1,001.50 (stop 10 ticks)"
    assert kinds(g.drain_actions()) == [(CANCEL_ALL, "BTC"), (FLATTEN, "BTC")]
    assert g.state == ACTIVE
    book(g, 5 * MS, bid=980, ask=982)  # one trip per position, not one per update
    assert g.drain_events() == [] and g.drain_actions() == []
    # reduce-only on that symbol until flat
    assert g.check_order(6 * MS, "BTC", 1, 1) == Verdict(False, 0, "trade_stop",
                                                          "BTC: trade stop tripped, reduce-only until flat")
    assert g.check_order(6 * MS, "BTC", -1, 5).allowed is False  # would flip: not a reduction
    assert g.check_order(6 * MS, "BTC", -1, 4, source="guard") == Verdict(True, 4)
    g.on_fill(7 * MS, "BTC", -1, 980, 4)
    assert g.position_lots("BTC") == 0 and g.avg_entry_ticks("BTC") is None
    assert g.check_order(8 * MS, "BTC", 1, 1) == Verdict(True, 1)
    assert g.breakers()["trade_stop"] == (0.0, 10.0, False)


def test_trade_stop_short_uses_the_ask_and_rounds_up():
    g = make(trade_stop_ticks=3)
    book(g, 0, bid=1000, ask=1001)
    g.on_fill(1 * MS, "BTC", -1, 1000, 1)
    g.on_fill(1 * MS, "BTC", -1, 1001, 2)  # avg 1000.666..: stop when ask >= 1003.67, i.e. ask >= 1004
    book(g, 2 * MS, bid=1001, ask=1003)
    assert g.drain_events() == []
    book(g, 3 * MS, bid=1002, ask=1004)
    (ev,) = g.drain_events()
    assert ev.rule == "trade_stop" and ev.reason.startswith("BTC short 3 lots: best ask 1004 is ")
    assert abs(ev.value - (1004 - 3002 / 3)) < 1e-12
    assert kinds(g.drain_actions()) == [(CANCEL_ALL, "BTC"), (FLATTEN, "BTC")]
    # a partial cover keeps the average; a fill that closes re-arms a fresh stop for the next position
    g.on_fill(4 * MS, "BTC", 1, 1004, 3)
    g.on_fill(5 * MS, "BTC", 1, 1004, 1)
    assert g.position_lots("BTC") == 1 and g.avg_entry_ticks("BTC") == 1004
    book(g, 6 * MS, bid=1001, ask=1002)  # 3 ticks under the new long's entry
    assert [e.rule for e in g.drain_events()] == ["trade_stop"]


def test_no_trade_stop_by_default():
    g = make()
    book(g, 0)
    g.on_fill(1, "BTC", 1, 1000, 1)
    book(g, 2, bid=1, ask=2000)
    assert [e.rule for e in g.drain_events()] == []  # spread rule has no median yet; no stop configured


# ---------------------------------------------------------------------------------------------------- daily drawdown


def test_daily_drawdown_from_the_days_peak_not_the_start():
    g = make()
    book(g, 0)
    g.on_mark(0, 10_000)
    g.on_mark(1 * S, 12_000)          # the day's peak
    g.on_mark(2 * S, 11_821)          # 1.4917 %: not yet, though far above the start
    assert g.state == ACTIVE and g.drain_events() == []
    g.on_mark(3 * S, 11_820)          # 180 / 12,000 = 1.50 %
    (ev,) = g.drain_events()
    assert (ev.ts_ns, ev.rule, ev.state_from, ev.state_to, ev.value, ev.threshold) == (
        3 * S, "daily_drawdown", ACTIVE, HALTED, 0.015, 0.015)
    assert ev.reason == "daily drawdown 1.50 % >= 1.50 % from the day's peak 12,000 (equity 11,820)"
    assert kinds(g.drain_actions()) == [(CANCEL_ALL, None), (FLATTEN, None)]
    assert g.state == HALTED and g.halted_by == "daily_drawdown"
    g.on_mark(4 * S, 12_500)          # latched: a recovery does not lift it
    g.on_mark(5 * S, 11_000)          # nor does a deeper fall trip it again
    assert g.state == HALTED and g.drain_events() == [] and g.drain_actions() == []
    v = g.check_order(5 * S, "BTC", 1, 1)
    assert (v.allowed, v.rule) == (False, "daily_drawdown") and "no new exposure" in v.reason


def test_halted_lets_only_the_guards_reducing_orders_through():
    g = make()
    book(g, 0)
    g.on_fill(0, "BTC", 1, 1000, 5)
    g.on_mark(0, 10_000)
    g.on_mark(1, 9_800)
    assert g.state == HALTED
    assert g.check_order(2, "BTC", -1, 5).allowed is False                      # the strategy's, even reducing
    assert g.check_order(2, "BTC", -1, 6, source="guard").allowed is False      # would flip to short
    assert g.check_order(2, "BTC", 1, 1, source="guard").allowed is False       # adds
    assert g.check_order(2, "BTC", -1, 5, source="guard") == Verdict(True, 5)
    assert g.check_order(2, "BTC", -1, 2, source="guard") == Verdict(True, 2)


def test_day_roll_resets_the_peak_but_not_a_latched_halt():
    g = make(max_hourly_loss_frac=1.0)  # isolate the daily rule
    day1 = 20_000 * DAY_NS
    g.on_mark(day1 - 10 * S, 10_000)
    g.on_mark(day1 - 1 * S, 9_900)    # 1.00 % below the day's peak
    g.tick(day1 + 1 * S)              # midnight: the new day's peak is the equity at midnight, 9,900
    assert g.breakers()["daily_drawdown"] == (0.0, 0.015, False)
    g.on_mark(day1 + 2 * S, 9_790)    # 1.11 % from 9,900 (2.10 % from yesterday's 10,000): no trip
    assert g.state == ACTIVE and g.drain_events() == []
    g.on_mark(day1 + 3 * S, 9_751)    # 149 / 9,900 = 1.505 %
    (ev,) = g.drain_events()
    assert ev.rule == "daily_drawdown" and ev.reason.endswith("from the day's peak 9,900 (equity 9,751)")
    g.tick(day1 + DAY_NS + 1)         # the next midnight: the halt stays until a human lifts it
    g.on_mark(day1 + DAY_NS + 2, 9_751)
    assert g.state == HALTED and g.breakers()["daily_drawdown"][0] == 0.0


def test_day_roll_without_a_tick_uses_the_last_mark_before_midnight():
    g = make()
    day1 = 20_000 * DAY_NS
    g.on_mark(day1 - 1 * S, 10_000)
    g.on_mark(day1 + 1 * S, 9_850)    # first call of the new day: the peak is still 10,000 (the mark at midnight)
    assert g.state == HALTED


# ---------------------------------------------------------------------------------------------------- hourly loss


def test_hourly_loss_compares_with_the_oldest_mark_of_the_last_hour():
    g = make(max_daily_drawdown_frac=1.0)  # isolate the hourly rule
    g.on_mark(0, 10_000)
    g.on_mark(1800 * S, 10_500)
    g.on_mark(3000 * S, 9_810)        # 1.90 % below 10,000 (an hour's peak is not the reference)
    assert g.drain_events() == []
    g.on_mark(3700 * S, 10_291)       # the mark at 0 s has left the window: vs 10,500 that is 1.99 %
    assert g.drain_events() == []
    g.on_mark(3701 * S, 10_290)       # 210 / 10,500 = 2.00 %
    (ev,) = g.drain_events()
    assert (ev.rule, ev.state_from, ev.state_to, ev.value, ev.threshold) == ("hourly_loss", ACTIVE, HALTED, 0.02, 0.02)
    assert ev.reason == "loss over the last hour 2.00 % >= 2.00 % (equity 10,290 vs 10,500 1901 s ago)"
    assert kinds(g.drain_actions()) == [(CANCEL_ALL, None), (FLATTEN, None), (DISABLE_KEY, None)]


def test_hourly_loss_keeps_the_first_mark_of_each_second():
    for last_ns, rules in ((2 * HOUR_NS - 1, ["hourly_loss"]), (2 * HOUR_NS, [])):
        g = make(max_daily_drawdown_frac=1.0)
        g.on_mark(HOUR_NS + 0, 10_000)
        g.on_mark(HOUR_NS + 500 * MS, 10_400)  # same second: not kept as a reference
        # 1 ns short of an hour the 10,000 mark is inside (2.00 % loss); at an hour it has left, and 10,400
        # (5.8 % above) was never kept: the reference is the new mark itself
        g.on_mark(last_ns, 9_800)
        assert [e.rule for e in g.drain_events()] == rules


def test_hourly_loss_across_midnight_trips_before_the_daily_rule():
    g = make()
    day1 = 20_000 * DAY_NS
    g.on_mark(day1 - 20 * 60 * S, 10_000)
    g.on_mark(day1 - 1 * S, 9_860)    # 1.40 % on the day
    g.on_mark(day1 + 10 * 60 * S, 9_800)  # 0.61 % from midnight's 9,860; 2.00 % from 30 minutes ago
    evs = g.drain_events()
    assert [(e.rule, e.state_to) for e in evs] == [("hourly_loss", HALTED)]


def test_hourly_loss_after_a_drawdown_halt_still_disables_the_key():
    g = make()
    g.on_mark(0, 10_000)
    g.on_mark(1 * S, 9_850)
    assert [e.rule for e in g.drain_events()] == ["daily_drawdown"]
    g.drain_actions()
    g.on_mark(2 * S, 9_800)
    (ev,) = g.drain_events()
    assert (ev.rule, ev.state_from, ev.state_to) == ("hourly_loss", HALTED, HALTED)
    assert kinds(g.drain_actions()) == [(DISABLE_KEY, None)]  # cancel and flatten were asked already
    assert g.halted_by == "daily_drawdown"


# ---------------------------------------------------------------------------------------------------- spread


def test_spread_widening_needs_samples_then_pauses_until_normal():
    g = make()
    for i in range(19):
        book(g, i * 100 * MS, bid=1000, ask=1002)  # 19 samples of 2 ticks
    book(g, 1899 * MS, bid=1000, ask=1020)         # 10x, but inside the sampling interval and < 20 samples
    assert g.state == ACTIVE and g.drain_events() == []
    book(g, 1900 * MS, bid=1000, ask=1002)         # the 20th sample: the median is now 2
    book(g, 1950 * MS, bid=1000, ask=1006)         # 6 = 3 x 2: not above
    assert g.state == ACTIVE and g.drain_events() == []
    book(g, 1960 * MS, bid=1000, ask=1007)
    (ev,) = g.drain_events()
    assert (ev.rule, ev.state_from, ev.state_to, ev.value, ev.threshold) == ("spread", ACTIVE, REDUCING, 3.5, 3.0)
    assert ev.reason == "BTC: spread 7 ticks > 3 x its median 2 ticks (3.50 x)"
    assert g.drain_actions() == []
    assert g.check_order(1970 * MS, "BTC", 1, 1) == Verdict(
        False, 0, "spread", "BTC: spread widened: only orders that reduce exposure pass")
    g.on_fill(1970 * MS, "BTC", -1, 1000, 3)       # a short from before
    assert g.check_order(1970 * MS, "BTC", 1, 3) == Verdict(True, 3)
    assert g.check_order(1970 * MS, "BTC", 1, 4).allowed is False
    book(g, 2000 * MS, bid=1000, ask=1003)
    (ev,) = g.drain_events()
    assert (ev.rule, ev.state_from, ev.state_to) == ("spread", REDUCING, ACTIVE)
    assert ev.reason == "BTC: spread 3 ticks back within 3 x its median 2 ticks"
    assert g.check_order(2000 * MS, "BTC", 1, 1).allowed


def test_spread_median_rolls_over_its_window():
    g = make(spread_min_samples=5)
    for i in range(10):
        book(g, i * S, bid=1000, ask=1001)     # 1 tick for 10 s
    for i in range(60):
        book(g, (10 + i) * S, bid=1000, ask=1003)  # 3 ticks: 3 is not > 3 x 1
    assert g.state == ACTIVE
    book(g, 70 * S + 1, bid=1000, ask=1009)    # the window now holds only 3-tick spreads: 9 = 3 x 3, no trip
    assert g.state == ACTIVE
    book(g, 70 * S + 2, bid=1000, ask=1010)
    assert g.state == REDUCING and g.breakers()["spread"] == (10 / 3, 3.0, True)


def test_one_sided_book_pauses_entries():
    g = make()
    book(g, 0, bid=None, ask=1001, bid_depth=0)
    (ev,) = g.drain_events()
    assert (ev.rule, ev.state_to, ev.value) == ("spread", REDUCING, float("inf"))
    assert ev.reason == "BTC: one-sided book (bid None, ask 1001)"
    book(g, 1, bid=1000, ask=1001)
    assert g.state == ACTIVE and [e.state_to for e in g.drain_events()] == [ACTIVE]


# ---------------------------------------------------------------------------------------------------- stale


def test_stale_book_pauses_cancels_and_recovers_on_the_next_update():
    g = make()
    book(g, 1_000 * MS)
    g.tick(1_300 * MS)                 # exactly 300 ms: not "more than"
    assert g.state == ACTIVE and g.drain_events() == []
    g.tick(1_350 * MS)
    (ev,) = g.drain_events()
    assert (ev.rule, ev.state_from, ev.state_to, ev.value, ev.threshold) == (
        "stale", ACTIVE, REDUCING, 350e6, 300e6)
    assert ev.reason == "BTC: no book update for 350.0 ms > 300.0 ms"
    assert g.drain_actions() == [GuardAction(CANCEL_ALL, "BTC", ev.reason)]
    g.tick(1_400 * MS)                 # once per episode
    assert g.drain_events() == [] and g.drain_actions() == []
    assert g.check_order(1_400 * MS, "BTC", -1, 1) == Verdict(
        False, 0, "stale", "BTC: book stale: only orders that reduce exposure pass")
    book(g, 1_420 * MS)
    (ev,) = g.drain_events()
    assert (ev.rule, ev.state_from, ev.state_to, ev.reason) == (
        "stale", REDUCING, ACTIVE, "BTC: book updated after 420.0 ms")
    assert g.check_order(1_420 * MS, "BTC", -1, 1).allowed


def test_check_order_sees_a_stale_book_without_a_tick():
    g = make(symbols=("BTC", "ETH"))
    book(g, 0)
    book(g, 0, symbol="ETH")
    book(g, 400 * MS, symbol="ETH")
    v = g.check_order(400 * MS, "ETH", 1, 1)     # ETH is fresh, but BTC went quiet: the whole guard pauses
    assert (v.allowed, v.rule) == (True, "")     # (ETH's order is judged before BTC is looked at)
    v = g.check_order(400 * MS, "BTC", 1, 1)
    assert (v.allowed, v.rule) == (False, "stale")
    assert g.state == REDUCING and kinds(g.drain_actions()) == [(CANCEL_ALL, "BTC")]
    assert g.check_order(400 * MS, "ETH", 1, 1).allowed is False


def test_a_symbol_without_any_book_is_stale_after_the_limit():
    g = make(symbols=("BTC", "ETH"))
    book(g, 0)
    g.tick(0)                          # ETH's clock starts at the first tick
    book(g, 200 * MS)
    g.tick(301 * MS)
    (ev,) = g.drain_events()
    assert ev.reason == "ETH: no book yet for 301.0 ms > 300.0 ms" and ev.state_to == REDUCING
    assert g.check_order(301 * MS, "SOL", 1, 1).rule == "stale"  # never seen at all
    book(g, 310 * MS, symbol="ETH")
    assert g.state == ACTIVE


def test_pauses_stack_and_halt_overrides():
    g = make()
    book(g, 0, bid=None)               # spread pause
    g.tick(400 * MS)                   # and stale
    assert [(e.rule, e.state_from, e.state_to) for e in g.drain_events()] == [
        ("spread", ACTIVE, REDUCING), ("stale", REDUCING, REDUCING)]
    g.kill(500 * MS)
    book(g, 600 * MS)                  # both pauses clear, the kill holds
    assert [(e.rule, e.state_from, e.state_to) for e in g.drain_events()] == [
        ("kill", REDUCING, HALTED), ("stale", HALTED, HALTED), ("spread", HALTED, HALTED)]
    assert g.resume(700 * MS)
    assert g.state == ACTIVE


# ---------------------------------------------------------------------------------------------------- concentration


def test_concentration_resizes_to_ten_percent_of_the_absorbing_side():
    g = make()
    book(g, 0, bid_depth=[30, 20, 10, 10, 10, 5, 5, 4, 3, 3, 500, 500], ask_depth=50)  # 10 levels: 100 bids
    v = g.check_order(1, "BTC", 1, 15)
    assert v == Verdict(True, 10, "concentration", "BTC: |position| after the order 15 lots > 10 % of the bid depth "
                                                   "100 lots (cap 10): resized 15 -> 10")
    (ev,) = g.drain_events()
    assert (ev.rule, ev.state_from, ev.state_to, ev.value, ev.threshold) == (
        "concentration", ACTIVE, ACTIVE, 0.15, 0.10)
    assert g.check_order(1, "BTC", 1, 10) == Verdict(True, 10)
    g.on_fill(2, "BTC", 1, 1000, 8)
    assert g.check_order(3, "BTC", 1, 5).qty_lots == 2
    # a flip is sized against the other side: cap 5 of 50 asks, so at most 8 + 5
    assert g.check_order(3, "BTC", -1, 20).qty_lots == 13
    book(g, 4, bid_depth=10, ask_depth=50)   # depth shrank: cap 1 < position 8
    v = g.check_order(5, "BTC", 1, 1)
    assert (v.allowed, v.qty_lots, v.rule) == (False, 0, "concentration")
    assert v.reason.endswith("(cap 1): rejected")
    assert g.check_order(5, "BTC", -1, 8) == Verdict(True, 8)  # reducing is never resized or blocked


def test_concentration_reject_mode_and_exact_cap():
    g = make(concentration_action="reject", max_depth_frac=0.07)
    book(g, 0, bid_depth=100, ask_depth=100)  # 0.07 x 100 is 7.000000000000001 in floats: the cap is 7
    assert g.check_order(1, "BTC", 1, 7) == Verdict(True, 7)
    v = g.check_order(1, "BTC", -1, 8)
    assert (v.allowed, v.qty_lots, v.rule) == (False, 0, "concentration")
    g2 = make(max_depth_frac=0.29)            # 0.29 x 100 is 28.999999999999996: the cap is still 29
    book(g2, 0, bid_depth=100, ask_depth=100)
    assert g2.check_order(1, "BTC", 1, 30).qty_lots == 29
    g3 = make()
    book(g3, 0, bid_depth=0, ask_depth=0)
    assert g3.check_order(1, "BTC", 1, 1).allowed is False  # nothing to exit into


# ---------------------------------------------------------------------------------------------------- API rate


def test_api_rate_throttles_non_reducing_orders_and_alerts_on_crossings():
    g = make()
    book(g, 0)
    g.on_fill(0, "BTC", 1, 1000, 3)
    g.on_rate(1, {"REQUEST_WEIGHT": (500, 6000), "ORDERS": (44, 50)})  # 88 %
    assert g.drain_events() == []
    g.on_rate(2, {"ORDERS": (45, 50)})                                  # 90 %; weight keeps its reading
    (ev,) = g.drain_events()
    assert (ev.rule, ev.state_from, ev.state_to, ev.value, ev.threshold) == ("api_rate", ACTIVE, ACTIVE, 0.9, 0.9)
    assert ev.reason == "API rate ORDERS 45/50 = 90.0 % >= 90 %: only orders that reduce exposure pass"
    assert g.state == ACTIVE and g.drain_actions() == []
    v = g.check_order(3, "BTC", 1, 1)
    assert (v.allowed, v.rule) == (False, "api_rate")
    assert g.check_order(3, "BTC", -1, 3) == Verdict(True, 3)
    g.on_rate(4, {"ORDERS": (46, 50)})                                  # still over: no new alert
    assert g.drain_events() == []
    g.on_rate(5, {"ORDERS": (1, 50), "X": (5, 0)})                      # a zero limit is no limit
    (ev,) = g.drain_events()
    assert ev.rule == "api_rate" and ev.reason == "API rate back under 90 % (highest 8.3 %)"
    assert g.check_order(6, "BTC", 1, 1).allowed
    assert g.breakers()["api_rate"] == (500 / 6000, 0.9, False)


# ---------------------------------------------------------------------------------------------------- kill / resume


def test_kill_is_idempotent_and_blocks_every_strategy_order():
    g = make()
    book(g, 0)
    g.on_fill(0, "BTC", -1, 1000, 4)
    g.kill(10, "looks wrong", source="control")
    (ev,) = g.drain_events()
    assert (ev.ts_ns, ev.rule, ev.state_from, ev.state_to, ev.reason) == (
        10, "kill", ACTIVE, HALTED, "looks wrong (by control)")
    assert g.drain_actions() == [GuardAction(CANCEL_ALL, None, "looks wrong (by control)"),
                                 GuardAction(FLATTEN, None, "looks wrong (by control)")]
    g.kill(11)
    g.kill(12, "again", "cli")
    assert g.drain_events() == [] and g.drain_actions() == []
    for side, qty in ((1, 1), (1, 4), (-1, 1)):
        v = g.check_order(13, "BTC", side, qty)
        assert (v.allowed, v.rule) == (False, "kill")
    assert g.check_order(13, "BTC", 1, 4, source="guard") == Verdict(True, 4)
    assert g.check_order(13, "BTC", -1, 1, source="guard").allowed is False
    assert g.breakers()["kill"] == (1.0, 1.0, True)


def test_kill_on_top_of_a_halt_repeats_cancel_and_flatten():
    g = make()
    g.on_mark(0, 10_000)
    g.on_mark(1, 9_000)
    g.drain_events(), g.drain_actions()
    g.kill(2)
    assert [(e.rule, e.state_from, e.state_to) for e in g.drain_events()] == [("kill", HALTED, HALTED)]
    assert kinds(g.drain_actions()) == [(CANCEL_ALL, None), (FLATTEN, None)]


def test_resume_lifts_a_halt_and_rebases_the_loss_rules():
    g = make()
    book(g, 0)
    assert g.resume(0) is False and g.drain_events() == []
    g.on_mark(0, 10_000)
    g.on_mark(1 * S, 9_800)
    g.kill(2 * S)
    with pytest.raises(ConfigError):
        g.resume(3 * S, source="strategy")
    with pytest.raises(ConfigError):
        g.resume(3 * S, source="guard")
    assert g.state == HALTED
    book(g, 3 * S)
    g.drain_events()
    assert g.resume(3 * S, source="alice") is True
    (ev,) = g.drain_events()
    assert (ev.rule, ev.state_from, ev.state_to, ev.reason) == (
        "resume", HALTED, ACTIVE, "daily_drawdown halt lifted by alice")
    assert g.halted_by is None and g.check_order(3 * S, "BTC", 1, 1).allowed
    g.on_mark(4 * S, 9_700)           # 1.02 % from 9,800: the loss before the resume is not counted twice
    assert g.state == ACTIVE
    g.on_mark(5 * S, 9_653)           # 1.50 % from 9,800
    assert g.state == HALTED
    g.resume(6 * S)
    g.kill(7 * S)                     # a kill after a resume works again
    assert g.halted_by == "kill"


def test_resume_keeps_pauses_that_still_hold():
    g = make()
    book(g, 0)
    g.kill(1)
    g.tick(500 * MS)
    g.resume(500 * MS)
    assert g.state == REDUCING


# ---------------------------------------------------------------------------------------------------- misc


def test_invalid_orders_are_rejected_as_values():
    g = make()
    book(g, 0)
    for side, qty in ((0, 1), (2, 1), (1, 0), (1, -3), (1, 1.5), (1, "2")):
        v = g.check_order(1, "BTC", side, qty)
        assert (v.allowed, v.qty_lots, v.rule) == (False, 0, "invalid")
    import numpy as np

    assert g.check_order(1, "BTC", np.int64(1), np.int64(2)) == Verdict(True, 2)


def test_positions_and_breakers():
    g = make(symbols=("BTC", "ETH"))
    book(g, 0, bid_depth=100, ask_depth=40)
    g.on_fill(0, "BTC", 1, 1000, 5)
    g.on_fill(0, "BTC", -1, 1001, 7)   # flips to short 2 at 1001
    assert g.position_lots("BTC") == -2 and g.avg_entry_ticks("BTC") == 1001
    assert g.position_lots("ETH") == 0 and g.position_lots("nope") == 0
    b = g.breakers()
    assert set(b) == {"trade_stop", "daily_drawdown", "hourly_loss", "spread", "stale", "concentration",
                      "api_rate", "kill"}
    assert b["concentration"] == (2 / 40, 0.10, False)
    assert b["trade_stop"] == (0.0, float("inf"), False)
    g.set_position(1, "ETH", 3, 250.5)
    assert g.position_lots("ETH") == 3 and g.avg_entry_ticks("ETH") == 250.5
    assert all(isinstance(e, RiskEvent) for e in g.drain_events())
