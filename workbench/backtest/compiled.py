"""The backtester's compiled path: the market, the strategy, the risk guard and the orders all in one kernel.

When the strategy offers its decision rule as a kernel (:meth:`Strategy.compiled
<workbench.strategy.base.Strategy.compiled>`, e.g. :class:`~workbench.strategy.MarketMaker`) and the fast path
applies (:mod:`workbench.backtest.fast`), :func:`workbench.backtest.nb.run_compiled_nb` runs what
``Backtest._loop_fast`` does in Python between the fast path's kernel calls: it replays the market kernel's log
through the risk guard's kernels (:mod:`workbench.risk.nb`, held equal to :class:`~workbench.risk.RiskGuard` by a
hypothesis test), the order state machine of :mod:`workbench.strategy.orders` on arrays, and the strategy's own
kernel (the one its Python object calls live). Python steps in only for the books' facades and to grow buffers, a
few times a run; fills, orders, the equity curve and the guard's events are logged in arrays and become the
result's frames when first read (:meth:`CompiledRun.frames`). Results are those of the Python path, fill for fill
and word for word (``tests/backtest/test_fast_path.py`` runs all three paths).

The local book (the strategy's, one feed latency late) is not kept during the run: it is a function of the feed
messages applied to it, not of the strategy, so what the kernels read of it (the top, and the depth the guard
checks) after each message is computed once per recording (:func:`workbench.backtest.fast.local_tops`) and kept
with the ``MarketData``; the book takes its final state at the end. A run then streams the recording twice (the
exchange's book, the venue's matching) instead of three times.

It applies when (:func:`compiled_reason` says why not otherwise): the fast path applies; the strategy offers a
kernel; the guard is as built (no kill, position or mark given to it before the run); its config suits the kernels
(:func:`workbench.risk.nb.guard_state`); no parameter change is waiting. Should the guard's integers leave the range
where the kernels are exact (an average entry price beyond 2**53 as a ratio), the run starts again on the fast path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.backtest import nb
from workbench.risk import nb as risk_nb
from workbench.risk.compiled import events_from_log
from workbench.venue.api import OrderType, TimeInForce

__all__ = ["CompiledRun", "compiled_reason"]

_TAGS = np.array(["", "bid", "ask", "guard"], dtype=object)
_STATES = None  # OrderState names by value, filled on first use


class Bail(Exception):
    """The compiled run cannot finish exactly: run the backtest on another path."""


def compiled_reason(bt) -> str | None:
    """Why the compiled path does not apply to this (fast-path) run, or None when it does."""
    from workbench.risk import GuardState

    if bt.config.compiled is False:
        return "BacktestConfig(compiled=False)"
    if bt.strategy.compiled(float(bt._first.ins.lot_size)) is None:
        return f"{type(bt.strategy).__name__} offers no compiled kernel"
    g = bt.guard
    if g.state is not GuardState.ACTIVE or g.has_output or g._equity is not None or g.position_lots(bt._first.symbol):
        return "the risk guard was used before the run"
    if bt._pending_params:
        return "a parameter change is waiting"
    if bt.config.progress:
        return "a progress bar (the compiled path runs in one call)"
    try:
        risk_nb.guard_state(bt.config.risk, 8, 8)
    except ValueError as exc:
        return f"the risk config has no kernel: {exc}"
    return None


class CompiledRun:
    """The arrays of one compiled run around a :class:`~workbench.backtest.fast.FastMarket`."""

    def __init__(self, bt, fm) -> None:
        self.bt, self.fm = bt, fm
        fm.read_local_from_tops()
        kind, self.SP, self.SPF = bt.strategy.compiled(float(bt._first.ins.lot_size))
        cap = fm.ORD.shape[0]
        self.C = np.zeros(nb.C_SIZE, np.int64)
        self.C[nb.C_STRATEGY] = kind
        self.C[nb.C_ENTRY_LAST] = -(2**63)
        self.C[nb.C_ENTRY_NS] = fm.entry_ns
        self.CF = np.zeros(nb.CF_SIZE, np.float64)
        self.CF[nb.CF_INITIAL_CASH] = bt.initial_cash
        self.CF[nb.CF_UNIT] = bt._first.unit
        self.CF[nb.CF_LAST_MID] = np.nan
        self.OS = np.zeros((cap, nb.OS_W), np.int64)
        self.OPEN = np.zeros(cap, np.int64)
        self.XS = np.zeros((4, cap), np.int64)
        self.DEF = np.zeros(256, np.int64)
        self.FL = np.zeros((1024, nb.FL_W), np.int64)
        self.FLF = np.zeros(1024, np.float64)
        self.MKL = np.zeros((4096, 2), np.int64)
        self.MKF = np.zeros((4096, 3), np.float64)
        (self.G, self.GF, self.GMK, self.SM, self.GORD, self.EV, self.EVF,
         self.ACT) = risk_nb.guard_state(bt.config.risk)

    def run(self, start_ns: int, timer_ns: int) -> None:
        """Run to the end (Backtest._loop_fast's loop, here in one kernel). Raises :class:`Bail`."""
        fm, C = self.fm, self.C
        C[nb.C_NOW] = start_ns
        C[nb.C_TIMER_NS] = timer_ns or 0
        while True:
            code = nb.run_compiled_nb(
                fm.ev, fm.V, fm.FD, fm.LT, fm.xbook.bid, fm.xbook.ask, fm.xbook.st, fm.lbook.bid, fm.lbook.ask,
                fm.lbook.st, fm.FAR, fm.FLOG, fm.S, fm.P, fm.ORD, fm.ORDF, fm.LV, fm.RS, fm.TK, fm.EQ, fm.RQ, fm.LOG, fm.WK,
                C, self.CF, self.SP, self.SPF, self.OS, self.OPEN, self.DEF, self.XS, self.FL, self.FLF, self.MKL,
                self.MKF, self.G, self.GF, self.GMK, self.SM, self.GORD, self.EV, self.EVF, self.ACT)
            # the overflow levels' log is not replayed level by level (tens of thousands of changes a day on a
            # real capture): the facades take the kernel's levels whole, when they are about to be read
            fm.S[nb.S_FLOG_N] = 0
            if code == nb.RUN_DONE:
                fm.load_far_into_facades()
                fm.finish_local()
                return
            if code == nb.RUN_NEED_BOOK:
                fm.load_far_into_facades()
            if code == nb.RUN_GROW:
                self._grow()
            elif code == nb.RUN_BAIL:
                raise Bail("the risk guard's integers left the kernels' exact range")
            elif code == nb.RUN_ERR_PAST:
                raise RuntimeError("compiled path: a book update or an answer the kernel ran past sent an order")
            else:
                fm.resolve(code)

    def _grow(self) -> None:
        fm, C = self.fm, self.C
        if C[nb.C_N_ORDERS] + 8 > self.OS.shape[0] or C[nb.C_N_ORDERS] + 8 > fm.ORD.shape[0]:
            fm._grow_orders()
            cap = fm.ORD.shape[0]
            self.OS = _grown(self.OS, cap)
            self.OPEN = _grown(self.OPEN, cap)
            xs = np.zeros((4, cap), np.int64)
            self.XS = xs
        if C[nb.C_N_FILLS] + 2 > self.FL.shape[0]:
            self.FL = _grown(self.FL, 2 * self.FL.shape[0])
            self.FLF = _grown(self.FLF, 2 * self.FLF.shape[0])
        if C[nb.C_N_MARKS] + 2 > self.MKL.shape[0]:
            self.MKL = _grown(self.MKL, 2 * self.MKL.shape[0])
            self.MKF = _grown(self.MKF, 2 * self.MKF.shape[0])
        if C[nb.C_N_DEF] + 32 > self.DEF.shape[0]:
            self.DEF = _grown(self.DEF, 2 * self.DEF.shape[0])
        if self.G[risk_nb.G_EV_N] + 16 > self.EV.shape[0]:
            self.EV = _grown(self.EV, 2 * self.EV.shape[0])
            self.EVF = _grown(self.EVF, 2 * self.EVF.shape[0])
        S = fm.S
        if S[nb.S_EQ_TAIL] + 8 > fm.EQ.shape[0]:
            head, tail = int(S[nb.S_EQ_HEAD]), int(S[nb.S_EQ_TAIL])
            live = fm.EQ[head:tail].copy()
            fm.EQ = np.zeros((max(2 * fm.EQ.shape[0], 2 * len(live) + 16), 4), np.int64)
            fm.EQ[:len(live)] = live
            S[nb.S_EQ_HEAD] = 0
            S[nb.S_EQ_TAIL] = len(live)

    # -- what the run leaves --------------------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        C = self.C
        return {"feed_messages": int(self.fm.S[nb.S_FEED_K]), "decisions": int(C[nb.C_DECISIONS]),
                "orders_sent": int(C[nb.C_ORDERS_SENT]), "orders_refused": int(C[nb.C_ORDERS_REFUSED]),
                "cancels_sent": int(C[nb.C_CANCELS_SENT]), "guard_orders": int(C[nb.C_GUARD_ORDERS]),
                "reports": int(C[nb.C_REPORTS])}

    def position(self) -> tuple[int, int, int, float | None]:
        """(position lots, cash units, fee units, last mid or None), as the Python path's symbol holds them."""
        C, mid = self.C, float(self.CF[nb.CF_LAST_MID])
        return int(C[nb.C_POS]), int(C[nb.C_CASH]), int(C[nb.C_FEE]), None if np.isnan(mid) else mid

    def risk_events(self) -> list:
        return events_from_log(self.EV, self.EVF, int(self.G[risk_nb.G_EV_N]), self.bt._first.symbol,
                               self.bt.config.risk)

    def frames(self, prefix: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The fills, orders and equity frames, as ``BacktestResult`` builds them from the Python path's rows
        (the same columns, values and dtypes), built whole from the arrays."""
        global _STATES
        from workbench.backtest.results import FILL_COLUMNS, finish_equity, finish_fills
        from workbench.strategy.orders import OrderState

        if _STATES is None:
            _STATES = np.array([OrderState(v).name for v in range(8)], dtype=object)
        symbol = self.bt._first.symbol
        C = self.C
        n_orders = int(C[nb.C_N_ORDERS])
        coids = np.array([f"{prefix}{k}" for k in range(1, n_orders + 1)], dtype=object)
        ins = self.bt._first.ins
        tick, lot, unit = float(ins.tick_size), float(ins.lot_size), self.bt._first.unit
        # fills (finish_fills' columns, computed here on arrays: px, qty, fee, mid_px, time)
        n = int(C[nb.C_N_FILLS])
        if n:
            FL = self.FL[:n]
            ts, mid = FL[:, nb.FL_T], self.FLF[:n]
            fills = pd.DataFrame({
                "ts_ns": ts, "exch_ts_ns": FL[:, nb.FL_TS], "symbol": np.full(n, symbol, dtype=object),
                "side": FL[:, nb.FL_SIDE].astype(np.int8), "px_ticks": FL[:, nb.FL_PX], "qty_lots": FL[:, nb.FL_QTY],
                "fee_units": FL[:, nb.FL_COMM], "is_maker": FL[:, nb.FL_MAKER] != 0,
                "client_order_id": coids[FL[:, nb.FL_SLOT]], "order_id": FL[:, nb.FL_OID],
                "mid_ticks": _optional(mid), "tag": _TAGS[FL[:, nb.FL_TAG]], "px": FL[:, nb.FL_PX] * tick,
                "qty": FL[:, nb.FL_QTY] * lot, "fee": FL[:, nb.FL_COMM] * unit, "mid_px": mid * tick,
                "time": pd.to_datetime(ts, unit="ns", utc=True)})
        else:
            fills = finish_fills(pd.DataFrame([], columns=FILL_COLUMNS), {symbol: (tick, lot, unit)})
        # orders
        ocols = ["client_order_id", "symbol", "side", "type", "tif", "px", "qty", "filled_qty", "state", "created_ns",
                 "updated_ns", "reason", "tag", "order_id"]
        if n_orders:
            OS = self.OS[:n_orders]
            types = np.array(["", *[t.name for t in OrderType]], dtype=object)
            tifs = np.array(["", *[t.name for t in TimeInForce]], dtype=object)
            reasons = np.array([""] + [self.fm.reject_message(k) for k in range(1, 6)], dtype=object)
            orders = pd.DataFrame({
                "client_order_id": coids, "symbol": np.full(n_orders, symbol, dtype=object),
                "side": OS[:, nb.OS_SIDE], "type": types[OS[:, nb.OS_TYPE]], "tif": tifs[OS[:, nb.OS_TIF]],
                "px": OS[:, nb.OS_PX] * tick, "qty": OS[:, nb.OS_QTY] * lot, "filled_qty": OS[:, nb.OS_FILLED] * lot,
                "state": _STATES[OS[:, nb.OS_STATE]], "created_ns": OS[:, nb.OS_CREATED],
                "updated_ns": OS[:, nb.OS_UPDATED], "reason": reasons[OS[:, nb.OS_REASON]],
                "tag": _TAGS[OS[:, nb.OS_TAG]], "order_id": OS[:, nb.OS_OID]}, columns=ocols)
        else:
            orders = pd.DataFrame([], columns=ocols)
        # marks
        m = int(C[nb.C_N_MARKS])
        mcols = ["ts_ns", "equity", "cash", "position_lots", "mid_ticks"]
        if m:
            ts, pos, mid = self.MKL[:m, 0], self.MKL[:m, 1], self.MKF[:m, 2]
            marks = pd.DataFrame({"ts_ns": ts, "equity": self.MKF[:m, 0], "cash": self.MKF[:m, 1],
                                  "position_lots": pos, "mid_ticks": _optional(mid), "position": pos * lot,
                                  "mid_px": mid * tick, "time": pd.to_datetime(ts, unit="ns", utc=True)})
        else:
            marks = finish_equity(pd.DataFrame([], columns=mcols), {symbol: (tick, lot, unit)})
        return fills, orders, marks


def _grown(a: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, *a.shape[1:]), a.dtype)
    out[:len(a)] = a
    return out


def _optional(x: np.ndarray):
    """Floats with NaN for None, as pandas infers a column of Python floats and Nones: float64 with NaN, or objects
    when every value is None."""
    if len(x) and np.isnan(x).all():
        return np.full(len(x), None, dtype=object)
    return x
