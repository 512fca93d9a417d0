"""Instruments: tick and lot sizes, and exact conversion between decimal strings and integer ticks/lots.

Decimal strings are converted without ever passing through a float: ``"61837.63"`` with a tick of ``0.01`` is
``6183763`` ticks. A value that is not a whole number of ticks/lots is an error, never rounded silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from workbench.exceptions import ConfigError

__all__ = ["Instrument", "decimal_to_int", "int_to_decimal"]


def _as_decimal(x: str | Decimal | int) -> Decimal:
    if isinstance(x, float):
        raise ConfigError(f"pass sizes as strings or Decimal, not float ({x!r}): floats are not exact")
    try:
        d = Decimal(str(x))
    except InvalidOperation as exc:
        raise ConfigError(f"not a decimal number: {x!r}") from exc
    if not d.is_finite() or d <= 0:
        raise ConfigError(f"a tick or lot size must be a positive finite decimal, got {x!r}")
    return d


@dataclass(frozen=True, slots=True)
class _Scale:
    """An increment as ``units / 10**digits`` so that parsing is integer-only."""

    digits: int  # decimals of the increment, e.g. 2 for 0.01
    units: int   # increment in 10**-digits, e.g. 1 for 0.01, 5 for 0.05, 100 for 1 (digits 0)

    @classmethod
    def of(cls, increment: Decimal) -> "_Scale":
        exp = increment.normalize().as_tuple().exponent
        digits = max(0, -int(exp))
        units = int(increment.scaleb(digits))
        return cls(digits, units)


def decimal_to_int(text: str, digits: int, units: int) -> int:
    """Exact ``Decimal(text) / (units * 10**-digits)`` for a plain decimal string; raises ValueError otherwise.

    Accepts an optional sign, digits and one optional dot (no exponent, no NaN/inf: they raise ValueError).
    Trailing zeros beyond ``digits`` are allowed; any other excess precision raises ValueError.
    """
    body = text[1:] if text[:1] in "+-" else text
    whole, _, frac = body.partition(".")
    # str.isdigit() alone would accept non-ASCII digits; isascii() keeps the grammar plain.
    if not (whole or frac) or not body.isascii() or (whole and not whole.isdigit()) or (frac and not frac.isdigit()):
        raise ValueError(f"not a decimal number: {text!r}")
    if len(frac) > digits:
        if frac[digits:].strip("0"):
            raise ValueError(f"{text!r} is finer than the increment")
        frac = frac[:digits]
    scaled = int(whole + frac.ljust(digits, "0") or "0")
    if text[:1] == "-":
        scaled = -scaled
    if units == 1:
        return scaled
    q, r = divmod(scaled, units)
    if r:
        raise ValueError(f"{text!r} is not a whole number of increments")
    return q


def int_to_decimal(value: int, digits: int, units: int) -> str:
    """Exact decimal string of ``value`` increments (inverse of :func:`decimal_to_int`)."""
    scaled = int(value) * units
    if digits == 0:
        return str(scaled)
    sign = "-" if scaled < 0 else ""
    s = str(abs(scaled)).rjust(digits + 1, "0")
    return f"{sign}{s[:-digits]}.{s[-digits:]}"


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument.

    Parameters
    ----------
    symbol : venue symbol, e.g. ``"BTCUSDT"``.
    tick_size : price increment as a decimal string (``"0.01"``).
    lot_size : size increment as a decimal string (``"0.00001"``).
    """

    symbol: str
    tick_size: str
    lot_size: str
    _px: _Scale = field(init=False, repr=False, compare=False)
    _qty: _Scale = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_px", _Scale.of(_as_decimal(self.tick_size)))
        object.__setattr__(self, "_qty", _Scale.of(_as_decimal(self.lot_size)))

    # -- exact conversions (edges of the engine) -------------------------------------------------------------
    def px_to_ticks(self, text: str) -> int:
        """Price string to integer ticks; ValueError if it is not a whole number of ticks."""
        return decimal_to_int(text, self._px.digits, self._px.units)

    def qty_to_lots(self, text: str) -> int:
        """Size string to integer lots; ValueError if it is not a whole number of lots."""
        return decimal_to_int(text, self._qty.digits, self._qty.units)

    @property
    def scales(self) -> tuple[int, int, int, int]:
        """(px digits, px units, qty digits, qty units): tick and lot sizes as ``units * 10**-digits`` (for kernels
        that parse decimal text themselves, as :func:`decimal_to_int` does)."""
        return self._px.digits, self._px.units, self._qty.digits, self._qty.units

    def ticks_to_str(self, px_ticks: int) -> str:
        return int_to_decimal(px_ticks, self._px.digits, self._px.units)

    def lots_to_str(self, qty_lots: int) -> str:
        return int_to_decimal(qty_lots, self._qty.digits, self._qty.units)

    def ticks_to_float(self, px_ticks):
        """Ticks (scalar or array) to float prices, for display and signals only."""
        return px_ticks * (self._px.units / 10**self._px.digits)

    def lots_to_float(self, qty_lots):
        """Lots (scalar or array) to float sizes, for display and signals only."""
        return qty_lots * (self._qty.units / 10**self._qty.digits)


#: Known instruments of the recordings in ../shared/data. Spot book sizes carry 8 decimals (finer than the
#: 0.00001 order step of exchangeInfo), so the book's lot is 1e-8.
BINANCE_SPOT_BTCUSDT = Instrument("BTCUSDT", tick_size="0.01", lot_size="0.00000001")
BINANCE_USDM_BTCUSDT = Instrument("BTCUSDT", tick_size="0.1", lot_size="0.001")
