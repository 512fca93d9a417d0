"""The compiled guard's log in the Python guard's words, and a step-by-step driver of its kernels.

:func:`events_from_log` turns the rows :mod:`workbench.risk.nb` logs into :class:`~workbench.risk.RiskEvent` objects
with the reasons, values and thresholds the Python :class:`~workbench.risk.RiskGuard` writes (its own writers, from
the same integers, with its own float arithmetic). :class:`CompiledGuard` calls the kernels one call at a time behind
the guard's method names: what the tests hold against the Python guard, and a way to look at the kernels from a
notebook. A backtest calls the kernels from its own kernel instead (:mod:`workbench.backtest.compiled`).
"""

from __future__ import annotations

from math import inf

import numpy as np

from workbench.risk import guard as g
from workbench.risk import nb
from workbench.risk.config import RiskConfig
from workbench.risk.guard import ActionKind, GuardAction, GuardState, RiskEvent, Verdict

__all__ = ["CompiledGuard", "events_from_log"]

_RULES = g.RULES


def _opt(v: int) -> int | None:
    return None if v == nb.NONE else int(v)


def events_from_log(EV: np.ndarray, EVF: np.ndarray, n: int, symbol: str, config: RiskConfig) -> list[RiskEvent]:
    """The first ``n`` rows of a compiled guard's event log as the Python guard's events."""
    x = float(config.spread_widen_x)
    frac = float(config.max_depth_frac)
    out = []
    for row, med in zip(EV[:n].tolist(), EVF[:n, nb.EF_MED].tolist()):
        ts, rule, s_from, s_to, code, a, b, c, d, e, f = row[:11]
        if code == nb.RS_STALE:
            reason, value, thr = g._why_stale(symbol, bool(a), b, c), b, c
        elif code == nb.RS_FRESH:
            reason, value, thr = g._why_fresh(symbol, a), a, b
        elif code == nb.RS_ONE_SIDED:
            reason, value, thr = g._why_one_sided(symbol, _opt(a), _opt(b)), inf, x
        elif code == nb.RS_WIDEN:
            ratio = a / med
            reason, value, thr = g._why_widened(symbol, a, x, med, ratio), ratio, x
        elif code == nb.RS_NARROW:
            m = med if b else None
            ratio = a / m if m else 0.0
            reason, value, thr = g._why_narrowed(symbol, a, x, m), ratio, x
        elif code == nb.RS_STOP:
            pos, px, num, den, stop = a, b, c, d, e
            adverse = num / den - px if pos > 0 else px - num / den
            reason, value, thr = g._why_stopped(symbol, pos, px, adverse, num / den, stop), adverse, stop
        elif code in (nb.RS_RESIZED, nb.RS_REJECTED):
            after_abs, depth, cap, qty, room, side = a, b, c, d, e, f
            head = g._why_concentrated(symbol, after_abs, frac, side, depth, cap)
            reason = f"{head}: resized {qty} -> {room}" if code == nb.RS_RESIZED else f"{head}: rejected"
            value, thr = (after_abs / depth if depth > 0 else inf), frac
        elif code == nb.RS_DD:
            peak, eq = a, b
            dd, lim = (peak - eq) / peak, config.max_daily_drawdown_frac
            reason, value, thr = g._why_drawdown(dd, lim, peak, eq), dd, lim
        elif code == nb.RS_HOUR:
            ref, eq, age = a, b, c
            loss, lim = (ref - eq) / ref, config.max_hourly_loss_frac
            reason, value, thr = g._why_hourly(loss, lim, eq, ref, age), loss, lim
        else:  # pragma: no cover - a code without a writer is a bug
            raise ValueError(f"unknown reason code {code}")
        out.append(RiskEvent(ts, _RULES[rule], GuardState(s_from), GuardState(s_to), reason, float(value),
                             float(thr)))
    return out


class CompiledGuard:
    """The kernels of :mod:`workbench.risk.nb` behind :class:`~workbench.risk.RiskGuard`'s methods, for one symbol
    registered at the start. Verdicts carry no rule or reason (the kernels return only what a runner acts on)."""

    def __init__(self, config: RiskConfig = RiskConfig(), symbol: str = "SYM") -> None:
        self.config = config
        self.symbol = symbol
        self.G, self.GF, self.MK, self.SM, self.ORD, self.EV, self.EVF, self.ACT = nb.guard_state(config)
        self._ev_read = 0

    @property
    def state(self) -> GuardState:
        return GuardState(int(self.G[nb.G_STATE]))

    @property
    def bailed(self) -> bool:
        """A kernel left the exact int64 range: from there on this guard may differ from the Python one."""
        return bool(self.G[nb.G_BAIL])

    def position_lots(self, symbol: str | None = None) -> int:
        return int(self.G[nb.G_POS])

    def on_book(self, ts_ns: int, symbol: str, bid: int | None, ask: int | None, bid_depth: int,
                ask_depth: int) -> None:
        nb.guard_on_book_nb(self.G, self.GF, self.SM, self.ORD, self.EV, self.EVF, self.ACT, ts_ns,
                            nb.NONE if bid is None else bid, nb.NONE if ask is None else ask, bid_depth, ask_depth)

    def on_fill(self, ts_ns: int, symbol: str, side: int, px_ticks: int, qty_lots: int) -> None:
        nb.guard_on_fill_nb(self.G, self.EV, self.EVF, self.ACT, ts_ns, side, px_ticks, qty_lots)

    def on_mark(self, ts_ns: int, equity_units: int) -> None:
        nb.guard_on_mark_nb(self.G, self.GF, self.MK, self.EV, self.EVF, self.ACT, ts_ns, equity_units)

    def tick(self, ts_ns: int) -> None:
        nb.guard_tick_nb(self.G, self.GF, self.EV, self.EVF, self.ACT, ts_ns)

    def check_order(self, ts_ns: int, symbol: str, side: int, qty_lots: int, px_ticks: int | None = None, *,
                    source: str = "strategy") -> Verdict:
        ok, qty = nb.guard_check_order_nb(self.G, self.EV, self.EVF, self.ACT, ts_ns, side, qty_lots,
                                          source == "guard")
        return Verdict(bool(ok), int(qty))

    @property
    def has_output(self) -> bool:
        return int(self.G[nb.G_EV_N]) > self._ev_read or int(self.G[nb.G_ACT_N]) > 0

    def drain_events(self) -> list[RiskEvent]:
        n = int(self.G[nb.G_EV_N])
        ev = events_from_log(self.EV[self._ev_read:n], self.EVF[self._ev_read:n], n - self._ev_read, self.symbol,
                             self.config)
        self._ev_read = n
        return ev

    def drain_actions(self) -> list[GuardAction]:
        """Actions in order; reasons are not kept by the kernels (""), symbols are this guard's one or None as the
        Python guard gives them (halts: None; stale and trade stop: the symbol)."""
        n = int(self.G[nb.G_ACT_N])
        out = [GuardAction(ActionKind(int(k)), None, "") for k in self.ACT[:n].tolist()]
        self.G[nb.G_ACT_N] = 0
        return out
