"""Open a recording by what it is: Binance captures (``.gz``), a LOBSTER message file (``.csv``), or the
workbench's Parquet (``.parquet``), as ``(instrument, event chunks)``; and the assets of a symbol."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from workbench.exceptions import ConfigError
from workbench.instrument import Instrument

__all__ = ["open_recording", "load_recording", "split_symbol"]

_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "EUR", "BTC", "ETH", "BNB", "USD")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` -> ``("BTC", "USDT")``; a symbol with no known quote asset splits its last three letters."""
    for q in _QUOTES:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)], q
    return symbol[:-3] or symbol, symbol[-3:]


def open_recording(paths: Sequence[str | Path], instrument: Instrument | None = None
                   ) -> tuple[Instrument, Iterable[np.ndarray]]:
    """``(instrument, chunks)`` of a recording, read lazily. ``instrument`` overrides the known or inferred one of
    a Binance capture (the other formats carry theirs)."""
    if not paths:
        raise ConfigError("no recording given")
    first = Path(paths[0])
    if first.suffix == ".parquet":
        from workbench.data.parquet import read_events, read_instrument

        if len(paths) != 1:
            raise ConfigError("give one Parquet file")
        return read_instrument(first), read_events(first)
    if first.suffix == ".csv":
        from workbench.data.lobster import iter_lobster_messages, lobster_instrument

        if len(paths) != 1:
            raise ConfigError("give one LOBSTER message file")
        return lobster_instrument(first), iter_lobster_messages(first)
    from workbench.data.binance import BinanceCapture

    reader = BinanceCapture(list(paths), instrument=instrument)
    return reader.instrument, reader


def load_recording(paths: Sequence[str | Path], instrument: Instrument | None = None
                   ) -> tuple[Instrument, np.ndarray]:
    """:func:`open_recording`, read whole into one event array."""
    ins, chunks = open_recording(paths, instrument)
    parts = list(chunks)
    from workbench.types import empty_events

    return ins, np.concatenate(parts) if parts else empty_events(0)
