"""`workbench strategies` and `workbench backtest` as a user runs them."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.cli import main
from workbench.strategy import STRATEGIES


def test_strategies_lists_every_strategy_with_its_parameters(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name, cls in STRATEGIES.items():
        assert f"{name}: {cls.summary}" in out
        for p in cls.params_spec:
            assert p.name in out
    assert "k                    float default 3.0        [0.1, 20] widths" in out


def test_backtest_prints_metrics_and_writes_parquet(shared_data, tmp_path, capsys):
    cap = shared_data / "binance" / "spot" / "btcusdt_20240808.gz"
    code = main(["backtest", "--strategy", "market_maker", "--data", str(cap), "--param", "half_spread_ticks=2",
                 "--latency-ms", "2", "--fees-bp=-0.5,7", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "market_maker on BTCUSDT" in out and "net_pnl" in out and "markout_1s" in out
    fills = pd.read_parquet(tmp_path / "fills.parquet")
    assert len(fills) > 10 and fills["is_maker"].all() and (fills["fee"] < 0).all()  # maker rebates
    metrics = pd.read_parquet(tmp_path / "metrics.parquet").set_index("metric")["value"]
    assert metrics["rebates"] == pytest.approx(-fills["fee"].sum())
    params = pd.read_parquet(tmp_path / "param_changes.parquet")
    assert params.empty  # set at construction, not changed during the run


@pytest.mark.parametrize("argv,message", [
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--strategy", "market_maker", "--param", "half_spread_ticks=-1"], "half_spread_ticks must be within"),
    (["--strategy", "market_maker", "--param", "nothing"], "expected NAME=VALUE"),
    (["--strategy", "market_maker", "--fees-bp", "1"], "expected MAKER,TAKER"),
])
def test_backtest_bad_input_is_a_clear_error(shared_data, capsys, argv, message):
    cap = shared_data / "binance" / "spot" / "btcusdt_20240808.gz"
    assert main(["backtest", "--data", str(cap), *argv]) == 2
    assert message in capsys.readouterr().err


def test_backtest_on_the_synthetic_market(capsys):
    assert main(["backtest", "--strategy", "obi_scalper", "--synthetic", "60", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "obi_scalper on BTCUSDT" in out and "fills" in out
