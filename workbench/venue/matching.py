"""The simulated exchange's matching engine: the :class:`~workbench.venue.api.Venue` contract over numba kernels.

:class:`MatchingEngine` keeps an L3 order book per symbol (price-time priority, FIFO per level), accounts with fees
and balances, and turns requests into results and events. It has no market flow of its own (:meth:`advance` does
nothing): a synthetic order-flow model or a replay drives it through the same methods, or through the batch API.

Two ways in, one kernel (:func:`workbench.venue.nb.run_nb`):

- the :class:`Venue` methods (``place``, ``cancel``, ``cancel_all``, ...) run a one-row batch and convert the rows
  to api objects; events wait for :meth:`poll` (or :meth:`poll_rows`: the same events as rows, for a server);
- :meth:`submit_batch` takes a structured array of :data:`~workbench.venue.nb.cmd_dt` commands and returns the raw
  :data:`~workbench.venue.nb.res_dt` and :data:`~workbench.venue.nb.out_dt` arrays (millions of commands per
  second). It also speaks the two commands a synthetic flow needs: a LIMIT priced relative to the best of its own
  side (``F_REL_PX``) and ``OP_CANCEL_NTH`` (cancel the ``nth % n_open``-th open order of an account).

The rules (filters and their order, balances and locks, commissions in the quote asset, self-trade prevention, FOK,
MARKET orders on an empty or thin book) are stated once, in :mod:`workbench.venue.nb`. What the facade adds:

- Accounts are integer ids, registered by the constructor, :meth:`add_account`, or on first use (no funds, default
  fees). Unlimited accounts (``unlimited=True``: the market's own liquidity) skip balance checks and locks and
  produce no execution reports.
- Client order ids are strings; an empty one gets ``"wb-<n>"``. The kernel sees an integer handle per (account,
  text) (:meth:`intern_client_id`); a duplicate is an *open* order of the account with the same id.
- ``order()`` finds open orders in the book and closed orders of reporting accounts in a bounded history
  (``history`` most recent); closed orders of unlimited accounts are forgotten.
- Prices: each symbol's book is a dense window of price levels that moves and widens with the prices that rest in
  it, up to ``max_levels`` ticks wide; an order that would rest so far from the other resting orders that the window
  would exceed that is rejected with ``ErrorCode.INVALID_MESSAGE`` "Filter failure: PERCENT_PRICE_BY_SIDE".
- Rejected requests are results (``PlaceResult.rejection``), never events (Binance answers them with an error and no
  execution report).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from workbench.exceptions import ConfigError
from workbench.venue import nb
from workbench.venue.api import (
    CancelResult,
    DepthSnapshot,
    ErrorCode,
    ExecutionReport,
    FeeSchedule,
    Fill,
    LevelChange,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderView,
    PlaceResult,
    Rejection,
    SymbolSpec,
    TimeInForce,
    TradePrint,
)

__all__ = ["MatchingEngine", "MESSAGES"]

#: ``nb.MSG_*`` -> (code, Binance's wording).
MESSAGES: dict[int, tuple[ErrorCode, str]] = {
    nb.MSG_PRICE_FILTER: (ErrorCode.INVALID_MESSAGE, "Filter failure: PRICE_FILTER"),
    nb.MSG_LOT_SIZE: (ErrorCode.INVALID_MESSAGE, "Filter failure: LOT_SIZE"),
    nb.MSG_NOTIONAL: (ErrorCode.INVALID_MESSAGE, "Filter failure: NOTIONAL"),
    nb.MSG_BAD_SYMBOL: (ErrorCode.BAD_SYMBOL, "Invalid symbol."),
    nb.MSG_DUPLICATE: (ErrorCode.NEW_ORDER_REJECTED, "Duplicate order sent."),
    nb.MSG_WOULD_TAKE: (ErrorCode.NEW_ORDER_REJECTED, "Order would immediately match and take."),
    nb.MSG_BALANCE: (ErrorCode.NEW_ORDER_REJECTED, "Account has insufficient balance for requested action."),
    nb.MSG_UNKNOWN_ORDER: (ErrorCode.CANCEL_REJECTED, "Unknown order sent."),
    nb.MSG_BAD_PARAM: (
        ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
        "A mandatory parameter was not sent, was empty/null, or malformed.",
    ),
    nb.MSG_PERCENT_PRICE: (ErrorCode.INVALID_MESSAGE, "Filter failure: PERCENT_PRICE_BY_SIDE"),
}
_NO_ID = "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
_EXEC_NAMES = {nb.X_NEW: "NEW", nb.X_TRADE: "TRADE", nb.X_CANCELED: "CANCELED", nb.X_EXPIRED: "EXPIRED"}
_LIST_CAP0 = 8


def _same_events_as_poll_rows(poll):
    """Marks a ``poll`` whose events are exactly ``events_from_rows(poll_rows())`` of the same object: a server may
    then read the rows instead (a subclass that overrides ``poll`` loses the mark, and the server falls back)."""
    poll.same_events_as_poll_rows = True
    return poll


def _pow2_at_least(n: int) -> int:
    return 1 << max(4, (int(n) - 1).bit_length())


class MatchingEngine:
    """A price-time-priority matching engine for one or more symbols, implementing the ``Venue`` protocol.

    Parameters
    ----------
    specs : the tradable symbols.
    fees : one :class:`FeeSchedule` for every account, or ``{account: FeeSchedule}`` (others get the default).
        Rates must lie in [-1e6, 1e6] ppm.
    balances : ``{account: {asset: amount}}``: initial free balances (base assets in lots, quote assets in notional
        units of tick x lot, see :mod:`workbench.venue.api`).
    unlimited : accounts that are the market's own liquidity (no balance checks, no execution reports).
    ref_px_ticks : ``{symbol: price}``: the reference price of relative-price orders on an empty book, until a trade.
    initial_levels, max_levels : first and largest width (ticks) of a symbol's price window.
    initial_orders : resting orders the first order pool holds (it doubles when full).
    history : closed orders of reporting accounts kept for :meth:`order`.
    """

    def __init__(
        self,
        specs: list[SymbolSpec],
        *,
        fees: dict[int, FeeSchedule] | FeeSchedule = FeeSchedule(),
        balances: dict[int, dict[str, int]] | None = None,
        unlimited: Iterable[int] = (),
        ref_px_ticks: dict[str, int] | None = None,
        initial_levels: int = 1024,
        max_levels: int = 1 << 22,
        initial_orders: int = 1024,
        history: int = 100_000,
    ) -> None:
        if not specs:
            raise ConfigError("a matching engine needs at least one symbol")
        if initial_levels < 2 or max_levels < initial_levels:
            raise ConfigError("need 2 <= initial_levels <= max_levels")
        self.symbols: dict[str, SymbolSpec] = {}
        self._sym_names: list[str] = []
        assets: list[str] = []
        for spec in specs:
            if spec.symbol in self.symbols:
                raise ConfigError(f"symbol {spec.symbol!r} given twice")
            if not (1 <= spec.min_qty_lots <= spec.max_qty_lots) or spec.min_notional_ticks_lots < 0:
                raise ConfigError(f"{spec.symbol}: need 1 <= min_qty_lots <= max_qty_lots, min_notional >= 0")
            self.symbols[spec.symbol] = spec
            self._sym_names.append(spec.symbol)
            for a in (spec.base_asset, spec.quote_asset):
                if a not in assets:
                    assets.append(a)
        self.assets: tuple[str, ...] = tuple(assets)
        self._asset_ix = {a: k for k, a in enumerate(assets)}
        self._sym_ix = {name: k for k, name in enumerate(self._sym_names)}
        self.initial_levels = int(initial_levels)
        self.max_levels = int(max_levels)
        self._history_max = int(history)
        if isinstance(fees, FeeSchedule):
            self._default_fees, fee_map = fees, {}
        else:
            self._default_fees, fee_map = FeeSchedule(), dict(fees)

        n_sym = len(specs)
        self._sym = np.zeros((n_sym, nb.S_SIZE), np.int64)
        for k, spec in enumerate(specs):
            row = self._sym[k]
            row[nb.S_BB] = row[nb.S_BA] = -1
            row[nb.S_BASE_ASSET] = self._asset_ix[spec.base_asset]
            row[nb.S_QUOTE_ASSET] = self._asset_ix[spec.quote_asset]
            row[nb.S_MINQ] = spec.min_qty_lots
            row[nb.S_MAXQ] = spec.max_qty_lots
            row[nb.S_MINNOT] = spec.min_notional_ticks_lots
            row[nb.S_REF] = int((ref_px_ticks or {}).get(spec.symbol, 0))
        self._lv_qty = np.zeros(0, np.int64)
        self._lv_head = np.zeros(0, np.int64)
        self._lv_tail = np.zeros(0, np.int64)

        self._st = np.zeros(nb.ST_SIZE, np.int64)
        self._st[nb.ST_NEXT_OID] = 1
        self._st[nb.ST_N_ASSETS] = len(assets)
        self._st[nb.ST_REFUSE] = -1
        self._pool = np.zeros((0, nb.O_SIZE), np.int64)
        self._free = np.zeros(0, np.int64)
        self._oid_keys = np.full(16, -1, np.int64)
        self._oid_vals = np.zeros(16, np.int64)
        self._cid_keys = np.full(16, -1, np.int64)
        self._cid_vals = np.zeros(16, np.int64)
        if initial_orders < 1:
            raise ConfigError("initial_orders must be >= 1")
        self._grow_pool(int(initial_orders))

        self._acct = np.zeros((0, nb.A_SIZE), np.int64)
        self._bal_free = np.zeros(0, np.int64)
        self._bal_locked = np.zeros(0, np.int64)
        self._ol = np.zeros(0, np.int64)
        self._ol_meta = np.zeros((0, 3), np.int64)
        self._acct_ids: list[int] = []
        self._acct_ix: dict[int, int] = {}

        self._set_out(np.zeros(4096, nb.out_dt))
        self._cmd1 = np.zeros(1, nb.cmd_dt)  # the command of a request (place, cancel), reused
        self._res1 = np.zeros(1, nb.res_dt)
        self._res1_bytes = self._res1.view(np.uint8)
        self._pending: list[np.ndarray] = []
        self._cid_text: dict[int, str] = {0: ""}  # handle -> text
        self._cid_handle: dict[tuple[int, str], int] = {}  # (account index, text) -> handle
        self._next_cid = 1
        self._auto_cid = 0
        self._history: dict[int, OrderView] = {}
        self._history_cid: dict[tuple[int, str], int] = {}

        unl = set(unlimited)
        for acc in sorted(set(fee_map) | set(balances or {}) | unl):
            self.add_account(acc, fees=fee_map.get(acc), balances=(balances or {}).get(acc), unlimited=acc in unl)

    # -- accounts ---------------------------------------------------------------------------------------------------
    def add_account(
        self,
        account: int,
        *,
        fees: FeeSchedule | None = None,
        balances: dict[str, int] | None = None,
        unlimited: bool = False,
    ) -> int:
        """Register an account; returns its index (the ``account`` of batch commands)."""
        account = int(account)
        if account in self._acct_ix:
            raise ConfigError(f"account {account} exists already")
        f = fees or self._default_fees
        for rate in (f.maker_ppm, f.taker_ppm):
            if not -1_000_000 <= rate <= 1_000_000:
                raise ConfigError(f"fee rates are ppm in [-1e6, 1e6], got {rate}")
        a = len(self._acct_ids)
        self._acct_ids.append(account)
        self._acct_ix[account] = a
        self._acct = np.vstack([self._acct, np.array([[f.maker_ppm, f.taker_ppm, int(unlimited)]], np.int64)])
        n_assets = len(self.assets)
        self._bal_free = np.concatenate([self._bal_free, np.zeros(n_assets, np.int64)])
        self._bal_locked = np.concatenate([self._bal_locked, np.zeros(n_assets, np.int64)])
        n_sym = len(self._sym_names)
        meta = np.zeros((n_sym, 3), np.int64)
        meta[:, nb.L_OFF] = len(self._ol) + _LIST_CAP0 * np.arange(n_sym)
        meta[:, nb.L_CAP] = _LIST_CAP0
        self._ol_meta = np.vstack([self._ol_meta, meta])
        self._ol = np.concatenate([self._ol, np.full(n_sym * _LIST_CAP0, -1, np.int64)])
        for asset, amount in (balances or {}).items():
            self.deposit(account, asset, amount)
        return a

    def account_index(self, account: int) -> int:
        """Index of an account in the kernel's arrays, registering it (no funds, default fees) if new."""
        a = self._acct_ix.get(int(account))
        return self.add_account(account) if a is None else a

    @property
    def account_ids(self) -> list[int]:
        """Account ids by index (the inverse of :meth:`account_index`)."""
        return list(self._acct_ids)

    def deposit(self, account: int, asset: str, amount: int) -> None:
        """Add ``amount`` (may be negative: a withdrawal, never below zero) to the free balance of an asset."""
        if asset not in self._asset_ix:
            raise ConfigError(f"unknown asset {asset!r}; assets: {', '.join(self.assets)}")
        k = self.account_index(account) * len(self.assets) + self._asset_ix[asset]
        if self._bal_free[k] + int(amount) < 0:
            raise ConfigError(f"account {account} has only {int(self._bal_free[k])} {asset} free")
        self._bal_free[k] += int(amount)

    def balances(self, account: int) -> dict[str, tuple[int, int]]:
        """asset -> (free, locked) in lots (base assets) or notional units (quote assets)."""
        a = self._acct_ix.get(int(account))
        if a is None:
            return {asset: (0, 0) for asset in self.assets}
        n = len(self.assets)
        fr, lk = self._bal_free[a * n : (a + 1) * n], self._bal_locked[a * n : (a + 1) * n]
        return {asset: (int(fr[k]), int(lk[k])) for k, asset in enumerate(self.assets)}

    # -- identifiers ---------------------------------------------------------------------------------------------------
    def symbol_index(self, symbol: str) -> int:
        """Index of a symbol (the ``sym`` of batch commands); ConfigError if unknown."""
        try:
            return self._sym_ix[symbol]
        except KeyError:
            raise ConfigError(f"unknown symbol {symbol!r}") from None

    def intern_client_id(self, account: int, text: str) -> int:
        """The integer handle of a client order id of an account (the ``cid`` of batch commands)."""
        key = (self.account_index(account), text)
        h = self._cid_handle.get(key)
        if h is None:
            h = self._next_cid
            self._next_cid += 1
            self._cid_text[h] = text
            self._cid_handle[key] = h
        return h

    # -- requests ------------------------------------------------------------------------------------------------------
    def place(self, req: OrderRequest, now_ns: int) -> PlaceResult:
        s = self._sym_ix.get(req.symbol)
        if s is None:
            return PlaceResult(None, (), Rejection(ErrorCode.BAD_SYMBOL, "Invalid symbol."))
        account = req.account
        a = self.account_index(account)
        text = req.client_order_id
        if not text:
            self._auto_cid += 1
            text = f"wb-{self._auto_cid}"
        # _i8 / _i64 inline for the values that need no conversion (a function call each is a microsecond here)
        side, otype, tif, px, qty = req.side, req.type, req.tif, req.px_ticks, req.qty_lots
        small = _SMALL_INTS
        cmd = self._cmd1
        cmd[0] = (
            nb.OP_PLACE, 0, small[side] if side in small else _i8(side), small[otype] if otype in small else _i8(otype),
            small[tif] if tif in small else _i8(tif), s, a,
            px if px.__class__ is int and _I64_MIN <= px <= _I64_MAX else _i64(px),
            qty if qty.__class__ is int and _I64_MIN <= qty <= _I64_MAX else _i64(qty), 0,
            self.intern_client_id(account, text), 0, now_ns,
        )
        res, out = self._submit(cmd, True, own_res=True)
        r = res.item(0)
        if r[_R_CODE]:
            return PlaceResult(None, (), self._rejection(r))
        fills = ()
        if r[_R_N]:  # the number of fills: one EV_TRADE row each
            oid, acc, side, ts = r[_R_ORDER_ID], int(account), int(req.side), int(now_ns)
            fills = tuple(
                Fill(e[_F_TRADE_ID], oid, acc, side, e[_F_FILL_PX], e[_F_FILL_QTY], False, e[_F_COMMISSION], ts)
                for e in out.tolist() if e[_F_KIND] == nb.EV_TRADE
            )
        return PlaceResult(self._view_from_res(r, now_ns), fills)

    def cancel(
        self, account: int, symbol: str, now_ns: int, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> CancelResult:
        s = self._sym_ix.get(symbol)
        if s is None:
            return CancelResult(None, Rejection(ErrorCode.BAD_SYMBOL, "Invalid symbol."))
        if not order_id and not client_order_id:
            return CancelResult(None, Rejection(ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED, _NO_ID))
        a = self.account_index(account)
        cid = 0
        if client_order_id:
            cid = self._cid_handle.get((a, client_order_id), -1)
            if cid < 0:  # never seen: no such order
                return CancelResult(None, Rejection(*MESSAGES[nb.MSG_UNKNOWN_ORDER]))
        cmd = self._cmd1
        cmd[0] = (nb.OP_CANCEL, 0, 0, 0, 0, s, a, 0, 0, _i64(order_id or 0), cid, 0, now_ns)
        res, _ = self._submit(cmd, True, own_res=True)
        r = res.item(0)
        if r[_R["code"]]:
            return CancelResult(None, self._rejection(r))
        return CancelResult(self._view_from_res(r, now_ns))

    def cancel_all(self, account: int, symbol: str, now_ns: int) -> list[OrderView]:
        """Cancel every open order of the account on the symbol; returns them as canceled (last placed first)."""
        s = self._sym_ix.get(symbol)
        a = self._acct_ix.get(int(account))
        if s is None or a is None:
            return []
        ak = a * len(self._sym_names) + s
        off, n = int(self._ol_meta[ak, nb.L_OFF]), int(self._ol_meta[ak, nb.L_N])
        views = [self._view_from_pool(int(o)) for o in self._ol[off : off + n][::-1]]  # the kernel's order
        cmd = self._cmd1
        cmd[0] = (nb.OP_CANCEL_ALL, 0, 0, 0, 0, s, a, 0, 0, 0, 0, 0, now_ns)
        self._submit(cmd, True, own_res=True)
        now_ns = int(now_ns)
        return [_canceled(v, now_ns) for v in views]

    def submit_batch(self, cmds: np.ndarray, *, publish: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Apply a batch of :data:`~workbench.venue.nb.cmd_dt` commands in order.

        Returns ``(res, out)``: one :data:`~workbench.venue.nb.res_dt` row per command and the event rows
        (:data:`~workbench.venue.nb.out_dt`) in the order they happened; accounts and symbols are indices
        (:meth:`account_index`, :meth:`symbol_index`, :attr:`account_ids`). With ``publish`` the events also wait for
        :meth:`poll` (and closed orders enter the history); without it, ``out`` is a view of an internal buffer
        that the next call overwrites (the fast path: nothing is copied).
        """
        if not isinstance(cmds, np.ndarray) or cmds.dtype != nb.cmd_dt:
            raise ConfigError("submit_batch takes a numpy array of workbench.venue.nb.cmd_dt")
        return self._submit(np.ascontiguousarray(cmds), publish)

    def advance(self, now_ns: int) -> None:
        """No market flow of its own: nothing happens between requests."""

    # -- views ------------------------------------------------------------------------------------------------------
    def order(
        self, account: int, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> OrderView | None:
        s = self._sym_ix.get(symbol)
        a = self._acct_ix.get(int(account))
        if s is None or a is None:
            return None
        slot = -1
        if order_id:
            slot = nb.lookup_nb(self._oid_keys, self._oid_vals, int(order_id))
        elif client_order_id:
            slot = nb.lookup_nb(self._cid_keys, self._cid_vals, self._cid_handle.get((a, client_order_id), -1))
        if slot >= 0:
            p = self._pool[slot]
            if p[nb.O_ACCT] == a and p[nb.O_SYM] == s and (
                not client_order_id or self._cid_str(p[nb.O_CID]) == client_order_id
            ):
                return self._view_from_pool(slot)
            return None
        if not order_id:
            order_id = self._history_cid.get((a, client_order_id or ""))
        v = self._history.get(order_id) if order_id else None
        if v is None or v.account != int(account) or v.symbol != symbol:
            return None
        if client_order_id and v.client_order_id != client_order_id:
            return None
        return v

    def open_orders(self, account: int, symbol: str | None = None) -> list[OrderView]:
        """Open orders of the account (on one symbol or all), in order of order id."""
        a = self._acct_ix.get(int(account))
        if a is None:
            return []
        if symbol is None:
            syms = range(len(self._sym_names))
        elif symbol in self._sym_ix:
            syms = [self._sym_ix[symbol]]
        else:
            return []
        views = []
        for s in syms:
            ak = a * len(self._sym_names) + s
            off, n = int(self._ol_meta[ak, nb.L_OFF]), int(self._ol_meta[ak, nb.L_N])
            views.extend(self._view_from_pool(int(o)) for o in self._ol[off : off + n])
        views.sort(key=lambda v: v.order_id)
        return views

    def depth(self, symbol: str, limit: int) -> DepthSnapshot:
        s = self.symbol_index(symbol)
        limit = max(0, int(limit))
        sides = []
        for side in (1, -1):
            buf = np.zeros((limit, 2), np.int64)
            k = nb.levels_nb(self._lv_qty, self._sym, s, side, limit, buf) if limit else 0
            sides.append([(int(p), int(q)) for p, q in buf[:k]])
        return DepthSnapshot(symbol, int(self._sym[s, nb.S_UPD]), sides[0], sides[1])

    def top(self, symbol: str) -> tuple[int | None, int, int | None, int]:
        """(best bid px, its lots, best ask px, its lots); None prices for an empty side."""
        s = self.symbol_index(symbol)
        row = self._sym[s]
        out = []
        for j in (row[nb.S_BB], row[nb.S_BA]):
            if j < 0:
                out += [None, 0]
            else:
                out += [int(row[nb.S_BASE] + j), int(self._lv_qty[row[nb.S_OFF] + j])]
        return out[0], out[1], out[2], out[3]

    def last_update_id(self, symbol: str) -> int:
        return int(self._sym[self.symbol_index(symbol), nb.S_UPD])

    def reference_px(self, symbol: str) -> int:
        """Last trade price of the symbol, or its configured initial price before any trade."""
        return int(self._sym[self.symbol_index(symbol), nb.S_REF])

    @_same_events_as_poll_rows
    def poll(self) -> list[ExecutionReport | TradePrint | LevelChange]:
        """Events since the last poll, in the order they happened (execution reports of reporting accounts)."""
        return self.events_from_rows(self.poll_rows())

    def poll_rows(self) -> np.ndarray:
        """What :meth:`poll` would return, as the kernel's event rows (:data:`~workbench.venue.nb.out_dt`, in order),
        without building an object per event: the fast path of a server fanning out market data. Like ``poll``, it
        takes the events (a later ``poll`` or ``poll_rows`` does not see them again); :meth:`events_from_rows` turns
        rows into the api events. Rows' ``kind`` is :attr:`EV_EXEC`, :attr:`EV_TRADE` or :attr:`EV_LEVEL`; ``sym``
        indexes :attr:`symbol_names`."""
        pending = self._pending
        if not pending:
            return _NO_ROWS
        self._pending = []
        return pending[0] if len(pending) == 1 else np.concatenate(pending)

    def events_from_rows(self, rows) -> list[ExecutionReport | TradePrint | LevelChange]:
        """The api events of event rows (as :meth:`poll` returns them): an array of them, or its ``tolist()``."""
        event = self._event
        return [event(e) for e in (rows.tolist() if isinstance(rows, np.ndarray) else rows)]

    #: Event row kinds (``out_dt["kind"]``), for readers of :meth:`poll_rows`.
    EV_EXEC, EV_TRADE, EV_LEVEL = nb.EV_EXEC, nb.EV_TRADE, nb.EV_LEVEL
    #: Execution type of a canceled order (``out_dt["xtype"]``).
    X_CANCELED = nb.X_CANCELED

    @property
    def symbol_names(self) -> tuple[str, ...]:
        """Symbols by index (the ``sym`` of commands and event rows)."""
        return tuple(self._sym_names)

    # -- internals ------------------------------------------------------------------------------------------------
    def _submit(self, cmds: np.ndarray, publish: bool, own_res: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Run ``cmds``; ``own_res``: a one-command request whose result goes into the engine's reused row (read
        before the next call) instead of a new array."""
        if own_res:
            res = self._res1
            self._res1_bytes[:] = 0  # a memset through the byte view
        else:
            res = np.zeros(len(cmds), nb.res_dt)
        st = self._st
        n_used = int(st[nb.ST_N_OUT])
        if n_used:  # clear the rows of the previous call (a view of them may have been returned); a byte view is
            # a memset, where assigning 0 to a structured array goes field by field (100x slower)
            self._out_u8[: n_used * _OUT_ITEMSIZE] = 0
            st[nb.ST_N_OUT] = 0
        if len(self._out) < 2 * len(cmds):
            self._set_out(np.zeros(_pow2_at_least(2 * len(cmds)), nb.out_dt))
        i = 0
        while True:
            status, i = nb.run_nb(
                cmds, i, res, self._out, self._pool, self._free, self._oid_keys, self._oid_vals, self._cid_keys,
                self._cid_vals, self._sym, self._lv_qty, self._lv_head, self._lv_tail, self._acct, self._bal_free,
                self._bal_locked, self._ol, self._ol_meta, st,
            )
            if status == nb.STATUS_DONE:
                break
            if status == nb.STATUS_OUT_FULL:
                n = int(st[nb.ST_N_OUT])
                out = np.zeros(max(2 * len(self._out), _pow2_at_least(n + int(st[nb.ST_NEED_ROWS]))), nb.out_dt)
                out[:n] = self._out[:n]
                self._set_out(out)
            elif status == nb.STATUS_POOL_FULL:
                self._grow_pool(2 * len(self._pool))
            elif status == nb.STATUS_LIST_FULL:
                self._grow_list(int(st[nb.ST_NEED_AK]))
            elif status == nb.STATUS_OUT_OF_RANGE:
                if not self._fit_window(int(st[nb.ST_NEED_SYM]), int(st[nb.ST_NEED_PX])):
                    st[nb.ST_REFUSE] = i
            else:  # pragma: no cover
                raise AssertionError(f"unknown kernel status {status}")
        n = int(st[nb.ST_N_OUT])
        if publish:
            if not n:
                return res, self._out[:0]
            raw = self._out_u8[: n * _OUT_ITEMSIZE]
            # a byte copy (a structured copy costs ~4x more on small outputs), typed without .view()'s checks
            buf = raw.copy()
            out = np.ndarray(n, nb.out_dt, buf)
            st[nb.ST_N_OUT] = 0
            raw[:] = 0
            self._pending.append(out)
            # closed orders (status FILLED and beyond) enter the history; most requests close none
            if n > 16 or max(buf[_OUT_STATUS_OFFSET::_OUT_ITEMSIZE].tobytes()) >= nb.OS_FILLED:
                self._record_history(out)
            return res, out
        return res, self._out[:n]

    def _set_out(self, out: np.ndarray) -> None:
        self._out = out
        self._out_u8 = out.view(np.uint8)  # kept: making a byte view of a structured array costs a microsecond

    def _grow_pool(self, new_size: int) -> None:
        old = len(self._pool)
        pool = np.zeros((new_size, nb.O_SIZE), np.int64)
        pool[:old] = self._pool
        n_free = int(self._st[nb.ST_N_FREE])
        free = np.zeros(new_size, np.int64)
        free[:n_free] = self._free[:n_free]
        # new slots go under the old free ones, lowest index on top (popped first)
        free[n_free : n_free + new_size - old] = np.arange(new_size - 1, old - 1, -1)
        self._pool, self._free = pool, free
        self._st[nb.ST_N_FREE] = n_free + new_size - old
        h = _pow2_at_least(2 * new_size)
        self._oid_keys = np.full(h, -1, np.int64)
        self._oid_vals = np.zeros(h, np.int64)
        self._cid_keys = np.full(h, -1, np.int64)
        self._cid_vals = np.zeros(h, np.int64)
        nb.rebuild_tables_nb(self._pool, self._free, int(self._st[nb.ST_N_FREE]), self._oid_keys, self._oid_vals,
                             self._cid_keys, self._cid_vals)

    def _grow_list(self, ak: int) -> None:
        meta = self._ol_meta
        caps = meta[:, nb.L_CAP].copy()
        caps[ak] *= 2
        offs = np.concatenate([[0], np.cumsum(caps)[:-1]])
        ol = np.full(int(caps.sum()), -1, np.int64)
        for k in range(len(meta)):
            n = int(meta[k, nb.L_N])
            ol[offs[k] : offs[k] + n] = self._ol[meta[k, nb.L_OFF] : meta[k, nb.L_OFF] + n]
        meta[:, nb.L_OFF] = offs
        meta[:, nb.L_CAP] = caps
        self._ol = ol

    def _fit_window(self, s: int, px: int) -> bool:
        """Move or widen the window of symbol ``s`` to hold ``px`` and every resting level; False if it cannot."""
        row = self._sym[s]
        off, cap, base = int(row[nb.S_OFF]), int(row[nb.S_CAP]), int(row[nb.S_BASE])
        lo, hi = nb.window_bounds_nb(self._lv_head, off, cap)
        plo, phi = (px, px) if lo < 0 else (min(base + lo, px), max(base + hi, px))
        need = phi - plo + 1
        if need > self.max_levels:
            return False
        if cap and need <= cap // 2:
            new_cap = cap  # move only
        else:
            new_cap = min(max(2 * cap, need + need // 2, self.initial_levels), self.max_levels)
        new_base = plo - (new_cap - need) // 2
        self._relayout(s, new_base, new_cap)
        return True

    def _relayout(self, s: int, new_base: int, new_cap: int) -> None:
        sym = self._sym
        caps = sym[:, nb.S_CAP].copy()
        caps[s] = new_cap
        offs = np.concatenate([[0], np.cumsum(caps)[:-1]]).astype(np.int64)
        total = int(caps.sum())
        qty = np.zeros(total, np.int64)
        head = np.full(total, -1, np.int64)
        tail = np.full(total, -1, np.int64)
        for k in range(len(sym)):
            off, cap, base = int(sym[k, nb.S_OFF]), int(sym[k, nb.S_CAP]), int(sym[k, nb.S_BASE])
            shift = base - (new_base if k == s else base)  # old index j -> new index j + shift
            if cap:
                if k == s:
                    lo, hi = nb.window_bounds_nb(self._lv_head, off, cap)
                    a, b = (0, 0) if lo < 0 else (lo, hi + 1)
                else:
                    a, b = 0, cap
                dst = int(offs[k]) + a + shift
                qty[dst : dst + b - a] = self._lv_qty[off + a : off + b]
                head[dst : dst + b - a] = self._lv_head[off + a : off + b]
                tail[dst : dst + b - a] = self._lv_tail[off + a : off + b]
            if k == s:
                for col in (nb.S_BB, nb.S_BA):
                    if sym[k, col] >= 0:
                        sym[k, col] += shift
                sym[k, nb.S_BASE] = new_base
        sym[:, nb.S_OFF] = offs
        sym[:, nb.S_CAP] = caps
        self._lv_qty, self._lv_head, self._lv_tail = qty, head, tail

    def _cid_str(self, handle: int) -> str:
        """The text of a client-id handle; handles a batch used without interning them (or forgotten with the
        history) read as ``"#<n>"``."""
        text = self._cid_text.get(handle)
        return f"#{handle}" if text is None else text

    def _rejection(self, r: tuple) -> Rejection:
        return Rejection(*MESSAGES[r[_R["msg"]]])

    def _view_from_res(self, r: tuple, now_ns: int) -> OrderView:
        return OrderView(
            r[_R["order_id"]], self._cid_str(r[_R["cid"]]), self._acct_ids[r[_R["account"]]],
            self._sym_names[r[_R["sym"]]], r[_R["side"]], _order_type(r[_R["type"]]), _tif(r[_R["tif"]]),
            r[_R["px"]], r[_R["qty"]], r[_R["filled"]], r[_R["quote_filled"]], _status(r[_R["status"]]),
            r[_R["created_ns"]], int(now_ns),
        )

    def _view_from_pool(self, slot: int) -> OrderView:
        p = self._pool[slot].tolist()
        return OrderView(
            p[nb.O_ID], self._cid_str(p[nb.O_CID]), self._acct_ids[p[nb.O_ACCT]], self._sym_names[p[nb.O_SYM]],
            p[nb.O_SIDE], _order_type(p[nb.O_TYPE]), _tif(p[nb.O_TIF]), p[nb.O_PX], p[nb.O_QTY],
            p[nb.O_FILLED], p[nb.O_QFILLED], _status(p[nb.O_STATUS]), p[nb.O_CREATED], p[nb.O_UPDATED],
        )

    def _view_from_row(self, e: tuple) -> OrderView:
        return OrderView(
            e[_F["order_id"]], self._cid_str(e[_F["cid"]]), self._acct_ids[e[_F["account"]]],
            self._sym_names[e[_F["sym"]]], e[_F["side"]], _order_type(e[_F["type"]]), _tif(e[_F["tif"]]),
            e[_F["px"]], e[_F["qty"]], e[_F["filled"]], e[_F["quote_filled"]], _status(e[_F["status"]]),
            e[_F["created_ns"]], e[_F["ts_ns"]],
        )

    def _event(self, e: tuple) -> ExecutionReport | TradePrint | LevelChange:
        kind = e[_F["kind"]]
        sym = self._sym_names[e[_F["sym"]]]
        ts = e[_F["ts_ns"]]
        if kind == nb.EV_LEVEL:
            return LevelChange(sym, e[_F["update_id"]], e[_F["side"]], e[_F["px"]], e[_F["qty"]], ts)
        if kind == nb.EV_TRADE:
            return TradePrint(sym, e[_F["trade_id"]], e[_F["fill_px"]], e[_F["fill_qty"]], e[_F["side"]] < 0, ts)
        xtype = e[_F["xtype"]]
        fill = None
        if xtype == nb.X_TRADE:
            fill = Fill(e[_F["trade_id"]], e[_F["order_id"]], self._acct_ids[e[_F["account"]]], e[_F["side"]],
                        e[_F["fill_px"]], e[_F["fill_qty"]], bool(e[_F["is_maker"]]), e[_F["commission"]], ts)
        return ExecutionReport(_EXEC_NAMES[xtype], self._view_from_row(e), fill, ts)

    def _record_history(self, out: np.ndarray) -> None:
        if len(out) <= 16:  # the common case of a single request: plain Python is faster than numpy here
            rows = [e for e in out.tolist() if e[_F["kind"]] == nb.EV_EXEC and e[_F["status"]] >= 3]
        else:
            rows = out[(out["kind"] == nb.EV_EXEC) & (out["status"] >= 3)].tolist()  # FILLED, CANCELED, EXPIRED
        for e in rows:
            v = self._view_from_row(e)
            self._history[v.order_id] = v
            a = e[_F["account"]]
            self._history_cid[(a, v.client_order_id)] = v.order_id
        excess = len(self._history) - self._history_max
        if excess > 0:
            for oid in list(self._history)[:excess]:
                v = self._history.pop(oid)
                key = (self._acct_ix[v.account], v.client_order_id)
                if self._history_cid.get(key) == oid:
                    del self._history_cid[key]
                    # the client id is forgotten too, unless an open order holds it (else the interning grows forever)
                    h = self._cid_handle.get(key)
                    if h is not None and nb.lookup_nb(self._cid_keys, self._cid_vals, h) < 0:
                        del self._cid_handle[key]
                        del self._cid_text[h]

    def __repr__(self) -> str:
        tops = ", ".join(f"{name}: {self.top(name)}" for name in self._sym_names)
        return f"MatchingEngine({tops}; accounts={len(self._acct_ids)})"


_F = {name: k for k, name in enumerate(nb.out_dt.names)}
_F_KIND, _F_TRADE_ID, _F_FILL_PX, _F_FILL_QTY, _F_COMMISSION = (
    _F["kind"], _F["trade_id"], _F["fill_px"], _F["fill_qty"], _F["commission"])
_OUT_ITEMSIZE = nb.out_dt.itemsize
_OUT_STATUS_OFFSET = nb.out_dt.fields["status"][1]
assert nb.out_dt.fields["status"][0] == np.int8 and nb.OS_FILLED > 0  # read as unsigned bytes above
_SMALL_INTS = {v: v for v in range(-128, 128)}  # _i8 of the values that need no conversion
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_NO_ROWS = np.zeros(0, nb.out_dt)
_NO_ROWS.flags.writeable = False
_R = {name: k for k, name in enumerate(nb.res_dt.names)}
_R_CODE, _R_N, _R_ORDER_ID = _R["code"], _R["n"], _R["order_id"]
_ORDER_TYPES = {int(v): v for v in OrderType}
_TIFS = {int(v): v for v in TimeInForce}
_STATUSES = {int(v): v for v in OrderStatus}


def _order_type(v: int) -> OrderType:
    """``OrderType(v)`` by a dict lookup (enum construction is a slow call on the request path)."""
    return _ORDER_TYPES.get(v) or OrderType(v)


def _tif(v: int) -> TimeInForce:
    return _TIFS.get(v) or TimeInForce(v)


def _status(v: int) -> OrderStatus:
    return _STATUSES.get(v) or OrderStatus(v)


def _i8(v: int) -> int:
    """An enum value for an int8 field; out-of-range values become 0 (no side, type or tif: rejected as
    malformed by the kernel)."""
    v = int(v)
    return v if -128 <= v <= 127 else 0


def _i64(v: int) -> int:
    """A price, size or id clamped to int64: beyond it, the kernel's filters reject it (PRICE_FILTER for a negative
    price, NOTIONAL for a huge one, LOT_SIZE for a huge size) instead of numpy raising OverflowError."""
    return min(max(int(v), -(1 << 63)), (1 << 63) - 1)


def _canceled(v: OrderView, now_ns: int) -> OrderView:
    """``dataclasses.replace(v, status=CANCELED, updated_ns=now_ns)``, built directly (replace is slow)."""
    return OrderView(v.order_id, v.client_order_id, v.account, v.symbol, v.side, v.type, v.tif, v.px_ticks,
                     v.qty_lots, v.filled_lots, v.quote_filled, OrderStatus.CANCELED, v.created_ns, now_ns)
