"""The unit-economics calculator: a plan (per-trade averages and a bp budget), what it earns, and what happened.

:class:`EconomicsCalculator` is a view: every number it shows comes from :mod:`workbench.economics`
(:class:`~workbench.economics.UnitEconomics`, :class:`~workbench.economics.EdgeBudget`,
:func:`~workbench.economics.value_recovery`, :func:`~workbench.economics.economics_from_fills`,
:func:`~workbench.economics.compare`). It recomputes on every input change; text inputs send their value on Enter
or when they lose focus (``continuous_update=False``). The results are also traits of the panel (``net_per_day``,
``net_bp_taker``, ...), so code and tests read them without parsing text.

Conventions: money in the quote currency (``$`` in the display); the win rate is a fraction in the Python API
(``win_rate=0.6``) and a percentage in its input box; bp are per round trip, of its entry notional.

Planned vs realised: :meth:`EconomicsCalculator.set_backtest` (a :class:`~workbench.backtest.BacktestResult`),
:meth:`~EconomicsCalculator.set_snapshot` (a live :class:`~workbench.live.Snapshot`: its recent fills),
:meth:`~EconomicsCalculator.set_journal_fills` (the live journal's fills table) or
:meth:`~EconomicsCalculator.set_fills` (any fills table of the contract in :mod:`workbench.backtest.metrics`) measure
the fills and show them beside the plan; :meth:`~EconomicsCalculator.clear_realised` returns to the plan alone.

DOM classes (``widget.add_class``), for browser tests and styling. Inputs (each also has a stable
``description``):

==============================  ===================================  =========================
class                           description                          input
==============================  ===================================  =========================
``wb-calc-trades-per-day``      Trades/day                           round trips per day
``wb-calc-win-rate``            Win rate (%)                         share of winning trades
``wb-calc-avg-win``             Avg win ($)                          gross, per winning trade
``wb-calc-avg-loss``            Avg loss ($)                         gross, per losing trade
``wb-calc-commission``          Cost/round trip ($)                  commission per round trip
``wb-calc-days-per-month``      Days/month                           trading days in a month
``wb-calc-gross-edge-bp``       Gross edge (bp)                      edge at the mid
``wb-calc-taker-fee-bp``        Taker fee (bp)                       per round trip taken
``wb-calc-maker-rebate-bp``     Maker rebate (bp)                    per round trip made
``wb-calc-slippage-bp``         Slippage (bp)                        spread + slippage, taken
``wb-calc-other-bp``            Other costs (bp)                     either way
``wb-calc-monthly-volume``      Monthly volume ($)                   volume traded by hand
``wb-calc-bps-lost``            Lost by hand (bp)                    manual execution's cost
``wb-calc-plot-input``          Vary                                 the plot's x (dropdown)
``wb-calc-plot-period``         (per day / per month)                the plot's y (toggle)
``wb-calc-compare-side``        Plan bp as                           taker or maker (toggle)
==============================  ===================================  =========================

Results (HTML fields; the number is in the text, e.g. ``$255.00``; the trait of the same name holds the float):
``wb-calc-gross-day``, ``wb-calc-net-day``, ``wb-calc-commissions-day``, ``wb-calc-gross-month``,
``wb-calc-net-month``, ``wb-calc-expectancy``, ``wb-calc-breakeven``, ``wb-calc-cost-bp-taker``,
``wb-calc-cost-bp-maker``, ``wb-calc-net-bp-taker``, ``wb-calc-net-bp-maker``, ``wb-calc-recovery-month``,
``wb-calc-recovery-year``; ``wb-calc-edge-table`` (taker vs maker, bp), ``wb-calc-error`` (why a result is missing,
empty when all is well), ``wb-calc-plot`` (the bqplot figure), ``wb-calc-realised`` (the planned-vs-realised
section; hidden until fills are given) with ``wb-calc-compare`` (its table) and ``wb-calc-realised-net-day``.
The panel itself has ``wb-calc``.
"""

from __future__ import annotations

import contextlib
import math
from decimal import Decimal

import bqplot as bq
import ipywidgets as widgets
import numpy as np
import pandas as pd
import traitlets

from workbench import ConfigError
from workbench.economics import (
    EdgeBudget,
    RealizedEconomics,
    UnitEconomics,
    compare,
    economics_from_fills,
    value_recovery,
)

__all__ = ["EconomicsCalculator", "fills_from_snapshot", "fills_from_journal"]

# name -> (description, DOM class, default, min, max, step); the plan's inputs in display units
_PLAN_INPUTS = {
    "trades_per_day": ("Trades/day", "wb-calc-trades-per-day", 150.0, 0.0, 1e7, 1.0),
    "win_rate": ("Win rate (%)", "wb-calc-win-rate", 60.0, 0.0, 100.0, 0.5),
    "avg_win": ("Avg win ($)", "wb-calc-avg-win", 12.0, 0.0, 1e9, 0.5),
    "avg_loss": ("Avg loss ($)", "wb-calc-avg-loss", 10.0, 0.0, 1e9, 0.5),
    "commission": ("Cost/round trip ($)", "wb-calc-commission", 1.5, -1e9, 1e9, 0.1),
    "days_per_month": ("Days/month", "wb-calc-days-per-month", 21.0, 1.0, 31.0, 1.0),
}
_BUDGET_INPUTS = {
    "gross_edge_bp": ("Gross edge (bp)", "wb-calc-gross-edge-bp", 12.0, -1e4, 1e4, 0.5),
    "taker_fee_bp": ("Taker fee (bp)", "wb-calc-taker-fee-bp", 5.0, 0.0, 1e4, 0.5),
    "maker_rebate_bp": ("Maker rebate (bp)", "wb-calc-maker-rebate-bp", 1.0, -1e4, 1e4, 0.1),
    "slippage_bp": ("Slippage (bp)", "wb-calc-slippage-bp", 3.0, 0.0, 1e4, 0.5),
    "other_bp": ("Other costs (bp)", "wb-calc-other-bp", 1.0, 0.0, 1e4, 0.5),
}
_RECOVERY_INPUTS = {
    "monthly_volume": ("Monthly volume ($)", "wb-calc-monthly-volume", 5_000_000.0, 0.0, 1e15, 100_000.0),
    "bps_lost": ("Lost by hand (bp)", "wb-calc-bps-lost", 2.0, 0.0, 1e4, 0.5),
}
# result trait -> (label, DOM class, format)
_RESULTS = {
    "gross_per_day": ("Gross / day", "wb-calc-gross-day", "money"),
    "commissions_per_day": ("Costs / day", "wb-calc-commissions-day", "money"),
    "net_per_day": ("Net / day", "wb-calc-net-day", "money"),
    "gross_per_month": ("Gross / month", "wb-calc-gross-month", "money"),
    "net_per_month": ("Net / month", "wb-calc-net-month", "money"),
    "expectancy_per_trade": ("Net / trade", "wb-calc-expectancy", "money"),
    "breakeven_win_rate": ("Breakeven win rate", "wb-calc-breakeven", "pct"),
    "cost_bp_taker": ("Cost / round trip, taker", "wb-calc-cost-bp-taker", "bp"),
    "cost_bp_maker": ("Cost / round trip, maker", "wb-calc-cost-bp-maker", "bp"),
    "net_bp_taker": ("Net edge, taker", "wb-calc-net-bp-taker", "bp"),
    "net_bp_maker": ("Net edge, maker", "wb-calc-net-bp-maker", "bp"),
    "recovery_per_month": ("Recovered / month", "wb-calc-recovery-month", "money"),
    "recovery_per_year": ("Recovered / year", "wb-calc-recovery-year", "money"),
}
# what the plot can vary: input name -> label of the x axis
_VARY = {
    "win_rate": "win rate (%)",
    "trades_per_day": "trades per day",
    "avg_win": "average win ($)",
    "avg_loss": "average loss ($)",
    "commission": "cost per round trip ($)",
}
_N_POINTS = 61


def _fmt(value: float, kind: str) -> str:
    if value is None or not math.isfinite(value):
        return "&mdash;"
    if kind == "money":
        return f"{'-' if value < 0 else ''}${abs(value):,.2f}"
    if kind == "pct":
        return f"{100 * value:.1f} %"
    return f"{value:,.2f} bp"


def _number_input(name: str, spec: tuple, value: float) -> widgets.BoundedFloatText:
    description, css, _, lo, hi, step = spec
    w = widgets.BoundedFloatText(value=value, min=lo, max=hi, step=step, description=description,
                                 continuous_update=False, style={"description_width": "150px"},
                                 layout=widgets.Layout(width="280px"))
    w.add_class(css)
    w.add_class("wb-calc-input")
    return w


def _table_html(frame: pd.DataFrame, css: str) -> str:
    return frame.to_html(float_format=lambda v: f"{v:,.2f}", na_rep="&mdash;", border=0, classes=[css],
                         escape=True)


class EconomicsCalculator(widgets.VBox):
    """The calculator panel (see the module docstring for its inputs, results and DOM classes).

    Parameters (keyword-only, the seeds' example by default): ``trades_per_day``, ``win_rate`` (fraction),
    ``avg_win``, ``avg_loss``, ``commission`` (cost per round trip, $), ``days_per_month``; ``gross_edge_bp``,
    ``taker_fee_bp``, ``maker_rebate_bp``, ``slippage_bp``, ``other_bp``; ``monthly_volume``, ``bps_lost``.

    >>> calc = EconomicsCalculator()
    >>> round(calc.gross_per_day, 2), round(calc.net_per_day, 2), calc.net_bp_taker
    (480.0, 255.0, 3.0)
    >>> calc.inputs["win_rate"].value = 50      # percent, as typed in the box
    """

    # the results, recomputed on every input change (NaN when the inputs do not make a plan: see ``error``)
    gross_per_day = traitlets.Float(math.nan)
    commissions_per_day = traitlets.Float(math.nan)
    net_per_day = traitlets.Float(math.nan)
    gross_per_month = traitlets.Float(math.nan)
    net_per_month = traitlets.Float(math.nan)
    expectancy_per_trade = traitlets.Float(math.nan)
    breakeven_win_rate = traitlets.Float(math.nan)
    cost_bp_taker = traitlets.Float(math.nan)
    cost_bp_maker = traitlets.Float(math.nan)
    net_bp_taker = traitlets.Float(math.nan)
    net_bp_maker = traitlets.Float(math.nan)
    recovery_per_month = traitlets.Float(math.nan)
    recovery_per_year = traitlets.Float(math.nan)
    realised_net_per_day = traitlets.Float(math.nan)
    error = traitlets.Unicode("")
    recomputed = traitlets.Int(0)  # how many times the results were computed (a test's handle on "it recomputed")

    def __init__(self, *, trades_per_day: float = 150, win_rate: float = 0.60, avg_win: float = 12.0,
                 avg_loss: float = 10.0, commission: float = 1.5, days_per_month: float = 21,
                 gross_edge_bp: float = 12.0, taker_fee_bp: float = 5.0, maker_rebate_bp: float = 1.0,
                 slippage_bp: float = 3.0, other_bp: float = 1.0, monthly_volume: float = 5_000_000.0,
                 bps_lost: float = 2.0, **kwargs) -> None:
        given = dict(trades_per_day=trades_per_day, win_rate=100.0 * win_rate, avg_win=avg_win, avg_loss=avg_loss,
                     commission=commission, days_per_month=days_per_month, gross_edge_bp=gross_edge_bp,
                     taker_fee_bp=taker_fee_bp, maker_rebate_bp=maker_rebate_bp, slippage_bp=slippage_bp,
                     other_bp=other_bp, monthly_volume=monthly_volume, bps_lost=bps_lost)
        specs = {**_PLAN_INPUTS, **_BUDGET_INPUTS, **_RECOVERY_INPUTS}
        #: the input boxes by name (the win rate in percent)
        self.inputs: dict[str, widgets.BoundedFloatText] = {n: _number_input(n, specs[n], float(given[n]))
                                                             for n in specs}
        self.fields: dict[str, widgets.HTML] = {}
        for name, (label, css, _) in _RESULTS.items():
            f = widgets.HTML(description=label, style={"description_width": "170px"},
                             layout=widgets.Layout(width="320px"))
            f.add_class(css)
            f.add_class("wb-calc-result")
            self.fields[name] = f
        self.edge_table = widgets.HTML()
        self.edge_table.add_class("wb-calc-edge-table")
        self.error_field = widgets.HTML()
        self.error_field.add_class("wb-calc-error")

        # the plot: net profit as one input varies, the current inputs marked
        self.vary = widgets.Dropdown(options=[(label, name) for name, label in _VARY.items()], value="win_rate",
                                     description="Vary")
        self.vary.add_class("wb-calc-plot-input")
        self.period = widgets.ToggleButtons(options=[("per day", "day"), ("per month", "month")], value="day")
        self.period.add_class("wb-calc-plot-period")
        self._x = bq.LinearScale()
        self._y = bq.LinearScale()
        self._curve = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": self._x, "y": self._y},
                               colors=["#1f77b4"], stroke_width=2)
        self._zero = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": self._x, "y": self._y},
                              colors=["#999999"], line_style="dashed")
        self._now = bq.Scatter(x=np.zeros(0), y=np.zeros(0), scales={"x": self._x, "y": self._y},
                               colors=["#d62728"], default_size=80, stroke="black")
        self._ax_x = bq.Axis(scale=self._x, label=_VARY["win_rate"])
        self._ax_y = bq.Axis(scale=self._y, side="left", label="net profit per day ($)",
                             tick_format=",.0f")
        self.figure = bq.Figure(marks=[self._zero, self._curve, self._now], axes=[self._ax_x, self._ax_y],
                                title="Net profit as one input varies (the red point: now)",
                                layout=widgets.Layout(width="640px", height="340px"),
                                fig_margin={"top": 40, "bottom": 45, "left": 80, "right": 20})
        self.figure.add_class("wb-calc-plot")

        # planned vs realised (hidden until fills are given)
        self.compare_side = widgets.ToggleButtons(options=[("taker", "taker"), ("maker", "maker")], value="taker",
                                                  description="Plan bp as")
        self.compare_side.add_class("wb-calc-compare-side")
        self.compare_table = widgets.HTML()
        self.compare_table.add_class("wb-calc-compare")
        self.realised_field = widgets.HTML(description="Realised net / day", style={"description_width": "170px"})
        self.realised_field.add_class("wb-calc-realised-net-day")
        self.realised_title = widgets.HTML()
        self.realised_box = widgets.VBox([self.realised_title, self.realised_field, self.compare_side,
                                          self.compare_table], layout=widgets.Layout(display="none"))
        self.realised_box.add_class("wb-calc-realised")
        self._realised: RealizedEconomics | None = None
        self._source = ""

        f = self.fields
        column = lambda title, items: widgets.VBox([widgets.HTML(f"<b>{title}</b>"), *items])  # noqa: E731
        ins = self.inputs
        inputs = widgets.HBox([
            column("Per trade", [ins[n] for n in _PLAN_INPUTS]),
            column("Edge per round trip", [ins[n] for n in _BUDGET_INPUTS]),
            column("Micro-arbitrage: value recovery", [ins[n] for n in _RECOVERY_INPUTS]),
        ])
        results = widgets.HBox([
            column("Profit", [f[n] for n in ("gross_per_day", "commissions_per_day", "net_per_day",
                                             "gross_per_month", "net_per_month", "expectancy_per_trade",
                                             "breakeven_win_rate")]),
            column("Taker vs maker", [f[n] for n in ("cost_bp_taker", "net_bp_taker", "cost_bp_maker",
                                                     "net_bp_maker")] + [self.edge_table]),
            column("Recovered by automating", [f["recovery_per_month"], f["recovery_per_year"]]),
        ])
        super().__init__([inputs, self.error_field, results, widgets.HBox([self.vary, self.period]), self.figure,
                          self.realised_box], **kwargs)
        self.add_class("wb-calc")

        for w in self.inputs.values():
            w.observe(self._on_change, names="value")
        for w in (self.vary, self.period, self.compare_side):
            w.observe(self._on_change, names="value")
        self.recompute()

    # -- what the inputs say ---------------------------------------------------------------------------------------
    def _value(self, name: str) -> float:
        v = self.inputs[name].value
        return v / 100.0 if name == "win_rate" else v

    def _plan_args(self) -> dict:
        return dict(trades_per_day=self._value("trades_per_day"), win_rate=self._value("win_rate"),
                    avg_win=self._value("avg_win"), avg_loss=self._value("avg_loss"),
                    cost_per_round_trip=self._value("commission"), days_per_month=self._value("days_per_month"))

    @property
    def plan(self) -> UnitEconomics:
        """The plan of the current inputs (ConfigError when they do not make one, e.g. an average win of 0)."""
        return UnitEconomics(**self._plan_args())

    @property
    def budget(self) -> EdgeBudget:
        """The bp budget of the current inputs."""
        return EdgeBudget(gross_edge_bp=self._value("gross_edge_bp"), taker_fee_bp=self._value("taker_fee_bp"),
                          slippage_bp=self._value("slippage_bp"), other_bp=self._value("other_bp"),
                          maker_rebate_bp=self._value("maker_rebate_bp"))

    @property
    def realised(self) -> RealizedEconomics | None:
        """The measured economics of the fills given last, or None."""
        return self._realised

    @property
    def comparison(self) -> pd.DataFrame | None:
        """Plan against the realised fills (:func:`workbench.economics.compare`), or None without fills."""
        if self._realised is None:
            return None
        return compare(self.plan, self._realised, self.budget, maker=self.compare_side.value == "maker")

    # -- recomputing -----------------------------------------------------------------------------------------------
    def _on_change(self, change) -> None:
        self.recompute()

    def recompute(self) -> None:
        """Compute every result from the inputs and show it (called on each input change)."""
        errors = []
        values = dict.fromkeys(_RESULTS, math.nan)
        plan = budget = None
        try:
            plan = self.plan
            values.update({k: float(getattr(plan, k)) for k in ("gross_per_day", "commissions_per_day",
                                                                "net_per_day", "gross_per_month", "net_per_month",
                                                                "expectancy_per_trade", "breakeven_win_rate")})
        except ConfigError as e:
            errors.append(f"plan: {e}")
        try:
            budget = self.budget
            values["net_bp_taker"] = budget.net_bp_taker
            values["net_bp_maker"] = budget.net_bp_maker
            # what a round trip costs, in bp: the edge it starts with less the edge it keeps
            values["cost_bp_taker"] = budget.gross_edge_bp - budget.net_bp_taker
            values["cost_bp_maker"] = budget.gross_edge_bp - budget.net_bp_maker
        except ConfigError as e:
            errors.append(f"edge: {e}")
        try:
            rec = value_recovery(self._value("monthly_volume"), self._value("bps_lost"))
            values["recovery_per_month"], values["recovery_per_year"] = rec.per_month, rec.per_year
        except ConfigError as e:
            errors.append(f"value recovery: {e}")

        marks = (self._curve, self._zero, self._now, self._ax_x, self._ax_y, self.edge_table, self.error_field,
                 self.compare_table, self.realised_field, *self.fields.values())
        with contextlib.ExitStack() as stack:
            for w in marks:
                stack.enter_context(w.hold_sync())
            for name, (_, _, kind) in _RESULTS.items():
                setattr(self, name, values[name])
                self.fields[name].value = _fmt(values[name], kind)
            self.edge_table.value = (_table_html(budget.side_by_side().rename_axis(None), "wb-calc-edge")
                                     if budget else "")
            self.error = "; ".join(errors)
            self.error_field.value = f"<span style='color:#b00'>{self.error}</span>" if errors else ""
            self._draw(plan)
            self._draw_realised(plan is not None and budget is not None)
        self.recomputed += 1

    def _sweep(self, name: str) -> np.ndarray:
        """x values (display units) around the current value of input ``name``."""
        cur = self.inputs[name].value
        if name == "win_rate":
            return np.linspace(0.0, 100.0, _N_POINTS)
        if name == "commission":
            half = max(abs(cur), 1.0)
            return np.linspace(cur - half, cur + half, _N_POINTS)
        hi = max(2.0 * cur, 1.0)
        lo = hi / _N_POINTS if name in ("avg_win", "avg_loss") else 0.0  # averages must stay > 0
        return np.linspace(lo, hi, _N_POINTS)

    def _draw(self, plan: UnitEconomics | None) -> None:
        name, per = self.vary.value, self.period.value
        self._ax_x.label = _VARY[name]
        self._ax_y.label = f"net profit per {per} ($)"
        if plan is None:
            self._curve.x = self._curve.y = self._now.x = self._now.y = self._zero.x = self._zero.y = np.zeros(0)
            return
        xs = self._sweep(name)
        args = self._plan_args()
        key = "cost_per_round_trip" if name == "commission" else name
        scale = 0.01 if name == "win_rate" else 1.0
        attr = "net_per_day" if per == "day" else "net_per_month"
        ys = np.array([getattr(UnitEconomics(**{**args, key: x * scale}), attr) for x in xs])
        self._curve.x, self._curve.y = xs, ys
        self._zero.x, self._zero.y = np.array([xs[0], xs[-1]]), np.zeros(2)
        self._now.x = np.array([self.inputs[name].value])
        self._now.y = np.array([getattr(plan, attr)])

    # -- planned vs realised ---------------------------------------------------------------------------------------
    def set_realised(self, realised: RealizedEconomics, source: str = "fills") -> None:
        """Show ``realised`` beside the plan; ``source`` names where it came from (shown in the title)."""
        if not isinstance(realised, RealizedEconomics):
            raise ConfigError(f"set_realised needs a RealizedEconomics, got {type(realised).__name__}")
        self._realised, self._source = realised, source
        self.realised_box.layout.display = None
        self.recompute()

    def set_fills(self, fills: pd.DataFrame, *, days: float | None = None, other_costs: float = 0.0,
                  source: str = "fills") -> RealizedEconomics:
        """Measure a fills table (:func:`workbench.economics.economics_from_fills`) and show it beside the plan."""
        r = economics_from_fills(fills, days=days, other_costs=other_costs,
                                 days_per_month=self._value("days_per_month"))
        self.set_realised(r, source)
        return r

    def set_backtest(self, result, *, days: float | None = None, other_costs: float = 0.0) -> RealizedEconomics:
        """The fills of a :class:`~workbench.backtest.BacktestResult` (``result.economics()``: ``days`` is the run's
        length by default) beside the plan."""
        r = result.economics(days=days, other_costs=other_costs)
        self.set_realised(r, "backtest")
        return r

    def set_snapshot(self, snapshot, *, days: float | None = None) -> RealizedEconomics:
        """The fills carried by a live engine :class:`~workbench.live.Snapshot` (its most recent ones only: use
        :meth:`set_journal_fills` for a whole session) beside the plan."""
        return self.set_fills(fills_from_snapshot(snapshot), days=days, source="live session (recent fills)")

    def set_journal_fills(self, fills: pd.DataFrame, instruments: dict, *, days: float | None = None
                          ) -> RealizedEconomics:
        """The live journal's fills table (``Journal.fills_frame()``) beside the plan; ``instruments``: symbol ->
        :class:`~workbench.instrument.Instrument` or ``[tick_size, lot_size]`` (a snapshot's ``instruments``)."""
        return self.set_fills(fills_from_journal(fills, instruments), days=days, source="live session (journal)")

    def clear_realised(self) -> None:
        """Back to the plan alone."""
        self._realised, self._source = None, ""
        self.realised_box.layout.display = "none"
        self.recompute()

    def _draw_realised(self, have_plan: bool) -> None:
        r = self._realised
        if r is None:
            self.realised_net_per_day = math.nan
            self.compare_table.value = ""
            self.realised_field.value = ""
            return
        self.realised_net_per_day = float(r.net_per_day)
        self.realised_field.value = _fmt(self.realised_net_per_day, "money")
        self.realised_title.value = (f"<b>Planned vs realised</b> ({self._source}: {r.n_round_trips} round trips "
                                     f"over {r.days:.3g} days)")
        self.compare_table.value = _table_html(self.comparison, "wb-calc-compare-table") if have_plan else ""


# -- fills of the live side in the fills contract (workbench.backtest.metrics) -----------------------------------------
def _scales(instruments: dict) -> dict[str, tuple[float, float, float]]:
    """symbol -> (tick, lot, tick x lot) as floats; the product taken exactly first, as the engine does."""
    out = {}
    for sym, ins in instruments.items():
        tick, lot = (ins.tick_size, ins.lot_size) if hasattr(ins, "tick_size") else ins
        out[sym] = (float(tick), float(lot), float(Decimal(str(tick)) * Decimal(str(lot))))
    return out


def fills_from_snapshot(snapshot) -> pd.DataFrame:
    """A live :class:`~workbench.live.Snapshot`'s ``fills`` (``[seq, ts_ns, symbol, side, px_ticks, qty_lots, fee,
    is_maker]``) as a fills table (prices and sizes in instrument units from the snapshot's ``instruments``)."""
    cols = ["seq", "ts_ns", "symbol", "side", "px_ticks", "qty_lots", "fee", "is_maker"]
    return _in_units(pd.DataFrame(list(snapshot.fills), columns=cols), _scales(snapshot.instruments))


def fills_from_journal(fills: pd.DataFrame, instruments: dict) -> pd.DataFrame:
    """The journal's fills table (ticks, lots, ``fee_units`` of tick x lot) as a fills table in instrument units."""
    return _in_units(fills.copy(), _scales(instruments), fee_units=True)


def _in_units(f: pd.DataFrame, scales: dict, *, fee_units: bool = False) -> pd.DataFrame:
    if len(f) == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             (("ts_ns", "int64"), ("symbol", object), ("side", "int8"), ("px", float),
                              ("qty", float), ("fee", float))})
    missing = sorted(set(f["symbol"]) - set(scales))
    if missing:
        raise ConfigError(f"no instrument for {', '.join(missing)}")
    scale = lambda k: f["symbol"].map(lambda s: scales[s][k])  # noqa: E731
    f["px"] = f["px_ticks"] * scale(0)
    f["qty"] = f["qty_lots"] * scale(1)
    f["fee"] = f["fee_units"] * scale(2) if fee_units else f["fee"].astype(float)
    f["side"] = f["side"].astype(np.int8)
    return f
