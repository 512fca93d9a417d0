"""Every shipped strategy on the real Binance BTCUSDT captures, end to end: real fills, fees, queue positions, the
risk guard's events when its thresholds are tight, determinism, the pairs and portfolio runners on two markets."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.backtest import Backtest, BacktestConfig, MarketData
from workbench.data.recording import load_recording
from workbench.instrument import Instrument
from workbench.risk import RiskConfig
from workbench.strategy import STRATEGIES, MarketMaker, PairsArb, Portfolio


@pytest.fixture(scope="module")
def spot(shared_data) -> MarketData:
    ins, ev = load_recording([shared_data / "binance" / "spot" / "btcusdt_20240808.gz"])
    return MarketData(ins, ev, "BTC", "USDT")


@pytest.fixture(scope="module")
def usdm(shared_data) -> MarketData:
    ins, ev = load_recording([shared_data / "binance" / "usdm" / "btcusdt_20240808.gz"])
    return MarketData(Instrument("BTCUSDT-PERP", ins.tick_size, ins.lot_size), ev, "BTC", "USDT")


SINGLE = [n for n, c in STRATEGIES.items() if c.n_symbols == 1]


@pytest.mark.parametrize("name", SINGLE)
def test_every_single_instrument_strategy_trades_the_real_market(spot, name):
    res = Backtest(STRATEGIES[name](), spot, BacktestConfig()).run()
    assert res.error is None
    assert len(res.fills) >= 4, res.counters
    f = res.fills
    # real prices of that day (BTC about $55-57k), fees charged on every fill at 10 bp of its notional
    assert f["px"].between(50_000, 65_000).all()
    assert (f["fee"] - f["px"] * f["qty"] * 0.001).abs().max() < 0.01
    # the account's P&L is the fills' cash plus the position at the last mid
    last = res.equity.iloc[-1]
    cash = -(f["side"] * f["px"] * f["qty"]).sum() - f["fee"].sum()
    assert last["equity"] - 100_000 == pytest.approx(cash + last["position"] * last["mid_px"], abs=0.05)
    assert res.metrics["n_fills"] == len(f) and res.metrics["fees_paid"] == pytest.approx(f["fee"].sum())


@pytest.mark.parametrize("name", ["obi_scalper", "mean_reversion"])
def test_maker_entries_wait_in_the_queue(spot, name):
    cls = STRATEGIES[name]
    params = {"entry": "join", "threshold": 0.3} if name == "obi_scalper" else {"entry": "join", "k": 2.0}
    res = Backtest(cls(**params), spot, BacktestConfig()).run()
    entries = res.fills[res.fills["tag"] == "entry"]
    assert len(entries) >= 2 and entries["is_maker"].all()
    # joining the touch behind the displayed size: some entries never fill and are cancelled after the timeout
    assert (res.orders[res.orders["tag"] == "entry"]["state"] == "CANCELED").any()


def test_market_maker_quotes_fill_as_maker_after_the_queue(spot):
    res = Backtest(MarketMaker(), spot, BacktestConfig()).run()
    f = res.fills
    assert len(f) > 50 and f["is_maker"].all()
    assert set(f["tag"]) == {"bid", "ask"}
    # a quote joins behind the displayed size: far fewer quotes fill than are placed
    placed = res.orders[res.orders["tag"].isin(["bid", "ask"])]
    assert res.metrics["fill_ratio"] < 0.8 and len(placed) > len(f)


def test_a_backtest_is_deterministic_for_a_seed(spot):
    runs = [Backtest(MarketMaker(), spot, BacktestConfig(seed=3)).run() for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0].fills, runs[1].fills)
    pd.testing.assert_frame_equal(runs[0].equity, runs[1].equity)


def test_tight_thresholds_halt_the_strategy_and_flatten(spot):
    cfg = BacktestConfig(risk=RiskConfig(max_daily_drawdown_frac=0.00005))  # $5 of a $100,000 account
    res = Backtest(STRATEGIES["obi_scalper"](), spot, cfg).run()
    ev = res.risk_events
    halts = ev[(ev["state_to"] == "HALTED") & (ev["state_from"] != "HALTED")]
    assert len(halts) == 1 and halts.iloc[0]["rule"] == "daily_drawdown"
    t_halt = halts.iloc[0]["ts_ns"]
    # after the halt the strategy sends nothing more; the guard's own order leaves the account flat
    assert (res.orders[res.orders["tag"] != "guard"]["created_ns"] <= t_halt).all()
    assert res.equity.iloc[-1]["position"] == 0


def test_pairs_between_spot_and_futures(spot, usdm):
    res = Backtest(PairsArb(window=60, entry_z=1.5, notional=5000.0), [spot, usdm], BacktestConfig()).run()
    assert res.error is None
    f = res.fills
    assert set(f["symbol"]) == {"BTCUSDT", "BTCUSDT-PERP"}
    # legs go in pairs: each decision sends one order per market, of opposite sides, and both fill
    o = res.orders
    assert len(o) >= 4 and (o["state"] == "FILLED").all()
    for _, legs in o.groupby("created_ns"):
        assert sorted(legs["symbol"]) == ["BTCUSDT", "BTCUSDT-PERP"] and legs["side"].sum() == 0


def test_portfolio_runs_one_strategy_on_two_markets(spot, usdm):
    res = Backtest(Portfolio(MarketMaker, ("BTCUSDT", "BTCUSDT-PERP"), order_qty=0.001), [spot, usdm],
                   BacktestConfig()).run()
    assert set(res.fills["symbol"]) == {"BTCUSDT", "BTCUSDT-PERP"}
    assert {"position_BTCUSDT", "position_BTCUSDT-PERP"} <= set(res.equity.columns)


def test_unit_economics_of_a_run_in_the_desks_terms(spot):
    res = Backtest(STRATEGIES["obi_scalper"](), spot, BacktestConfig()).run()
    econ = res.economics()
    assert econ.n_round_trips > 10 and 0 <= econ.win_rate <= 1
    # taker entry and exit at 10 bp each: 20 bp a round trip, whatever the edge
    assert econ.table().loc["fee", "value"] == pytest.approx(20, abs=0.05)
    assert econ.net_pnl == pytest.approx(econ.gross_pnl - econ.commissions)
