"""Metrics of a backtest or a live session, from its results as pandas tables.

The results contract (the backtester and the live journal both produce it; money in the quote currency):

``fills``, one row per fill:

==================  =========  ======================================================================
column              dtype      meaning
==================  =========  ======================================================================
ts_ns               int64      time of the fill, ns
symbol              str
side                int8       +1 buy, -1 sell
px                  float64    price
qty                 float64    size, base units (> 0)
px_ticks            int64      price in ticks of the instrument
qty_lots            int64      size in lots of the instrument
fee                 float64    commission, quote currency; negative = a rebate received
is_maker            bool       the fill rested in the book (made liquidity)
client_order_id     str
order_id            int64      the venue's id
mid_px              float64    the mid at the fill's time; NaN if unknown
tag                 str        free text of the strategy (e.g. "entry", "stop")
==================  =========  ======================================================================

``equity``, one row per sample (any spacing, in time order): ``ts_ns`` int64, ``equity`` float64 (cash plus
positions at the mid, quote), ``cash`` float64, ``position`` float64 (base units; a multi-symbol run has one
``position_<SYMBOL>`` column per symbol instead), ``mid_px`` float64. The first row should be the state before the
first fill.

``orders``, one row per order in its last state: ``client_order_id``, ``symbol``, ``side``, ``type`` (str), ``px``,
``qty``, ``filled_qty``, ``state`` (str: NEW, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED),
``created_ns``, ``updated_ns``, ``reason``.

``mids``, the market over time for markouts: ``ts_ns``, ``symbol``, ``mid_px``.

Functions read only the columns they need. Empty tables (even without columns) give zeros and NaN, never an
exception; malformed ones (a missing column, a NaN price) raise :class:`~workbench.exceptions.ConfigError`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# the FIFO matcher sits in economics (layer 2) because economics needs it too; backtest (layer 3) may use it
from workbench.economics import _fill_arrays, _round_trip_columns
from workbench.exceptions import ConfigError

__all__ = ["round_trips", "markouts", "compute_metrics", "DEFAULT_HORIZONS_NS", "horizon_label"]

MS = 1_000_000
S = 1_000_000_000
DEFAULT_HORIZONS_NS = (100 * MS, 1 * S, 5 * S, 30 * S)
MINUTE_NS = 60 * S
MINUTES_PER_YEAR = 525_600  # 365 days: markets that never close; equity markets would use about 252 * 390
ROUND_TRIP_COLUMNS = ("entry_ts_ns", "exit_ts_ns", "symbol", "direction", "qty", "entry_px", "exit_px", "gross_pnl",
                      "fees", "net_pnl", "holding_ns")


def round_trips(fills: pd.DataFrame) -> pd.DataFrame:
    """Round trips matched FIFO per symbol, one row per matched part, in the order they closed.

    Columns: ``entry_ts_ns``, ``exit_ts_ns``, ``symbol``, ``direction`` (+1 long, -1 short), ``qty`` (base units),
    ``entry_px``, ``exit_px``, ``gross_pnl`` (``direction * (exit_px - entry_px) * qty``), ``fees`` (of the matched
    parts of both fills, prorated by quantity; negative for a net rebate), ``net_pnl`` (gross minus fees),
    ``holding_ns``.

    A fill that closes parts of several entries gives one row for each; a fill bigger than the open position
    closes it and opens the other way with the rest (the flip); a position still open at the end gives no row.
    Fills are taken in time order (equal stamps in the order given). One pass, about 0.1 s per 100 k fills.
    """
    cols = _round_trip_columns(fills)
    return pd.DataFrame({c: cols[c] for c in ROUND_TRIP_COLUMNS})


def horizon_label(ns: int) -> str:
    """A horizon in the largest unit that divides it: 100_000_000 -> ``"100ms"``, 30 * 10**9 -> ``"30s"``."""
    for unit, size in (("min", 60 * S), ("s", S), ("ms", MS), ("us", 1_000)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def _check_horizons(horizons_ns) -> tuple[int, ...]:
    hs = tuple(horizons_ns)
    for h in hs:
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h <= 0:
            raise ConfigError(f"horizons_ns must be positive integers of ns, got {h!r}")
    if len(set(hs)) != len(hs):
        raise ConfigError(f"horizons_ns has duplicates: {hs}")
    return tuple(int(h) for h in hs)


def _require(frame: pd.DataFrame, name: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{name} lacks the columns {missing} (the contract is in workbench.backtest.metrics)")


def markouts(fills: pd.DataFrame, mids: pd.DataFrame, horizons_ns=DEFAULT_HORIZONS_NS) -> pd.DataFrame:
    """How the market moved after each fill, in bp: ``side * (mid(t + h) - px) / px * 1e4``.

    Positive means the market moved our way; a strategy picked off by better-informed flow (adverse selection)
    shows negative averages. ``mid(t + h)`` is the last mid of the fill's symbol at or before ``t + h``.

    Returns one column ``markout_<h>`` per horizon (``markout_100ms``, ``markout_1s``, ...; see
    :func:`horizon_label`) on the index of ``fills``, so ``fills.join(markouts(fills, mids))`` lines them up.
    NaN where the symbol has no mid at or before ``t + h``, and where ``t + h`` is after its last mid (the mids end
    before the horizon: a stale mid would pull the average towards 0).
    """
    hs = _check_horizons(horizons_ns)
    names = [f"markout_{horizon_label(h)}" for h in hs]
    out = np.full((len(fills), len(hs)), np.nan)
    if len(fills) and len(mids):
        _require(fills, "fills", ("ts_ns", "symbol", "side", "px"))
        _require(mids, "mids", ("ts_ns", "symbol", "mid_px"))
        ts = fills["ts_ns"].to_numpy(np.int64)
        side = fills["side"].to_numpy(np.float64)
        px = fills["px"].to_numpy(np.float64)
        fill_sym = fills["symbol"].to_numpy()
        m = mids[np.isfinite(mids["mid_px"].to_numpy(np.float64))]
        syms = m["symbol"].to_numpy(object)
        # one symbol (the usual run) needs no grouping
        groups = [(syms[0], m)] if len(syms) and (syms == syms[0]).all() else m.groupby("symbol", sort=False)
        for sym, g in groups:
            rows = np.flatnonzero(fill_sym == sym)
            if len(rows) == 0:
                continue
            mts = g["ts_ns"].to_numpy(np.int64)
            order = np.argsort(mts, kind="stable")
            mts, mpx = mts[order], g["mid_px"].to_numpy(np.float64)[order]
            for j, h in enumerate(hs):
                t = ts[rows] + h
                k = np.searchsorted(mts, t, side="right") - 1  # the last mid at or before t (equal stamps: the last)
                ok = (k >= 0) & (t <= mts[-1])
                mid = np.where(ok, mpx[np.maximum(k, 0)], np.nan)
                out[rows, j] = side[rows] * (mid - px[rows]) / px[rows] * 1e4
    return pd.DataFrame(out, index=fills.index, columns=names)


def _equity_arrays(equity: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if len(equity) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    _require(equity, "equity", ("ts_ns", "equity"))
    ts = equity["ts_ns"].to_numpy(np.int64)
    order = np.argsort(ts, kind="stable")
    eq = equity["equity"].to_numpy(np.float64)[order]
    if not np.all(np.isfinite(eq)):
        raise ConfigError("equity: the equity column must be finite (a NaN or inf value)")
    return ts[order], eq


def _per_minute(ts: np.ndarray, eq: np.ndarray) -> np.ndarray:
    """Equity at the end of each clock minute from the first sample's to the last's; a quiet minute carries the
    previous value forward (its return is 0, which is what happened)."""
    minute = ts // MINUTE_NS
    grid = np.arange(minute[0], minute[-1] + 1)
    return eq[np.searchsorted(minute, grid, side="right") - 1]


def _sharpe(per_minute: np.ndarray) -> float:
    prev, nxt = per_minute[:-1], per_minute[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = nxt / prev - 1.0
    r = r[np.isfinite(r)]
    if len(r) < 2:
        return 0.0
    sd = r.std(ddof=1)
    # a flat curve has no risk to divide by: 0 rather than inf
    return float(r.mean() / sd * math.sqrt(MINUTES_PER_YEAR)) if sd > 0 else 0.0


def _drawdowns(eq: np.ndarray) -> tuple[float, float]:
    if len(eq) == 0:
        return 0.0, 0.0
    peak = np.maximum.accumulate(eq)
    dd = peak - eq
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(peak > 0, dd / peak, np.nan)
    frac_max = float(np.nanmax(frac)) if np.isfinite(frac).any() else math.nan
    return float(dd.max()), frac_max


def _fill_ratio(orders: pd.DataFrame | None) -> float:
    if orders is None or len(orders) == 0:
        return math.nan
    _require(orders, "orders", ("state", "filled_qty"))
    accepted = np.fromiter((str(v).upper() != "REJECTED" for v in orders["state"].to_numpy(object)), bool,
                           len(orders))
    filled = orders["filled_qty"].to_numpy(np.float64) > 0
    n = int(accepted.sum())
    return float((accepted & filled).sum() / n) if n else math.nan


def _marked_pnl(fills: pd.DataFrame) -> float:
    """Net P&L from the fills alone: cash flows minus fees, open positions marked at their symbol's last fill."""
    f = _fill_arrays(fills)
    flow = -(f.side * f.px * f.qty).sum() - f.fee.sum()
    pos = np.bincount(f.sym, weights=f.side * f.qty, minlength=len(f.symbols))
    last = np.zeros(len(f.symbols))
    last[f.sym] = f.px  # fancy assignment keeps the last write: each symbol's last price in time order
    return float(flow + (pos * last).sum())


def compute_metrics(
    fills: pd.DataFrame,
    equity: pd.DataFrame,
    orders: pd.DataFrame | None = None,
    mids: pd.DataFrame | None = None,
    *,
    initial_equity: float | None = None,
    horizons_ns=DEFAULT_HORIZONS_NS,
) -> dict[str, float]:
    """The summary of a run, as a flat dict of floats (money in quote currency).

    Parameters
    ----------
    fills, equity, orders, mids : the results tables of the module docstring; ``orders`` and ``mids`` optional.
    initial_equity : equity before the run; by default the first ``equity`` row. When given it also starts the
        curve the drawdowns are measured on.
    horizons_ns : markout horizons, used with ``mids``.

    Returns
    -------
    net_pnl : last equity minus initial equity (open positions at the mid). Without equity rows: from the fills,
        open positions marked at their symbol's last fill price.
    gross_pnl : net P&L before fees: ``net_pnl + fees_paid - rebates``.
    fees_paid, rebates : sum of the positive fees; sum of the negative ones as a positive number.
    n_fills, traded_notional : number of fills; sum of ``px * qty``.
    n_round_trips : FIFO round trips (see :func:`round_trips`).
    pnl_per_trade : ``net_pnl / n_round_trips`` (the whole run, open positions included).
    win_rate, avg_win, avg_loss : over the round trips' **net** P&L; a trade of 0 or less is a loss and
        ``avg_loss`` is positive. NaN without round trips (``avg_win`` NaN without a win).
    expectancy_per_trade : mean net P&L of a round trip, ``win_rate * avg_win - (1 - win_rate) * avg_loss``.
    expectancy_per_dollar_at_risk : ``expectancy_per_trade / avg_loss``: what a trade earns per unit of
        currency a losing trade loses (per unit risked, taking the average loss as the risk), NaN without losses.
    sharpe : of the 1-minute simple returns of equity (last value in each clock minute, quiet minutes carried
        forward), annualized by ``sqrt(525600)``; 0 with fewer than 2 returns or none that vary.
    max_drawdown, max_drawdown_frac : largest fall from a running peak, in currency and as a fraction of that
        peak, each its own maximum (they may come from different falls); 0 without equity.
    turnover : traded notional / mean equity (the per-minute curve, so mean over time); NaN without equity.
    fill_ratio : orders with any fill / orders accepted (not REJECTED); NaN without orders.
    markout_<h> : mean markout of the fills at each horizon, bp (see :func:`markouts`); only when ``mids`` is
        given, NaN when no fill has one.
    """
    if initial_equity is not None:
        if isinstance(initial_equity, bool) or not np.isfinite(initial_equity):
            raise ConfigError(f"initial_equity must be a finite number, got {initial_equity!r}")
        initial_equity = float(initial_equity)
    hs = _check_horizons(horizons_ns)
    rt = _round_trip_columns(fills)
    fee = fills["fee"].to_numpy(np.float64) if len(fills) else np.zeros(0)
    fees_paid = float(fee[fee > 0].sum())
    rebates = float(np.abs(fee[fee < 0]).sum())
    notional = 0.0
    if len(fills):
        notional = float((fills["px"].to_numpy(np.float64) * fills["qty"].to_numpy(np.float64)).sum())

    ts, eq = _equity_arrays(equity)
    if len(eq):
        start = eq[0] if initial_equity is None else initial_equity
        net = float(eq[-1] - start)
        curve = eq if initial_equity is None else np.concatenate([[initial_equity], eq])
        per_minute = _per_minute(ts, eq)
        sharpe = _sharpe(per_minute)
        mean_equity = float(per_minute.mean())
    else:
        net = _marked_pnl(fills) if len(fills) else 0.0
        curve = np.zeros(0)
        sharpe = 0.0
        mean_equity = math.nan
    max_dd, max_dd_frac = _drawdowns(curve)

    pnl = rt["net_pnl"]
    n = len(pnl)
    won = pnl > 0
    n_won = int(won.sum())
    avg_win = float(pnl[won].mean()) if n_won else math.nan
    avg_loss = float(-pnl[~won].mean()) if n - n_won else math.nan
    expectancy = float(pnl.mean()) if n else math.nan

    out = {
        "net_pnl": net,
        "gross_pnl": net + fees_paid - rebates,
        "fees_paid": fees_paid,
        "rebates": rebates,
        "n_fills": float(len(fills)),
        "traded_notional": notional,
        "n_round_trips": float(n),
        "pnl_per_trade": net / n if n else math.nan,
        "win_rate": n_won / n if n else math.nan,
        "avg_win": avg_win,
        "avg_loss": avg_loss,
        "expectancy_per_trade": expectancy,
        "expectancy_per_dollar_at_risk": expectancy / avg_loss if avg_loss > 0 else math.nan,
        "sharpe": sharpe,
        "max_drawdown": max_dd,
        "max_drawdown_frac": max_dd_frac,
        "turnover": notional / mean_equity if mean_equity > 0 else math.nan,
        "fill_ratio": _fill_ratio(orders),
    }
    if mids is not None:
        mk = markouts(fills, mids, hs)
        for c in mk.columns:
            col = mk[c].to_numpy()
            out[c] = float(np.nanmean(col)) if np.isfinite(col).any() else math.nan
    return out
