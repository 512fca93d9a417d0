from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.exceptions import ConfigError
from workbench.instrument import Instrument, decimal_to_int, int_to_decimal

SPOT = Instrument("BTCUSDT", "0.01", "0.00000001")


def test_exact_conversion_of_binance_strings():
    assert SPOT.px_to_ticks("61837.63000000") == 6183763
    assert SPOT.px_to_ticks("61837.63") == 6183763
    assert SPOT.qty_to_lots("1.54698000") == 154698000
    assert SPOT.ticks_to_str(6183763) == "61837.63"
    assert SPOT.lots_to_str(154698000) == "1.54698000"


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-", ".", "", "1e5", "1_0", " 5", "5 ", "1.2.3", "٣", "0x1f", "+"])
def test_rejects_what_is_not_a_plain_decimal(bad):
    with pytest.raises(ValueError):
        SPOT.px_to_ticks(bad)


def test_rejects_values_finer_than_the_increment_instead_of_rounding():
    with pytest.raises(ValueError, match="finer"):
        SPOT.px_to_ticks("61837.631")
    coarse = Instrument("X", "0.05", "1")
    assert coarse.px_to_ticks("1.15") == 23 and coarse.ticks_to_str(23) == "1.15"
    with pytest.raises(ValueError, match="whole number"):
        coarse.px_to_ticks("1.12")


def test_signs_and_short_forms():
    assert SPOT.px_to_ticks("-1.5") == -150 and SPOT.px_to_ticks(".5") == 50 and SPOT.px_to_ticks("5.") == 500
    assert SPOT.ticks_to_str(-3) == "-0.03"


@pytest.mark.parametrize("tick", ["0", "-0.01", "abc", "nan"])
def test_bad_increments_are_config_errors(tick):
    with pytest.raises(ConfigError):
        Instrument("X", tick, "1")


def test_float_increments_are_refused():
    with pytest.raises(ConfigError, match="float"):
        Instrument("X", 0.1, "1")  # type: ignore[arg-type]


@given(st.integers(-(10**15), 10**15), st.sampled_from([(0, 1), (2, 1), (2, 5), (8, 1), (3, 25)]))
def test_round_trip_against_decimal(value, scale):
    digits, units = scale
    text = int_to_decimal(value, digits, units)
    assert decimal_to_int(text, digits, units) == value
    assert Decimal(text) == Decimal(value * units).scaleb(-digits)
