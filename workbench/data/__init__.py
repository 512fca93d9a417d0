"""Readers of real recordings into normalized events (:data:`workbench.types.event_dt`), streaming and chunked,
and the workbench's own Parquet recording format."""

from workbench.data.binance import BinanceCapture, infer_instrument
from workbench.data.equity import iter_equity_quotes, iter_equity_ticks, iter_equity_trades
from workbench.data.lobster import iter_lobster_messages, iter_lobster_orderbook
from workbench.data.lobster_book import check_level1, level1_rows
from workbench.data.parquet import ParquetRecorder, read_events, read_instrument, write_events
from workbench.stats import ReadStats

__all__ = [
    "BinanceCapture",
    "ParquetRecorder",
    "ReadStats",
    "check_level1",
    "infer_instrument",
    "iter_equity_quotes",
    "iter_equity_ticks",
    "iter_equity_trades",
    "iter_lobster_messages",
    "iter_lobster_orderbook",
    "level1_rows",
    "read_events",
    "read_instrument",
    "write_events",
]
