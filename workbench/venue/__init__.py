"""The simulated exchange, sans-I/O: the Venue contract, the matching engine, the synthetic market, the replay of
recordings with queue and latency models, and the Binance protocol surface. The asyncio server that exposes it
(:mod:`workbench.venue.server`) sits in the I/O layer and is imported from there."""

from workbench.venue.api import (
    ErrorCode,
    FeeSchedule,
    OrderRequest,
    OrderStatus,
    OrderType,
    SymbolSpec,
    TimeInForce,
    Venue,
    commission_units,
)
from workbench.venue.keys import ApiKey, new_api_key, read_keys_file, write_keys_file
from workbench.venue.latency import ConstantLatency, LatencyModel, SampledLatency, feed_latency_samples
from workbench.venue.matching import MatchingEngine
from workbench.venue.queue import ConservativeQueue, NoQueue, ProbabilisticQueue
from workbench.venue.replay import ReplayVenue
from workbench.venue.synthetic import SyntheticConfig, SyntheticVenue

__all__ = [
    "ApiKey",
    "ConservativeQueue",
    "ConstantLatency",
    "ErrorCode",
    "FeeSchedule",
    "LatencyModel",
    "MatchingEngine",
    "NoQueue",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "ProbabilisticQueue",
    "ReplayVenue",
    "SampledLatency",
    "SymbolSpec",
    "SyntheticConfig",
    "SyntheticVenue",
    "TimeInForce",
    "Venue",
    "commission_units",
    "feed_latency_samples",
    "new_api_key",
    "read_keys_file",
    "write_keys_file",
]
