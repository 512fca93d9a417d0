"""The public API, pinned: a name added or removed here is a decision, not an accident."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "workbench": [
        "ConfigError", "DataError", "EventFlag", "EventKind", "Instrument", "Side", "TradingStatus",
        "UnrecognisedFormatError", "WorkbenchError", "empty_events", "event_dt",
    ],
    "workbench.book": ["BOOK_LEVELS", "BookLevelsView", "BookRecord", "BookSync", "Diff", "L2Book", "SyncState",
                       "TopOfBook"],
    "workbench.data": [
        "BinanceCapture", "ParquetRecorder", "ReadStats", "check_level1", "infer_instrument", "iter_equity_quotes",
        "iter_equity_ticks", "iter_equity_trades", "iter_lobster_messages", "iter_lobster_orderbook",
        "level1_rows", "read_events", "read_instrument", "write_events",
    ],
    "workbench.instrument": ["Instrument", "decimal_to_int", "int_to_decimal"],
    "workbench.cli": ["main", "default_recording"],
    "workbench.venue": [
        "ApiKey", "ConservativeQueue", "ConstantLatency", "ErrorCode", "FeeSchedule", "LatencyModel", "MatchingEngine",
        "NoQueue", "OrderRequest", "OrderStatus", "OrderType", "ProbabilisticQueue", "ReplayVenue", "SampledLatency",
        "SymbolSpec", "SyntheticConfig", "SyntheticVenue", "TimeInForce", "Venue", "commission_units",
        "feed_latency_samples", "new_api_key", "read_keys_file", "write_keys_file",
    ],
    "workbench.risk": ["ActionKind", "GuardAction", "GuardState", "RiskConfig", "RiskEvent", "RiskGuard", "Verdict"],
    "workbench.strategy": [
        "BookView", "Directional", "Env", "ImbalanceScalper", "MarketMaker", "MeanReversion", "MomentumExpansion",
        "OrderBook", "OrderState", "OwnOrder", "PairsArb", "Param", "ParamChange", "Params", "Portfolio",
        "SIZING_PARAMS", "STRATEGIES", "Strategy", "sized", "strategy_class",
    ],
    "workbench.backtest": ["Backtest", "BacktestConfig", "BacktestResult", "MarketData", "compute_metrics", "markouts",
                           "round_trips"],
    "workbench.economics": ["EdgeBudget", "RealizedEconomics", "UnitEconomics", "ValueRecovery", "compare",
                            "economics_from_fills", "value_recovery"],
    "workbench.journal": ["Journal", "SCHEMA_VERSION", "SOURCES", "TABLES"],
    "workbench.live.snapshot": ["LATENCY_EDGES_US", "LatencyRing", "Snapshot", "Telemetry"],
    "widgets": ["BacktestReport", "BookHeatmap", "Dashboard", "DepthLadder", "EconomicsCalculator", "EngineSource",
                "LatencyPanel", "ParamsPanel", "PnLPanel", "RecordingView", "RemoteSource", "RiskPanel", "dashboard",
                "fills_from_journal", "fills_from_snapshot"],
    "workbench.live": ["Credentials", "Engine", "EngineConfig", "Executor", "ExecutorConfig", "FeedClient", "FeedConfig",
                       "Sandbox", "Snapshot", "Trade"],
    "workbench.venue.server": ["ServerConfig", "ServerFaults", "ThreadedVenue", "VenueClock", "VenueServer"],
    "workbench.venue.protocol": [
        "ApiSession", "Faults", "Protocol", "ProtocolConfig", "RestResponse", "StreamName", "StreamSession",
        "book_ticker", "combined", "depth_levels", "depth_update", "depth_update_json", "dumps", "format_decimal",
        "parse_stream", "server_shutdown", "stream_session", "trade_event",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC[module])
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is listed but missing"


def test_every_all_resolves():
    import pkgutil

    import workbench

    for info in pkgutil.walk_packages(workbench.__path__, "workbench."):
        mod = importlib.import_module(info.name)
        for name in getattr(mod, "__all__", []):
            assert hasattr(mod, name), f"{info.name}.{name}"
