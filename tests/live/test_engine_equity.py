"""The live engine marks the guard with the account's equity (``EngineConfig.initial_equity`` plus the P&L), as the
backtester does with ``initial_cash``.

Regression: the engine marked the guard with the P&L since the start alone. A first gain of a few cents made a
positive peak, and the first loss below zero after it was a "drawdown" of over 100 %: the daily-drawdown rule
halted the engine where the backtest of the same fills went on trading.
"""

from __future__ import annotations

import pytest

from workbench.exceptions import ConfigError
from workbench.instrument import Instrument
from workbench.live.engine import Engine, EngineConfig
from workbench.live.executor import Credentials
from workbench.strategy import MarketMaker

INS = Instrument("BTCUSDT", "0.01", "0.00000001")
UNITS_PER_USDT = 10**10  # notional units (tick x lot) in one USDT


def engine(**kw) -> Engine:
    eng = Engine(MarketMaker(), EngineConfig(rest="http://127.0.0.1:1", stream="ws://127.0.0.1:1",
                                             ws_api="ws://127.0.0.1:1/ws-api/v3", credentials=Credentials("k", "s"),
                                             symbols=("BTCUSDT",), control=False, **kw))
    eng.instruments = {"BTCUSDT": INS}  # what the engine reads from exchangeInfo when it starts
    return eng


def marks(eng: Engine, pnl_usdt: list[float]) -> str:
    for i, pnl in enumerate(pnl_usdt):
        eng._cash_units["BTCUSDT"] = int(pnl * UNITS_PER_USDT)
        eng._mark_guard(1_723_161_600_000_000_000 + i * 50_000_000)
    return eng.guard.state.name


def test_a_few_cents_up_then_down_is_no_drawdown_of_an_account():
    eng = engine(initial_equity="100000")
    assert marks(eng, [0.0, 0.05, -0.02, -0.5]) == "ACTIVE"
    assert eng.env.equity() == pytest.approx(100_000 - 0.5)
    # a real drawdown of the account still halts: 1.5 % of 100,000 from the peak
    assert marks(eng, [-1600.0]) == "HALTED"


def test_without_a_basis_the_guard_would_see_the_pnl_alone():
    # what a basis prevents: an engine that could neither be told nor measure its account's equity
    assert marks(engine(), [0.0, 0.05, -0.02]) == "HALTED"


def test_without_initial_equity_the_account_is_measured_from_the_venue():
    from tests.live.test_engine import USER, config, served_venue, wait_for

    with served_venue() as (venue, urls, key):
        bal = venue.balances(USER)
        eng = Engine(MarketMaker(half_spread_ticks=0, order_qty=0.001, max_position=3, decide_every_ms=50),
                     config(urls, key)).start()
        try:
            mid = eng._views["BTCUSDT"].mid_ticks() * 0.01
            want = sum(bal["USDT"]) * 1e-7 + sum(bal["BTC"]) * 1e-5 * mid  # notional units, lots
            assert eng._equity_basis == pytest.approx(want, rel=1e-3)
            wait_for(lambda: eng.counters["fills"] >= 2, 60, "fills")
            assert eng.guard_state.name == "ACTIVE"  # small P&L moves are no drawdown of a 1.6 M account
        finally:
            eng.stop()


def test_initial_equity_must_be_a_positive_decimal():
    for bad in ("0", "-5", "abc", "nan"):
        with pytest.raises(ConfigError, match="initial_equity"):
            engine(initial_equity=bad)
