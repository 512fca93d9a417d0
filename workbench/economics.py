"""Unit economics of a micro-trading desk: what a strategy earns per trade, per day and per month after costs.

Sans-I/O and pure: numbers in, numbers and tables out. Conventions, stated once:

- money is in the quote currency; a *trade* is a round trip (an entry and the exit that closes it, matched FIFO
  per symbol);
- ``avg_win`` and ``avg_loss`` are **gross** (before commissions) and both positive: ``avg_loss=10`` is a loss of
  10. A round trip of exactly 0 is a scratch and counts as a loss of 0, so ``win_rate`` is the share of strictly
  positive trades and ``gross = trades * (win_rate * avg_win - (1 - win_rate) * avg_loss)`` holds exactly;
- basis points are per round trip, of its entry notional: a 2.5 bp fee each way is 5 bp per round trip;
- a fee is a positive number paid, a rebate a positive number received.

Planning: :class:`UnitEconomics` (per-trade averages -> per day and per month), :class:`EdgeBudget` (bp per round
trip, taker against maker) and :func:`value_recovery`. Measuring: :func:`economics_from_fills` turns a fills table
into :class:`RealizedEconomics`, and :func:`compare` puts the plan and what happened side by side.

The fills table is the one of the backtester and the live journal, documented in :mod:`workbench.backtest.metrics`;
this module reads its columns ``ts_ns``, ``symbol``, ``side``, ``px``, ``qty``, ``fee`` and, when present,
``mid_px``. The FIFO matcher lives here because this layer needs it; ``backtest.metrics.round_trips`` is its public
face.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from workbench.exceptions import ConfigError

__all__ = [
    "UnitEconomics",
    "EdgeBudget",
    "ValueRecovery",
    "value_recovery",
    "RealizedEconomics",
    "economics_from_fills",
    "compare",
]

NS_PER_DAY = 86_400 * 1_000_000_000
BP = 1e4  # basis points per unit


def _number(name: str, value, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> float:
    """``value`` as a finite float within ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``), else ConfigError."""
    # bool is an int to Python; a True where a count was meant is a bug, not a 1
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ConfigError(f"{name} must be {'>' if lo_open else '>='} {lo:g}, got {value!r}")
    if hi is not None and v > hi:
        raise ConfigError(f"{name} must be <= {hi:g}, got {value!r}")
    return v


def _div(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is 0 (an average over nothing is unknown, not an error)."""
    return a / b if b != 0 else math.nan


# (label, attribute, unit): the rows both plans and measurements show, in this order
_ROWS = (
    ("trades per day", "trades_per_day", "round trips"),
    ("win rate", "win_rate", "fraction"),
    ("average win", "avg_win", "currency"),
    ("average loss", "avg_loss", "currency"),
    ("cost per round trip", "cost_per_round_trip", "currency"),
    ("gross per day", "gross_per_day", "currency"),
    ("commissions per day", "commissions_per_day", "currency"),
    ("net per day", "net_per_day", "currency"),
    ("gross per month", "gross_per_month", "currency"),
    ("net per month", "net_per_month", "currency"),
    ("expectancy per trade", "expectancy_per_trade", "currency"),
    ("breakeven win rate", "breakeven_win_rate", "fraction"),
)
_BP_ROWS = (
    ("edge at mid", "edge_bp", "bp"),
    ("fee", "fee_bp", "bp"),
    ("spread/slippage", "slippage_bp", "bp"),
    ("other", "other_bp", "bp"),
    ("net", "net_bp", "bp"),
)


def _table(obj, rows) -> pd.DataFrame:
    return pd.DataFrame(
        {"value": [float(getattr(obj, a)) for _, a, _ in rows], "unit": [u for _, _, u in rows]},
        index=pd.Index([label for label, _, _ in rows], name="item"),
    )


class _PerTrade:
    """Per day / per month / per trade figures shared by the plan and the measurement (needs the fields used)."""

    __slots__ = ()

    @property
    def gross_per_trade(self) -> float:
        """Average gross P&L of a round trip: ``win_rate * avg_win - (1 - win_rate) * avg_loss``."""
        return self.win_rate * self.avg_win - (1.0 - self.win_rate) * self.avg_loss

    @property
    def expectancy_per_trade(self) -> float:
        """Average **net** P&L of a round trip (gross per trade minus the cost per round trip)."""
        return self.gross_per_trade - self.cost_per_round_trip

    @property
    def breakeven_win_rate(self) -> float:
        """The win rate at which the net expectancy is 0: ``(avg_loss + cost) / (avg_win + avg_loss)``.

        Above 1: no win rate pays for the costs at these sizes of wins and losses. Below 0: rebates pay for the
        losses even when every trade loses.
        """
        return (self.avg_loss + self.cost_per_round_trip) / (self.avg_win + self.avg_loss)

    @property
    def gross_per_month(self) -> float:
        return self.gross_per_day * self.days_per_month

    @property
    def net_per_month(self) -> float:
        return self.net_per_day * self.days_per_month


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitEconomics(_PerTrade):
    """A plan: how many round trips a day, how often they win and by how much, and what each one costs.

    Parameters
    ----------
    trades_per_day : round trips per trading day, >= 0 (an average, need not be whole).
    win_rate : share of round trips with a positive gross P&L, in [0, 1].
    avg_win : average gross gain of a winning round trip, currency, > 0.
    avg_loss : average gross loss of a losing round trip as a positive number, currency, > 0.
    cost_per_round_trip : commission plus other costs of one round trip, currency; negative when rebates exceed
        them (a maker that is paid to trade).
    days_per_month : trading days in a month (21 for a weekday market; 30 for crypto).
    """

    trades_per_day: float
    win_rate: float
    avg_win: float
    avg_loss: float
    cost_per_round_trip: float
    days_per_month: float = 21

    def __post_init__(self) -> None:
        _number("trades_per_day", self.trades_per_day, lo=0)
        _number("win_rate", self.win_rate, lo=0, hi=1)
        _number("avg_win", self.avg_win, lo=0, lo_open=True)
        _number("avg_loss (a positive number: the size of a loss)", self.avg_loss, lo=0, lo_open=True)
        _number("cost_per_round_trip", self.cost_per_round_trip)
        _number("days_per_month", self.days_per_month, lo=0, lo_open=True)

    @property
    def gross_per_day(self) -> float:
        """``trades_per_day * (win_rate * avg_win - (1 - win_rate) * avg_loss)``, currency."""
        return self.trades_per_day * self.gross_per_trade

    @property
    def commissions_per_day(self) -> float:
        """``trades_per_day * cost_per_round_trip``, currency."""
        return self.trades_per_day * self.cost_per_round_trip

    @property
    def net_per_day(self) -> float:
        return self.gross_per_day - self.commissions_per_day

    def table(self) -> pd.DataFrame:
        """The inputs and what follows from them, one row each (columns ``value``, ``unit``), for display."""
        return _table(self, _ROWS)


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeBudget:
    """Where the edge of one round trip goes, in bp of its notional: taking liquidity against making it.

    Parameters
    ----------
    gross_edge_bp : the move the signal captures, measured at the mid (before any cost).
    taker_fee_bp : fees of a round trip taken, >= 0.
    slippage_bp : spread crossed plus slippage of a round trip taken, >= 0.
    other_bp : any other cost per round trip (either way), >= 0.
    maker_rebate_bp : rebates received by a round trip made (a positive number received; negative when the maker
        pays a fee instead).
    maker_slippage_bp : what a made round trip loses to the spread, >= 0; 0 by default since a maker fill pays no
        spread (the cost of making is adverse selection, which sits in the gross edge a maker achieves).
    """

    gross_edge_bp: float
    taker_fee_bp: float
    slippage_bp: float
    other_bp: float = 0.0
    maker_rebate_bp: float = 0.0
    maker_slippage_bp: float = 0.0

    def __post_init__(self) -> None:
        _number("gross_edge_bp", self.gross_edge_bp)
        _number("taker_fee_bp", self.taker_fee_bp, lo=0)
        _number("slippage_bp", self.slippage_bp, lo=0)
        _number("other_bp", self.other_bp, lo=0)
        _number("maker_rebate_bp", self.maker_rebate_bp)
        _number("maker_slippage_bp", self.maker_slippage_bp, lo=0)

    @property
    def net_bp_taker(self) -> float:
        """``gross - taker fee - slippage - other``."""
        return self.gross_edge_bp - self.taker_fee_bp - self.slippage_bp - self.other_bp

    @property
    def net_bp_maker(self) -> float:
        """``gross + rebate - maker slippage - other``."""
        return self.gross_edge_bp + self.maker_rebate_bp - self.maker_slippage_bp - self.other_bp

    def side_by_side(self) -> pd.DataFrame:
        """Rows gross edge, fee/rebate, slippage, other, net; columns taker and maker, in bp.

        Costs are negative and rebates positive, so each column sums to its ``net`` row.
        """
        rows = {
            "gross edge": (self.gross_edge_bp, self.gross_edge_bp),
            "fee/rebate": (-self.taker_fee_bp, self.maker_rebate_bp),
            "slippage": (-self.slippage_bp, -self.maker_slippage_bp),
            "other": (-self.other_bp, -self.other_bp),
            "net": (self.net_bp_taker, self.net_bp_maker),
        }
        return pd.DataFrame.from_dict(rows, orient="index", columns=["taker", "maker"]).rename_axis("bp") + 0.0


class ValueRecovery(NamedTuple):
    """Money recovered by automating execution, currency."""

    per_month: float
    per_year: float


def value_recovery(monthly_volume: float, bps_lost: float, *, months_per_year: int = 12) -> ValueRecovery:
    """What automating execution recovers when trading by hand loses ``bps_lost`` on ``monthly_volume``.

    ``per_month = monthly_volume * bps_lost / 1e4`` (currency), ``per_year = per_month * months_per_year``.
    E.g. 5 M a month traded 2 bp worse by hand: 1 000 a month, 12 000 a year.
    """
    v = _number("monthly_volume", monthly_volume, lo=0)
    b = _number("bps_lost", bps_lost, lo=0)
    m = _number("months_per_year", months_per_year, lo=0, lo_open=True)
    per_month = v * b / BP
    return ValueRecovery(per_month, per_month * m)


# ---------------------------------------------------------------------------------------------------------------------
# Measuring: FIFO round trips of a fills table

_FILL_COLUMNS = ("ts_ns", "symbol", "side", "px", "qty", "fee")
# a fill (or an open lot) whose remainder is below this share of its own size is used up: float quantities
# (0.1 + 0.2 against 0.3) leave crumbs of 1e-17 that must not become round trips of their own
_REL_TOL = 1e-9


class _Fills(NamedTuple):
    """A fills table's columns as arrays, in time order (stable: equal stamps keep their row order)."""

    ts: np.ndarray      # int64 ns
    sym: np.ndarray     # int codes into ``symbols``
    symbols: np.ndarray
    side: np.ndarray    # int8, +1 / -1
    px: np.ndarray
    qty: np.ndarray
    fee: np.ndarray
    mid: np.ndarray     # NaN where unknown or absent
    row: np.ndarray     # positions in the table as given


def _fill_arrays(fills: pd.DataFrame) -> _Fills:
    """Validate a fills table (see the module docstring) and take its columns in time order."""
    if len(fills) == 0:
        e = np.zeros(0)
        return _Fills(e.astype(np.int64), e.astype(np.int64), np.zeros(0, object), e.astype(np.int8), e, e, e, e,
                      e.astype(np.int64))
    missing = [c for c in _FILL_COLUMNS if c not in fills.columns]
    if missing:
        raise ConfigError(f"fills lack the columns {missing} (the contract is in workbench.backtest.metrics)")
    ts = fills["ts_ns"].to_numpy(np.int64)
    order = np.argsort(ts, kind="stable")
    side = fills["side"].to_numpy()[order]
    px = fills["px"].to_numpy(np.float64)[order]
    qty = fills["qty"].to_numpy(np.float64)[order]
    fee = fills["fee"].to_numpy(np.float64)[order]
    bad = ~np.isin(side, (1, -1))
    if bad.any():
        raise ConfigError(f"fills: side must be +1 (buy) or -1 (sell), got {side[bad][0]!r}")
    if not np.all(np.isfinite(px) & (px > 0)):
        raise ConfigError("fills: px must be finite and > 0 (a NaN or non-positive price)")
    if not np.all(np.isfinite(qty) & (qty > 0)):
        raise ConfigError("fills: qty must be finite and > 0 (a NaN or non-positive quantity)")
    if not np.all(np.isfinite(fee)):
        raise ConfigError("fills: fee must be finite (a NaN fee)")
    mid = fills["mid_px"].to_numpy(np.float64)[order] if "mid_px" in fills.columns else np.full(len(ts), np.nan)
    codes, symbols = pd.factorize(fills["symbol"].to_numpy()[order])
    if (codes < 0).any():
        raise ConfigError("fills: symbol must not be missing")
    return _Fills(ts[order], codes.astype(np.int64), np.asarray(symbols, object), side.astype(np.int8), px, qty,
                  fee, mid, order.astype(np.int64))


def _fifo_matches(sym: np.ndarray, side: np.ndarray, qty: np.ndarray, n_symbols: int):
    """FIFO matching of fills in time order: ``(entry, exit, qty)`` arrays, one element per matched part.

    ``entry``/``exit`` index the fills. Per symbol the open lots all point one way; a fill against them closes the
    oldest first, and whatever is left of it opens the other way (a flip). Plain Python over lists: one pass,
    O(1) per fill and per match, about 10 times faster than over numpy scalars.
    """
    books = [deque() for _ in range(n_symbols)]  # per symbol: open lots [fill index, remaining, tolerance]
    ways = [0] * n_symbols
    ent: list[int] = []
    ext: list[int] = []
    mq: list[float] = []
    for i, (k, s, q) in enumerate(zip(sym.tolist(), side.tolist(), qty.tolist())):
        book = books[k]
        eps = q * _REL_TOL
        if book and ways[k] != s:
            while book and q > eps:
                lot = book[0]
                m = lot[1] if lot[1] < q else q
                ent.append(lot[0])
                ext.append(i)
                mq.append(m)
                q -= m
                lot[1] -= m
                if lot[1] <= lot[2]:
                    book.popleft()
        if q > eps:
            # the book is empty here or points our way: what is left opens (or adds to) a position
            book.append([i, q, eps])
            ways[k] = s
    return np.asarray(ent, np.int64), np.asarray(ext, np.int64), np.asarray(mq, np.float64)


def _round_trip_columns(fills: pd.DataFrame) -> dict[str, np.ndarray]:
    """The FIFO round trips of ``fills`` as columns (those of ``round_trips`` plus ``entry_notional`` and
    ``slippage``: the cost of both legs against the mid, currency, positive when paid, NaN without a mid)."""
    f = _fill_arrays(fills)
    e, x, q = _fifo_matches(f.sym, f.side, f.qty, len(f.symbols))
    direction = f.side[e]
    entry_px, exit_px = f.px[e], f.px[x]
    gross = direction * (exit_px - entry_px) * q
    # fees of the matched parts only, prorated by quantity
    fees = f.fee[e] * q / f.qty[e] + f.fee[x] * q / f.qty[x]
    # what each leg paid against the mid: a buy above it, a sell below it (the exit leg's side is -direction)
    slippage = direction * ((entry_px - f.mid[e]) - (exit_px - f.mid[x])) * q
    return {
        "entry_ts_ns": f.ts[e],
        "exit_ts_ns": f.ts[x],
        "symbol": f.symbols[f.sym[e]] if len(e) else np.zeros(0, object),
        "direction": direction.astype(np.int8),
        "qty": q,
        "entry_px": entry_px,
        "exit_px": exit_px,
        "gross_pnl": gross,
        "fees": fees,
        "net_pnl": gross - fees,
        "holding_ns": f.ts[x] - f.ts[e],
        "entry_notional": entry_px * q,
        "slippage": slippage,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class RealizedEconomics(_PerTrade):
    """What the fills of a period earned, in the terms of :class:`UnitEconomics` (made by
    :func:`economics_from_fills`).

    Totals are stored; the averages and rates are derived from them, NaN where they average over nothing.
    Only closed round trips count: a position still open at the end is left out, its fees too.

    Fields
    ------
    days : trading days the totals cover.
    n_round_trips : closed round trips (FIFO, per symbol; a partial close is a round trip of its own).
    wins : round trips with a positive gross P&L.
    gross_wins, gross_losses : sums of gross P&L of winners, and of losers as a positive number, currency.
    fees : fees of the matched parts net of rebates, currency.
    other_costs : costs outside the fills over the period (data, hosting, borrowing), currency.
    notional : sum of the entry notionals of the round trips, currency: the base of every ``*_bp``.
    slippage : what the round trips paid against the mid, currency, already inside the gross P&L (fills are at
        their prices); negative when spread was earned (a maker). NaN when some matched fill has no ``mid_px``.
    days_per_month : as in :class:`UnitEconomics`.
    """

    days: float
    n_round_trips: int
    wins: int
    gross_wins: float
    gross_losses: float
    fees: float
    other_costs: float
    notional: float
    slippage: float
    days_per_month: float = 21

    @property
    def trades_per_day(self) -> float:
        return _div(self.n_round_trips, self.days)

    @property
    def win_rate(self) -> float:
        return _div(self.wins, self.n_round_trips)

    @property
    def avg_win(self) -> float:
        return _div(self.gross_wins, self.wins)

    @property
    def avg_loss(self) -> float:
        """Average gross loss of the losing (and scratch) round trips, positive, currency."""
        return _div(self.gross_losses, self.n_round_trips - self.wins)

    @property
    def gross_pnl(self) -> float:
        """Gross margin: P&L of the round trips at their fill prices, before fees, currency."""
        return self.gross_wins - self.gross_losses

    @property
    def commissions(self) -> float:
        """Fees plus other costs, currency."""
        return self.fees + self.other_costs

    @property
    def net_pnl(self) -> float:
        """Net profit: gross margin minus commissions, currency."""
        return self.gross_pnl - self.commissions

    @property
    def cost_per_round_trip(self) -> float:
        return _div(self.commissions, self.n_round_trips)

    @property
    def gross_per_trade(self) -> float:
        # from the totals, not from the rates: it stays defined when there were no wins (or no losses)
        return _div(self.gross_pnl, self.n_round_trips)

    @property
    def gross_per_day(self) -> float:
        return _div(self.gross_pnl, self.days)

    @property
    def commissions_per_day(self) -> float:
        return _div(self.commissions, self.days)

    @property
    def net_per_day(self) -> float:
        return _div(self.net_pnl, self.days)

    @property
    def gross_bp(self) -> float:
        """Gross P&L in bp of the entry notional (after the spread, before fees)."""
        return _div(self.gross_pnl, self.notional) * BP

    @property
    def edge_bp(self) -> float:
        """The edge at the mid, before any cost: ``gross_bp + slippage_bp`` (EdgeBudget's ``gross_edge_bp``)."""
        return self.gross_bp + self.slippage_bp

    @property
    def fee_bp(self) -> float:
        """Fees net of rebates, bp per round trip (negative when rebates exceed fees)."""
        return _div(self.fees, self.notional) * BP

    @property
    def slippage_bp(self) -> float:
        """Spread crossed and slippage against the mid, bp per round trip (negative: spread earned)."""
        return _div(self.slippage, self.notional) * BP

    @property
    def other_bp(self) -> float:
        return _div(self.other_costs, self.notional) * BP

    @property
    def cost_bp(self) -> float:
        """``fee_bp + slippage_bp + other_bp``."""
        return self.fee_bp + self.slippage_bp + self.other_bp

    @property
    def net_bp(self) -> float:
        """Net P&L in bp of the entry notional; equals ``edge_bp - cost_bp`` when the mids are known."""
        return _div(self.net_pnl, self.notional) * BP

    def table(self) -> pd.DataFrame:
        """The rows of :meth:`UnitEconomics.table` then the bp split (columns ``value``, ``unit``)."""
        return _table(self, _ROWS + _BP_ROWS)


def economics_from_fills(
    fills: pd.DataFrame,
    *,
    days: float | None = None,
    other_costs: float = 0.0,
    days_per_month: float = 21,
) -> RealizedEconomics:
    """Measure unit economics from a fills table (round trips matched FIFO per symbol).

    Parameters
    ----------
    fills : the fills table (columns in :mod:`workbench.backtest.metrics`; ``mid_px`` optional).
    days : trading days the fills cover, > 0. By default the number of distinct UTC dates with a fill: a two-hour
        session is one day, a month of weekdays about 21. Pass it when idle days should count (a day without a
        trade lowers trades per day).
    other_costs : costs outside the fills over the period (data, hosting), currency, >= 0; spread over the round
        trips as the "other" part of the cost per round trip.
    days_per_month : as in :class:`UnitEconomics`.

    Empty fills give zero round trips and NaN averages. Bad fills (missing columns, NaN prices, a side other than
    +1/-1) raise ConfigError.
    """
    if days is not None:
        days = _number("days", days, lo=0, lo_open=True)
    other = _number("other_costs", other_costs, lo=0)
    _number("days_per_month", days_per_month, lo=0, lo_open=True)
    rt = _round_trip_columns(fills)
    if days is None:
        ts = fills["ts_ns"].to_numpy(np.int64) if len(fills) else np.zeros(0, np.int64)
        days = float(len(np.unique(ts // NS_PER_DAY)))
    gross = rt["gross_pnl"]
    won = gross > 0
    return RealizedEconomics(
        days=days,
        n_round_trips=int(len(gross)),
        wins=int(won.sum()),
        gross_wins=float(gross[won].sum()),
        gross_losses=float(-gross[~won].sum()),
        fees=float(rt["fees"].sum()),
        other_costs=other,
        notional=float(rt["entry_notional"].sum()),
        slippage=float(rt["slippage"].sum()),  # NaN as soon as one matched leg had no mid
        days_per_month=days_per_month,
    )


def compare(planned: UnitEconomics, realised: RealizedEconomics, budget: EdgeBudget | None = None, *,
            maker: bool = False) -> pd.DataFrame:
    """Plan against measurement, one row per figure: columns ``planned``, ``realised``, ``difference``
    (realised - planned) and ``unit``.

    With an :class:`EdgeBudget` the bp rows (edge at mid, fee, spread/slippage, other, net) get planned values
    from its taker column, or its maker column when ``maker``; the fee row is fees net of rebates, so a planned
    rebate shows as a negative fee. Without a budget those rows are planned NaN.
    """
    if not isinstance(planned, UnitEconomics) or not isinstance(realised, RealizedEconomics):
        raise ConfigError("compare(planned: UnitEconomics, realised: RealizedEconomics)")
    plan = [float(getattr(planned, a)) for _, a, _ in _ROWS]
    if budget is None:
        plan += [math.nan] * len(_BP_ROWS)
    elif maker:
        b = budget
        plan += [b.gross_edge_bp, -b.maker_rebate_bp, b.maker_slippage_bp, b.other_bp, b.net_bp_maker]
    else:
        b = budget
        plan += [b.gross_edge_bp, b.taker_fee_bp, b.slippage_bp, b.other_bp, b.net_bp_taker]
    rows = _ROWS + _BP_ROWS
    real = [float(getattr(realised, a)) for _, a, _ in rows]
    out = pd.DataFrame(
        {"planned": plan, "realised": real, "unit": [u for _, _, u in rows]},
        index=pd.Index([label if u != "bp" else f"{label} (bp)" for label, _, u in rows], name="item"),
    )
    out.insert(2, "difference", out["realised"] - out["planned"])
    return out
