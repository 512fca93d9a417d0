"""What a backtest returns: pandas frames in the contract of :mod:`workbench.backtest.metrics`, and the metrics.

Prices and sizes are converted from ticks and lots at this edge only (floats for display and statistics; the
integer columns ``px_ticks`` / ``qty_lots`` stay for exact work). Times are int64 ns (``ts_ns``; fills also carry
``exch_ts_ns``, when the exchange matched them), with a UTC ``time`` column for plotting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workbench.backtest.metrics import compute_metrics

__all__ = ["BacktestResult"]


FILL_COLUMNS = ["ts_ns", "exch_ts_ns", "symbol", "side", "px_ticks", "qty_lots", "fee_units", "is_maker",
                "client_order_id", "order_id", "mid_ticks", "tag"]


def finish_fills(f: pd.DataFrame, scale: dict) -> pd.DataFrame:
    """The fills' columns in currency (``scale``: symbol -> (tick, lot, unit)) and the time, added in place."""
    if len(f):
        tick = f["symbol"].map(lambda s: scale[s][0])
        lot = f["symbol"].map(lambda s: scale[s][1])
        unit = f["symbol"].map(lambda s: scale[s][2])
        f["px"] = f["px_ticks"] * tick
        f["qty"] = f["qty_lots"] * lot
        f["fee"] = f["fee_units"] * unit
        f["mid_px"] = f["mid_ticks"].astype(float) * tick
    else:
        for c in ("px", "qty", "fee", "mid_px"):
            f[c] = pd.Series(dtype=float)
    f["side"] = f["side"].astype(np.int8)
    f["is_maker"] = f["is_maker"].astype(bool)
    f["time"] = pd.to_datetime(f["ts_ns"], unit="ns", utc=True)
    return f


def finish_equity(eq: pd.DataFrame, scale: dict) -> pd.DataFrame:
    """The equity curve's positions and mids in currency, and the time, added in place."""
    single = len(scale) == 1
    for s, (tick, lot, _) in scale.items():
        p, m = ("position_lots", "mid_ticks") if single else (f"position_lots_{s}", f"mid_ticks_{s}")
        eq["position" if single else f"position_{s}"] = eq[p] * lot
        eq["mid_px" if single else f"mid_px_{s}"] = eq[m].astype(float) * tick
    eq["time"] = pd.to_datetime(eq["ts_ns"], unit="ns", utc=True)
    return eq


class BacktestResult:
    """The frames of one run, its metrics and counters; ``error`` is the strategy's exception if it raised.

    :attr:`metrics` are computed from the frames when first read (a few ms), and on the compiled path the fills,
    orders and equity frames are built from the run's arrays when first read (a few ms more): a parameter sweep or a
    slider's re-run pays for what it reads.
    """

    def __init__(self, fills: pd.DataFrame | None, orders: pd.DataFrame | None, equity: pd.DataFrame | None,
                 risk_events: pd.DataFrame, param_changes: pd.DataFrame, metrics: dict[str, float] | None,
                 counters: dict[str, int], params: dict[str, object], error: str | None = None,
                 log: list | None = None, wall_s: float = 0.0, mids: pd.DataFrame | None = None,
                 initial_equity: float = 0.0, *, frames=None) -> None:
        """``frames``: instead of ``fills``, ``orders``, ``equity`` and ``mids``, a callable that returns them,
        called once when one of them is first read."""
        self._fills, self._orders, self._equity, self._mids = fills, orders, equity, mids
        self._frames = frames
        self.risk_events, self.param_changes = risk_events, param_changes
        self._metrics = metrics
        self.counters, self.params, self.error = counters, params, error
        self.log = log if log is not None else []
        self.wall_s = wall_s
        self._initial_equity = initial_equity

    def _built(self) -> None:
        if self._frames is not None:
            self._fills, self._orders, self._equity, self._mids = self._frames()
            self._frames = None

    def __getstate__(self) -> dict:
        self._built()  # a result sent to another process (a sweep's worker) carries its frames, not the builder
        return self.__dict__.copy()

    @property
    def fills(self) -> pd.DataFrame:
        """One row per fill: times (ns and UTC), side, price and size in ticks/lots and in currency, fee, maker flag,
        order ids, the local mid when it filled, the order's tag."""
        self._built()
        return self._fills

    @property
    def orders(self) -> pd.DataFrame:
        """One row per order sent: its terms, final state, times, rejection reason and tag."""
        self._built()
        return self._orders

    @property
    def equity(self) -> pd.DataFrame:
        """The equity curve: one row per mark (equity, cash, position, mid)."""
        self._built()
        return self._equity

    @property
    def metrics(self) -> dict[str, float]:
        """Net P&L, per trade, win rate, ... (:func:`~workbench.backtest.metrics.compute_metrics`), computed once."""
        if self._metrics is None:
            self._built()
            self._metrics = compute_metrics(self._fills, self._equity, self._orders, self._mids,
                                            initial_equity=self._initial_equity)
        return self._metrics

    @classmethod
    def from_backtest(cls, bt) -> "BacktestResult":
        syms = bt._syms
        scale = {s: (float(d.ins.tick_size), float(d.ins.lot_size), d.unit) for s, d in syms.items()}
        compiled = getattr(bt, "_cr", None)
        single = len(syms) == 1

        def mids_of(eq: pd.DataFrame) -> pd.DataFrame | None:
            if single and len(eq):
                # rows without a mid stay: markouts skips them itself
                return pd.DataFrame({"ts_ns": eq["ts_ns"], "symbol": next(iter(syms)), "mid_px": eq["mid_px"]})
            return None

        def from_arrays(prefix=bt.orders.prefix):
            f, orders, eq = compiled.frames(prefix)
            return f, orders, eq, mids_of(eq)

        f = orders = eq = mids = None
        if compiled is None:
            f = finish_fills(pd.DataFrame(bt.fills, columns=FILL_COLUMNS), scale)
            rows = []
            for o in bt.orders.orders.values():
                tick, lot, _ = scale[o.symbol]
                rows.append((o.client_order_id, o.symbol, o.side, o.type.name, o.tif.name, o.px_ticks * tick,
                             o.qty_lots * lot, o.filled_lots * lot, o.state.name, o.created_ns, o.updated_ns,
                             o.reason, o.tag, o.order_id))
            orders = pd.DataFrame(rows, columns=["client_order_id", "symbol", "side", "type", "tif", "px", "qty",
                                                 "filled_qty", "state", "created_ns", "updated_ns", "reason", "tag",
                                                 "order_id"])

            cols = ["ts_ns", "equity", "cash"]
            for s in syms:
                cols += ["position_lots" if single else f"position_lots_{s}",
                         "mid_ticks" if single else f"mid_ticks_{s}"]
            eq = finish_equity(pd.DataFrame(bt.marks, columns=cols), scale)
            mids = mids_of(eq)

        risk = pd.DataFrame([(e.ts_ns, e.rule, e.state_from.name, e.state_to.name, e.reason, e.value, e.threshold)
                             for e in bt.risk_events],
                            columns=["ts_ns", "rule", "state_from", "state_to", "reason", "value", "threshold"])
        params = pd.DataFrame([(c.ts_ns, c.name, c.old, c.new, c.source) for c in bt.param_changes],
                              columns=["ts_ns", "name", "old", "new", "source"])
        counters = dict(bt.counters)
        counters["risk_events"] = len(risk)
        return cls(f, orders, eq, risk, params, None, counters, bt.strategy.params.as_dict(), bt.error,
                   list(bt.log), bt._wall_s, mids, bt.initial_cash,
                   frames=from_arrays if compiled is not None else None)

    def economics(self, *, days: float | None = None, other_costs: float = 0.0):
        """Unit economics of the fills in the desk's terms (trades per day, win rate, average win and loss, gross,
        commissions, net, cost per round trip in bp): a :class:`~workbench.economics.RealizedEconomics`, to set
        beside the plan with :func:`~workbench.economics.compare`. ``days``: the run's length by default."""
        from workbench.economics import economics_from_fills

        if days is None and len(self.equity) > 1:
            days = max(float(self.equity["ts_ns"].iloc[-1] - self.equity["ts_ns"].iloc[0]) / 86_400e9, 1e-9)
        return economics_from_fills(self.fills, days=days, other_costs=other_costs)

    def summary(self) -> pd.Series:
        """The headline metrics as one labelled column."""
        return pd.Series(self.metrics, name="value")

    def to_parquet(self, out_dir: str | Path) -> list[Path]:
        """Write each frame as ``<name>.parquet`` and the metrics as ``metrics.parquet`` under ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        frames = {"fills": self.fills, "orders": self.orders, "equity": self.equity, "risk_events": self.risk_events,
                  "param_changes": self.param_changes.astype({"old": str, "new": str}),
                  "metrics": self.summary().to_frame().reset_index(names="metric")}
        for name, frame in frames.items():
            p = out / f"{name}.parquet"
            frame.to_parquet(p, index=False)
            paths.append(p)
        return paths

    def __repr__(self) -> str:
        m = self.metrics
        return (f"BacktestResult({len(self.fills)} fills, net P&L {m.get('net_pnl', 0):,.2f}, "
                f"{int(m.get('n_round_trips', 0))} round trips, error={self.error!r})")
