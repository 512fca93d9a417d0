"""The public surface of :mod:`workbench.signals`: names, parameter validation, Markouts' contract checks."""

from __future__ import annotations

import numpy as np
import pytest

import workbench.signals as sig
from workbench.exceptions import ConfigError
from workbench.signals import nb

PUBLIC = {
    "AbsorptionResult", "BollingerZ", "BookImbalance", "BreakoutResult", "IcebergAbsorption", "KeltnerPosition",
    "MarkoutResult", "Markouts", "Microprice", "MomentumBreakout", "ResolvedMarkouts", "RollingVwap", "VolumeDelta",
    "VolumeDeltaResult", "VwapResult", "bollinger_z", "book_imbalance", "iceberg_absorption", "keltner_position",
    "markouts", "microprice", "momentum_breakout", "rolling_vwap", "volume_delta",
    "Bars", "KeltnerPositionBars", "keltner_position_bars", "ohlc_bars",
}


def test_public_names_are_pinned():
    assert set(sig.__all__) == PUBLIC
    assert all(hasattr(sig, name) for name in sig.__all__)


def test_kernels_follow_the_naming_convention():
    assert nb.__all__ and all(name.endswith("_nb") and hasattr(nb, name) for name in nb.__all__)
    for name in nb.__all__:
        assert hasattr(getattr(nb, name), "py_func"), f"{name} is not a numba dispatcher"


X = np.arange(5.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: sig.bollinger_z(X, 0),
        lambda: sig.BollingerZ(-1),
        lambda: sig.BollingerZ(2.5),
        lambda: sig.BollingerZ(True),
        lambda: sig.rolling_vwap(X, X, 0),
        lambda: sig.rolling_vwap(X, X[:3], 2),  # unequal lengths
        lambda: sig.RollingVwap(0),
        lambda: sig.volume_delta(X, [1, 1, 1, 1, 2], 3),  # side outside -1..1
        lambda: sig.VolumeDelta(0),
        lambda: sig.keltner_position(X, 0.5),  # span < 1
        lambda: sig.keltner_position(X, 10, mult=0.0),
        lambda: sig.KeltnerPosition(10, atr_span=float("nan")),
        lambda: sig.momentum_breakout(X, X, 0),
        lambda: sig.MomentumBreakout(3, min_relvol=-1.0),
        lambda: sig.MomentumBreakout(3, baseline_span=0.0),
        lambda: sig.book_imbalance(np.ones((3, 2)), np.ones((3, 2)), n_levels=3),
        lambda: sig.book_imbalance(np.ones((3, 2)), np.ones((3, 3))),
        lambda: sig.book_imbalance(np.ones((3, 2)), np.ones((3, 2)), halflife_events=-1.0),
        lambda: sig.BookImbalance(n_levels=0),
        lambda: sig.bollinger_z(np.ones((2, 2)), 3),  # 2-D where 1-D is expected
        lambda: sig.IcebergAbsorption(min_ratio=-0.5),
        lambda: sig.markouts([1], [1.0], [1], [1], [1.0]),  # no horizon
        lambda: sig.markouts([1], [1.0], [1], [1], [1.0], horizon_events=1, horizon_ns=5),  # both
        lambda: sig.markouts([1], [1.0], [1], [1], [1.0], horizon_events=-1),
        lambda: sig.markouts([2, 1], [1.0, 1.0], [1, 1], [1], [1.0], horizon_ns=5),  # trades unsorted
        lambda: sig.markouts([1], [1.0], [1], [3, 2], [1.0, 1.0], horizon_ns=5),  # mids unsorted
        lambda: sig.markouts([1.5], [1.0], [1], [1], [1.0], horizon_ns=5),  # float timestamps
        lambda: sig.BollingerZ(3).update(X, out=np.empty(4)),
        lambda: sig.keltner_position_bars(X, X, X, 0.5),  # span < 1
        lambda: sig.keltner_position_bars(X, X, X[:3], 10),  # unequal lengths
        lambda: sig.keltner_position_bars(X, X + 1, X, 10),  # high < low
        lambda: sig.KeltnerPositionBars(10, mult=0.0),
        lambda: sig.KeltnerPositionBars(10, atr_span=0.5),
        lambda: sig.KeltnerPositionBars(10).update(X, X, X[:4]),
        lambda: sig.KeltnerPositionBars(10).update(X - 1, X, X),  # high < low
        lambda: sig.ohlc_bars([1, 2], [1.0, 2.0], 0),  # bar_ns < 1
        lambda: sig.ohlc_bars([1, 2], [1.0, 2.0], 1.5),  # bar_ns not an integer
        lambda: sig.ohlc_bars([2, 1], [1.0, 2.0], 10),  # unsorted
        lambda: sig.ohlc_bars([1.5, 2.0], [1.0, 2.0], 10),  # float timestamps
        lambda: sig.ohlc_bars([1, 2], [1.0], 10),  # unequal lengths
    ],
)
def test_bad_parameters_raise_config_error(call):
    with pytest.raises(ConfigError):
        call()


def test_markouts_stream_contract_is_checked():
    mk = sig.Markouts(horizon_events=1)
    mk.update([10, 20], [1.0, 1.0], [1, 1], [5, 30], [1.0, 2.0])
    with pytest.raises(ConfigError, match="older than the last mid"):
        mk.update(trade_ts_ns=[25], trade_px=[1.0], trade_side=[1])
    with pytest.raises(ConfigError, match="mid_ts_ns goes back"):
        mk.update(mid_ts_ns=[29], mid=[1.0])
    mk.update(trade_ts_ns=[30], trade_px=[1.0], trade_side=[1])  # equal to the last mid: fine
    mk.finish()
    with pytest.raises(ConfigError, match="finished"):
        mk.update()
    with pytest.raises(ConfigError, match="already"):
        mk.finish()
    # trades going back in time while no mid has come yet
    mk = sig.Markouts(horizon_ns=5)
    mk.update(trade_ts_ns=[10], trade_px=[1.0], trade_side=[1])
    with pytest.raises(ConfigError, match="trade_ts_ns goes back"):
        mk.update(trade_ts_ns=[9], trade_px=[1.0], trade_side=[1])


def test_bar_messages_are_clear():
    with pytest.raises(ConfigError, match=r"high must be >= low in every bar: 1 bar\(s\) violate it, first at index 2"):
        sig.keltner_position_bars([2.0, 2.0, 1.0], [1.0, 1.0, 1.5], [1.5, 1.5, 1.2], 10)
    with pytest.raises(ConfigError, match="equal lengths"):
        sig.KeltnerPositionBars(10).update([2.0], [1.0], [1.5, 1.5])
    with pytest.raises(ConfigError, match="ts_ns must be sorted"):
        sig.ohlc_bars([5, 3], [1.0, 1.0], 10)
    with pytest.raises(ConfigError, match="bar_ns must be >= 1"):
        sig.ohlc_bars([], [], 0)


def test_inputs_are_converted():
    # lists, ints and int sides of any width are accepted and give the same as float64 / int8 arrays
    assert np.array_equal(sig.bollinger_z([1, 2, 3, 2], 3), sig.bollinger_z(np.array([1.0, 2.0, 3.0, 2.0]), 3))
    got = sig.volume_delta([1, 2, 3], np.array([1, -1, 0], dtype=np.int64), 2)
    assert got.cum.tolist() == [1.0, -1.0, -1.0] and got.windowed.tolist() == [1.0, -1.0, -2.0]
    # a 1-D book means one level per row
    assert sig.book_imbalance([3.0, 0.0], [1.0, 0.0]).tolist() == [0.5, 0.0]
