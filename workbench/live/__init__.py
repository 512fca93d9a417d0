"""The live side: clients of a Binance-Spot-protocol venue (the simulated one or a real one). I/O layer."""

from workbench.live.engine import Engine, EngineConfig, Snapshot
from workbench.live.executor import Credentials, Executor, ExecutorConfig
from workbench.live.feed import FeedClient, FeedConfig, Trade
from workbench.live.sandbox import Sandbox

__all__ = ["Credentials", "Engine", "EngineConfig", "Executor", "ExecutorConfig", "FeedClient", "FeedConfig", "Sandbox",
           "Snapshot", "Trade"]
