"""Strategies: the API (one object for backtest and live), the order state machine, sizing, and the shipped ones.

>>> from workbench.strategy import STRATEGIES, strategy_class
>>> MarketMaker = strategy_class("market_maker")
>>> mm = MarketMaker(half_spread_ticks=2)
"""

from __future__ import annotations

from workbench.exceptions import ConfigError
from workbench.strategy.base import BookView, Env, Strategy
from workbench.strategy.directional import Directional
from workbench.strategy.market_making import MarketMaker
from workbench.strategy.mean_reversion import MeanReversion
from workbench.strategy.momentum import MomentumExpansion
from workbench.strategy.obi import ImbalanceScalper
from workbench.strategy.orders import OrderBook, OrderState, OwnOrder
from workbench.strategy.pairs import PairsArb
from workbench.strategy.params import Param, ParamChange, Params
from workbench.strategy.portfolio import Portfolio
from workbench.strategy.sizing import SIZING_PARAMS, sized

__all__ = [
    "BookView", "Directional", "Env", "ImbalanceScalper", "MarketMaker", "MeanReversion", "MomentumExpansion",
    "OrderBook", "OrderState", "OwnOrder", "PairsArb", "Param", "ParamChange", "Params", "Portfolio",
    "SIZING_PARAMS", "STRATEGIES", "Strategy", "sized", "strategy_class",
]

#: The shipped strategies by name (``workbench strategies`` lists them).
STRATEGIES: dict[str, type[Strategy]] = {
    c.name: c for c in (ImbalanceScalper, MeanReversion, MomentumExpansion, MarketMaker, PairsArb)
}


def strategy_class(name: str) -> type[Strategy]:
    """The shipped strategy called ``name``; :class:`ConfigError` listing the names if there is none."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r} (one of {', '.join(STRATEGIES)})") from None
