"""Numba kernels of the matching engine: an L3 order book per symbol, accounts and balances, one batch command kernel.

Everything is integer (ticks, lots, notional units of tick x lot, ppm fees, ns) and lives in flat arrays owned by the
Python facade (:class:`workbench.venue.matching.MatchingEngine`). The kernel never allocates and never writes out of
bounds: when an array is too small it stops *before* applying the command that needs more room and returns a status
(``STATUS_*``) with what it needs in ``st``; the facade grows the array and calls again from that command. A command
is therefore applied whole or not at all.

State
-----
``pool[P, O_*]`` (int64)
    The order slots: one row per resting order (a slot is reused once its order leaves the book: ``free_slots[:n]``
    is a stack of free slots). ``O_PREV``/``O_NEXT`` link the orders of one price level in time priority (FIFO);
    ``O_OLPOS`` is the order's position in its (account, symbol) open list; ``O_LOCKPL`` the amount locked per
    remaining lot (see Balances).
``sym[S, S_*]`` (int64)
    Per symbol: the price window (``S_OFF`` offset into the flat level arrays, ``S_CAP`` width, ``S_BASE`` price of
    index 0), best bid/ask indices (-1 empty), counts of non-empty levels and of resting orders per side, the
    update-id counter (``S_UPD``: one per level change, Binance's ``U``/``u``/``lastUpdateId``), the last trade id,
    the reference price, asset indices and the filters.
``lv_qty, lv_head, lv_tail`` (int64, flat; symbol ``s`` owns ``[off, off + cap)``)
    Total resting lots of a price level and the first/last order slot of its FIFO (-1: none). One array serves both
    sides: a level below the best ask holds bids or nothing, and the other way round.
``acct[A, A_*]``, ``bal_free[A * n_assets]``, ``bal_locked[A * n_assets]``
    Fees (ppm), the unlimited flag, balances per (account, asset).
``ol`` (flat) and ``ol_meta[A * S, 3]`` (offset, capacity, count)
    The dense list of open order slots of each (account, symbol), swap-remove on exit: ``CANCEL_NTH`` is O(1).
``oid_keys/oid_vals``, ``cid_keys/cid_vals``
    Open-addressing hash tables (linear probing, power-of-two size >= 2 x pool, key -1 = empty, backward-shift
    deletion) from order id and from client-id handle to slot, for resting orders only.
``st[ST_*]``
    Global counters (next order id, free slots, output rows) and the needs reported with a status.

Commands (:data:`cmd_dt`) and outputs
-------------------------------------
``OP_PLACE`` places an order; ``OP_CANCEL`` cancels by ``order_id`` (> 0) and/or client-id handle ``cid`` (> 0; when
both are given both must designate the same order); ``OP_CANCEL_NTH`` cancels the open order at position
``nth % n_open`` of the account's open list for that symbol; ``OP_CANCEL_ALL`` cancels all of them (last first).
``flags``: ``F_REL_PX`` makes ``px`` an offset from the best price of the order's own side (if that side is empty:
the opposite best with a one-tick spread, i.e. best ask - 1 for a buy, best bid + 1 for a sell; if both are empty:
the symbol's reference price ``S_REF`` for a buy and ``S_REF + 1`` for a sell; ``S_REF`` is the last trade price, or
the configured initial price); ``F_STP_NONE`` lets the order trade against its own account's orders (default: self-
trade prevention EXPIRE_TAKER).

Each command gets one row of :data:`res_dt` (rejection code and message id, or the order's final state) and appends
event rows to ``out`` (:data:`out_dt`, ``kind`` = ``EV_EXEC`` / ``EV_TRADE`` / ``EV_LEVEL``), in the order they
happen: execution reports (NEW, TRADE, CANCELED, EXPIRED) only for accounts that are not unlimited; one trade print
per match (with both sides' order ids, accounts and commissions, so fills of every account can be rebuilt); one level
change per price level whose total changed during the command (a taker sweeping a level yields one row for it, after
the fills at that level), each taking the next update id of the symbol. A request that is rejected writes no event:
Binance answers it with an error, not an execution report.

Rules (in the order they are checked)
-------------------------------------
symbol and account index, enum values (``MSG_BAD_PARAM``); PRICE_FILTER (limit price <= 0); LOT_SIZE
(``min_qty <= qty <= max_qty``); NOTIONAL (``px * qty >= min_notional``, with the best opposite price for a MARKET
order; a MARKET order facing an empty side skips it and expires unfilled; a notional above ``MAX_NOTIONAL`` = 2**62
is refused too, which keeps every product in int64); duplicate open client id; LIMIT_MAKER that would take; balance.

Balances
--------
Commissions are charged in the quote asset on every fill (Binance charges a buyer in the base asset): ``ceil(px *
qty * fee_ppm / 1e6)``, exactly :func:`workbench.venue.api.commission_units`, negative for a rebate. An order locks
``qty * lock_per_lot``: a SELL locks its base lots (1 per lot); a BUY LIMIT locks ``px + ceil(px * f / 1e6)`` quote
units per lot, with ``f`` the larger of its account's maker and taker rates (0 if both are rebates), so that its
fills, at its price or better, can never take free quote below zero. A MARKET BUY locks nothing: it needs the quote
for one lot at the best ask to be accepted, then fills at each level at most ``free_quote // (px + ceil(px *
taker_ppm / 1e6))`` lots and expires the rest when the quote runs out. Unlimited accounts (the market's own
liquidity) are never checked nor locked; their free balances still move with their fills (they may go negative).

Self-trade prevention EXPIRE_TAKER: when the next resting order to match belongs to the taker's account, the taker's
remainder expires (fills before it stand). A FOK order fills completely at once or expires with no fill; the
liquidity it counts stops at the first order of its own account (which would stop it), unless ``F_STP_NONE``.

Prices outside a symbol's window: a command whose order would rest outside it stops the kernel with
``STATUS_OUT_OF_RANGE`` (``ST_NEED_SYM``, ``ST_NEED_PX``); the facade moves or widens the window, or, when the
window would have to exceed its maximum width, sets ``ST_REFUSE`` to that command, which is then rejected with
``MSG_PERCENT_PRICE`` (Binance's "Filter failure: PERCENT_PRICE_BY_SIDE"). A marketable order that would fill
completely never needs the window to reach its limit price.

The main loop is flat (a small @njit helper taking the arrays, called per event, was measured 3.3x slower in the book
kernel); the few helpers below are ``inline='always'`` or are called on rare paths only (FOK, out-of-window).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "cmd_dt",
    "res_dt",
    "out_dt",
    "OP_PLACE",
    "OP_CANCEL",
    "OP_CANCEL_NTH",
    "OP_CANCEL_ALL",
    "F_REL_PX",
    "F_STP_NONE",
    "EV_EXEC",
    "EV_TRADE",
    "EV_LEVEL",
    "X_NEW",
    "X_TRADE",
    "X_CANCELED",
    "X_EXPIRED",
    "STATUS_DONE",
    "STATUS_OUT_FULL",
    "STATUS_POOL_FULL",
    "STATUS_LIST_FULL",
    "STATUS_OUT_OF_RANGE",
    "MSG_OK",
    "MSG_PRICE_FILTER",
    "MSG_LOT_SIZE",
    "MSG_NOTIONAL",
    "MSG_BAD_SYMBOL",
    "MSG_DUPLICATE",
    "MSG_WOULD_TAKE",
    "MSG_BALANCE",
    "MSG_UNKNOWN_ORDER",
    "MSG_BAD_PARAM",
    "MSG_PERCENT_PRICE",
    "MAX_NOTIONAL",
    "run_nb",
    "commission_nb",
    "levels_nb",
    "lookup_nb",
    "rebuild_tables_nb",
    "window_bounds_nb",
]

# -- formats ---------------------------------------------------------------------------------------------------------

#: One command. ``sym`` and ``account`` are indices (see the facade's ``symbol_index`` / ``account_index``), ``cid``
#: a client-id handle (0: none). ``px`` is the limit price in ticks, or the offset with ``F_REL_PX``.
cmd_dt = np.dtype(
    [
        ("op", np.int8),
        ("flags", np.int8),
        ("side", np.int8),      # +1 BUY, -1 SELL
        ("type", np.int8),      # api.OrderType
        ("tif", np.int8),       # api.TimeInForce (ignored for MARKET; GTC for LIMIT_MAKER)
        ("sym", np.int32),
        ("account", np.int64),
        ("px", np.int64),
        ("qty", np.int64),
        ("order_id", np.int64),  # OP_CANCEL target
        ("cid", np.int64),
        ("nth", np.int64),       # OP_CANCEL_NTH position (taken modulo the number of open orders)
        ("ts_ns", np.int64),
    ],
    align=True,
)

#: The outcome of one command. ``code`` is an api.ErrorCode (0 when accepted) and ``msg`` a ``MSG_*`` id. For an
#: accepted place or a single cancel: the order's final state (``status`` an api.OrderStatus); ``n`` counts the
#: fills of a place and the orders canceled by a cancel.
res_dt = np.dtype(
    [
        ("code", np.int32),
        ("msg", np.int16),
        ("status", np.int8),
        ("side", np.int8),
        ("type", np.int8),
        ("tif", np.int8),
        ("sym", np.int32),
        ("account", np.int64),
        ("order_id", np.int64),
        ("cid", np.int64),
        ("px", np.int64),
        ("qty", np.int64),
        ("filled", np.int64),
        ("quote_filled", np.int64),
        ("created_ns", np.int64),
        ("n", np.int64),
    ],
    align=True,
)

#: One event. ``EV_EXEC``: an execution report (``xtype`` ``X_*``) with the order's state after the change
#: (``order_id`` .. ``created_ns``) and, for ``X_TRADE``, the fill (``trade_id``, ``fill_px``, ``fill_qty``,
#: ``is_maker``, ``commission``). ``EV_TRADE``: a trade print (``trade_id``, ``fill_px``, ``fill_qty``, ``side`` =
#: the taker's side, the taker's ``order_id``/``account``/``commission`` and the maker's). ``EV_LEVEL``: a level's new
#: total (``side``, ``px``, ``qty``; 0 deletes) and its ``update_id``. ``cmd`` is the index of the command in its
#: batch.
out_dt = np.dtype(
    [
        ("kind", np.int8),
        ("xtype", np.int8),
        ("status", np.int8),
        ("side", np.int8),
        ("type", np.int8),
        ("tif", np.int8),
        ("is_maker", np.int8),
        ("sym", np.int32),
        ("cmd", np.int64),
        ("ts_ns", np.int64),
        ("order_id", np.int64),
        ("account", np.int64),
        ("px", np.int64),
        ("qty", np.int64),
        ("filled", np.int64),
        ("quote_filled", np.int64),
        ("cid", np.int64),
        ("created_ns", np.int64),
        ("trade_id", np.int64),
        ("fill_px", np.int64),
        ("fill_qty", np.int64),
        ("commission", np.int64),
        ("maker_order_id", np.int64),
        ("maker_account", np.int64),
        ("maker_commission", np.int64),
        ("update_id", np.int64),
    ],
    align=True,
)

# -- constants (module-level ints: numba folds them) -----------------------------------------------------------------

OP_PLACE = 1
OP_CANCEL = 2
OP_CANCEL_NTH = 3
OP_CANCEL_ALL = 4

F_REL_PX = 1
F_STP_NONE = 2

EV_EXEC = 1
EV_TRADE = 2
EV_LEVEL = 3

# execution types (Binance's ``x``); REJECTED is never written: a rejected request is a result, not an event
X_NEW = 1
X_TRADE = 2
X_CANCELED = 3
X_EXPIRED = 5

# api.OrderType / TimeInForce / OrderStatus values
T_LIMIT = 1
T_MARKET = 2
T_LIMIT_MAKER = 3
TIF_GTC = 1
TIF_IOC = 2
TIF_FOK = 3
OS_NEW = 1
OS_PARTIALLY_FILLED = 2
OS_FILLED = 3
OS_CANCELED = 4
OS_EXPIRED = 6

# rejection messages (the facade holds the texts) and their api.ErrorCode values
MSG_OK = 0
MSG_PRICE_FILTER = 1
MSG_LOT_SIZE = 2
MSG_NOTIONAL = 3
MSG_BAD_SYMBOL = 4
MSG_DUPLICATE = 5
MSG_WOULD_TAKE = 6
MSG_BALANCE = 7
MSG_UNKNOWN_ORDER = 8
MSG_BAD_PARAM = 9
MSG_PERCENT_PRICE = 10
C_FILTER = -1013
C_BAD_SYMBOL = -1121
C_BAD_PARAM = -1102
C_NEW_REJECTED = -2010
C_CANCEL_REJECTED = -2011

STATUS_DONE = 0
STATUS_OUT_FULL = 1     # out has fewer free rows than the returned command may need (ST_NEED_ROWS)
STATUS_POOL_FULL = 2    # no free order slot
STATUS_LIST_FULL = 3    # the open list ST_NEED_AK is full
STATUS_OUT_OF_RANGE = 4  # the order would rest at ST_NEED_PX outside the window of symbol ST_NEED_SYM

PPM = 1_000_000
MAX_NOTIONAL = 1 << 62  # px * qty above this is refused (NOTIONAL): lock amounts (<= 2 x notional) stay in int64

# pool columns
O_ID = 0
O_ACCT = 1
O_SYM = 2
O_SIDE = 3
O_TYPE = 4
O_TIF = 5
O_PX = 6
O_QTY = 7
O_FILLED = 8
O_QFILLED = 9
O_STATUS = 10
O_CID = 11
O_CREATED = 12
O_UPDATED = 13
O_PREV = 14
O_NEXT = 15
O_OLPOS = 16
O_LOCKPL = 17
O_SIZE = 18

# per-symbol state columns
S_OFF = 0
S_CAP = 1
S_BASE = 2
S_BB = 3       # best bid index, -1 if none
S_BA = 4       # best ask index, -1 if none
S_NBL = 5      # non-empty bid levels
S_NAL = 6      # non-empty ask levels
S_NBO = 7      # resting bid orders
S_NAO = 8      # resting ask orders
S_UPD = 9      # last update id
S_TID = 10     # last trade id
S_REF = 11     # reference price: last trade, or the configured initial price
S_BASE_ASSET = 12
S_QUOTE_ASSET = 13
S_MINQ = 14
S_MAXQ = 15
S_MINNOT = 16
S_SIZE = 17

# per-account columns
A_MAKER = 0
A_TAKER = 1
A_UNLIMITED = 2
A_SIZE = 3

# open-list meta columns
L_OFF = 0
L_CAP = 1
L_N = 2

# global state
ST_N_OUT = 0       # rows written to out
ST_N_FREE = 1      # free slots on the stack
ST_NEXT_OID = 2    # next order id
ST_N_ASSETS = 3
ST_REFUSE = 4      # index of a command to reject with MSG_PERCENT_PRICE (-1: none)
ST_NEED_ROWS = 5
ST_NEED_SYM = 6
ST_NEED_PX = 7
ST_NEED_AK = 8
ST_SIZE = 9


# -- helpers -----------------------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def commission_nb(notional, fee_ppm):
    """``ceil(notional * fee_ppm / 1e6)`` without overflow (as :func:`workbench.venue.api.commission_units`)."""
    hi = notional // PPM
    lo = notional - hi * PPM
    return hi * fee_ppm - ((-lo * fee_ppm) // PPM)


@njit(cache=True, inline="always")
def _hash_find(keys, key):
    mask = keys.shape[0] - 1
    h = key & mask
    while keys[h] != -1 and keys[h] != key:
        h = (h + 1) & mask
    return h  # keys[h] == key if present, else the empty slot ending the probe


@njit(cache=True, inline="always")
def _hash_put(keys, vals, key, val):
    h = _hash_find(keys, key)
    keys[h] = key
    vals[h] = val


@njit(cache=True, inline="always")
def _hash_del(keys, vals, key):
    """Remove ``key`` (present) with backward-shift deletion: no tombstones, probes stay short."""
    mask = keys.shape[0] - 1
    i = _hash_find(keys, key)
    j = i
    while True:
        j = (j + 1) & mask
        kj = keys[j]
        if kj == -1:
            break
        home = kj & mask
        # keys[j] may move to i unless its home lies cyclically in (i, j]
        if i <= j:
            stays = i < home <= j
        else:
            stays = home > i or home <= j
        if not stays:
            keys[i] = kj
            vals[i] = vals[j]
            i = j
    keys[i] = -1


@njit(cache=True, inline="always")
def _ol_remove(ol, ol_meta, pool, ak, pos):
    """Swap-remove position ``pos`` of the open list ``ak``."""
    off = ol_meta[ak, L_OFF]
    n = ol_meta[ak, L_N] - 1
    last = ol[off + n]
    ol[off + pos] = last
    pool[last, O_OLPOS] = pos
    ol_meta[ak, L_N] = n


@njit(cache=True, inline="always")
def _exec_row(out, o, xtype, s, cmd, ts, oid, a, side, otype, tif, px, qty, filled, qfilled, status, cid, created):
    r = out[o]
    r["kind"] = EV_EXEC
    r["xtype"] = xtype
    r["sym"] = s
    r["cmd"] = cmd
    r["ts_ns"] = ts
    r["order_id"] = oid
    r["account"] = a
    r["side"] = side
    r["type"] = otype
    r["tif"] = tif
    r["px"] = px
    r["qty"] = qty
    r["filled"] = filled
    r["quote_filled"] = qfilled
    r["status"] = status
    r["cid"] = cid
    r["created_ns"] = created


@njit(cache=True, inline="always")
def _level_row(out, o, s, cmd, ts, upd, side, px, qty):
    r = out[o]
    r["kind"] = EV_LEVEL
    r["sym"] = s
    r["cmd"] = cmd
    r["ts_ns"] = ts
    r["update_id"] = upd
    r["side"] = side
    r["px"] = px
    r["qty"] = qty


@njit(cache=True)
def _fillable_nb(pool, lv_head, off, cap, base, j, n_levels, side, px, a, stp, want):
    """Lots a ``side`` taker limited at ``px`` could fill now, counting at most ``want`` and stopping at the first
    order of account ``a`` when ``stp`` (rare paths: FOK, and an order whose price lies outside the window)."""
    total = 0
    step = 1 if side > 0 else -1
    seen = 0
    while 0 <= j < cap and seen < n_levels:
        if (side > 0 and base + j > px) or (side < 0 and base + j < px):
            break
        o = lv_head[off + j]
        if o >= 0:
            seen += 1
        while o >= 0:
            if stp and pool[o, O_ACCT] == a:
                return total
            total += pool[o, O_QTY] - pool[o, O_FILLED]
            if total >= want:
                return total
            o = pool[o, O_NEXT]
        j += step
    return total


# -- the command kernel ------------------------------------------------------------------------------------------------


@njit(cache=True)
def run_nb(cmds, start, res, out, pool, free_slots, oid_keys, oid_vals, cid_keys, cid_vals, sym, lv_qty, lv_head,
           lv_tail, acct, bal_free, bal_locked, ol, ol_meta, st):
    """Apply ``cmds[start:]``; write ``res[i]`` per command and event rows to ``out`` from ``st[ST_N_OUT]`` on.

    Returns ``(status, i)``: ``STATUS_DONE`` and ``len(cmds)``, or another ``STATUS_*`` and the index of the command
    that was not applied (nothing of it), with what it needs in ``st`` (see the module docstring).
    """
    n_cmd = cmds.shape[0]
    out_cap = out.shape[0]
    n_sym = sym.shape[0]
    n_acct = acct.shape[0]
    n_out = st[ST_N_OUT]
    n_free = st[ST_N_FREE]
    next_oid = st[ST_NEXT_OID]
    n_assets = st[ST_N_ASSETS]
    refuse = st[ST_REFUSE]
    status = STATUS_DONE
    i = start
    while i < n_cmd:
        c = cmds[i]
        r = res[i]
        op = c["op"]
        s = c["sym"]
        a = c["account"]
        ts = c["ts_ns"]
        if s < 0 or s >= n_sym:
            r["code"] = C_BAD_SYMBOL
            r["msg"] = MSG_BAD_SYMBOL
            i += 1
            continue
        if a < 0 or a >= n_acct or op < OP_PLACE or op > OP_CANCEL_ALL:
            r["code"] = C_BAD_PARAM
            r["msg"] = MSG_BAD_PARAM
            i += 1
            continue
        off = sym[s, S_OFF]
        cap = sym[s, S_CAP]
        base = sym[s, S_BASE]
        bb = sym[s, S_BB]
        ba = sym[s, S_BA]
        ak = a * n_sym + s
        if op == OP_PLACE:
            side = np.int64(c["side"])
            otype = np.int64(c["type"])
            tif = np.int64(c["tif"])
            qty = c["qty"]
            flags = c["flags"]
            cid = c["cid"]
            if otype == T_LIMIT_MAKER:
                tif = TIF_GTC
            elif otype == T_MARKET:
                tif = TIF_IOC
            if (side != 1 and side != -1) or otype < T_LIMIT or otype > T_LIMIT_MAKER or tif < TIF_GTC \
                    or tif > TIF_FOK or cid < 0:
                r["code"] = C_BAD_PARAM
                r["msg"] = MSG_BAD_PARAM
                i += 1
                continue
            # the limit price (0 for MARKET)
            px = np.int64(0)
            if otype != T_MARKET:
                if flags & F_REL_PX:
                    if side > 0:
                        if bb >= 0:
                            px = base + bb
                        elif ba >= 0:
                            px = base + ba - 1
                        else:
                            px = sym[s, S_REF]
                    else:
                        if ba >= 0:
                            px = base + ba
                        elif bb >= 0:
                            px = base + bb + 1
                        else:
                            px = sym[s, S_REF] + 1
                    px += c["px"]
                else:
                    px = c["px"]
            r["px"] = px
            if otype != T_MARKET and px <= 0:
                r["code"] = C_FILTER
                r["msg"] = MSG_PRICE_FILTER
                i += 1
                continue
            if qty < sym[s, S_MINQ] or qty > sym[s, S_MAXQ] or qty <= 0:
                r["code"] = C_FILTER
                r["msg"] = MSG_LOT_SIZE
                i += 1
                continue
            npx = px
            if otype == T_MARKET:
                npx = 0
                if side > 0 and ba >= 0:
                    npx = base + ba
                elif side < 0 and bb >= 0:
                    npx = base + bb
            if npx > 0 and (npx > MAX_NOTIONAL // qty or npx * qty < sym[s, S_MINNOT]):
                r["code"] = C_FILTER
                r["msg"] = MSG_NOTIONAL
                i += 1
                continue
            if cid > 0 and cid_keys[_hash_find(cid_keys, cid)] == cid:
                r["code"] = C_NEW_REJECTED
                r["msg"] = MSG_DUPLICATE
                i += 1
                continue
            if otype == T_LIMIT_MAKER and ((side > 0 and ba >= 0 and base + ba <= px)
                                           or (side < 0 and bb >= 0 and base + bb >= px)):
                r["code"] = C_NEW_REJECTED
                r["msg"] = MSG_WOULD_TAKE
                i += 1
                continue
            unl = acct[a, A_UNLIMITED] != 0
            taker_fee = acct[a, A_TAKER]
            qa = a * n_assets + sym[s, S_QUOTE_ASSET]
            bas = a * n_assets + sym[s, S_BASE_ASSET]
            lockpl = np.int64(0)
            if not unl:
                if side < 0:
                    lockpl = 1
                    if bal_free[bas] < qty:
                        r["code"] = C_NEW_REJECTED
                        r["msg"] = MSG_BALANCE
                        i += 1
                        continue
                elif otype != T_MARKET:
                    fmax = max(acct[a, A_MAKER], taker_fee, 0)
                    lockpl = px + commission_nb(px, fmax)
                    if bal_free[qa] < qty * lockpl:
                        r["code"] = C_NEW_REJECTED
                        r["msg"] = MSG_BALANCE
                        i += 1
                        continue
                elif ba >= 0:
                    apx = base + ba
                    if bal_free[qa] < apx + commission_nb(apx, max(taker_fee, 0)):
                        r["code"] = C_NEW_REJECTED
                        r["msg"] = MSG_BALANCE
                        i += 1
                        continue
            # the room this command may need; nothing is applied before these checks
            n_opp = sym[s, S_NAO] if side > 0 else sym[s, S_NBO]
            need = 6 + 4 * min(n_opp, qty)
            if n_out + need > out_cap:
                st[ST_NEED_ROWS] = need
                status = STATUS_OUT_FULL
                break
            can_rest = otype == T_LIMIT_MAKER or tif == TIF_GTC
            stp = (flags & F_STP_NONE) == 0
            if can_rest:
                if n_free == 0:
                    status = STATUS_POOL_FULL
                    break
                if ol_meta[ak, L_N] == ol_meta[ak, L_CAP]:
                    st[ST_NEED_AK] = ak
                    status = STATUS_LIST_FULL
                    break
                jp = px - base
                if jp < 0 or jp >= cap:
                    if i == refuse:
                        st[ST_REFUSE] = -1
                        refuse = -1
                        r["code"] = C_FILTER
                        r["msg"] = MSG_PERCENT_PRICE
                        i += 1
                        continue
                    # it needs the window only if a remainder would rest
                    jo = ba if side > 0 else bb
                    n_lv = sym[s, S_NAL] if side > 0 else sym[s, S_NBL]
                    if jo < 0 or _fillable_nb(pool, lv_head, off, cap, base, jo, n_lv, side, px, a, stp, qty) < qty:
                        st[ST_NEED_SYM] = s
                        st[ST_NEED_PX] = px
                        status = STATUS_OUT_OF_RANGE
                        break
            # accepted
            oid = next_oid
            next_oid += 1
            if lockpl != 0:
                bal_free[qa if side > 0 else bas] -= qty * lockpl
                bal_locked[qa if side > 0 else bas] += qty * lockpl
            report = not unl
            if report:
                _exec_row(out, n_out, X_NEW, s, i, ts, oid, a, side, otype, tif, px, qty, 0, 0, OS_NEW, cid, ts)
                n_out += 1
            rem = qty
            filled = np.int64(0)
            qfilled = np.int64(0)
            n_fills = 0
            ostatus = OS_NEW
            stopped = False  # self-trade or quote exhausted: the remainder expires
            if tif == TIF_FOK:
                jo = ba if side > 0 else bb
                n_lv = sym[s, S_NAL] if side > 0 else sym[s, S_NBL]
                if jo < 0 or _fillable_nb(pool, lv_head, off, cap, base, jo, n_lv, side, px, a, stp, qty) < qty:
                    stopped = True
            if not stopped:
                upd = sym[s, S_UPD]
                tid = sym[s, S_TID]
                nbl = sym[s, S_NBL]
                nal = sym[s, S_NAL]
                n_mk = np.int64(0)  # makers that left the book
                last_px = np.int64(0)
                tpos = max(taker_fee, 0)
                while rem > 0:
                    j = ba if side > 0 else bb
                    if j < 0:
                        break
                    lpx = base + j
                    if otype != T_MARKET and ((side > 0 and lpx > px) or (side < 0 and lpx < px)):
                        break
                    lvi = off + j
                    o = lv_head[lvi]
                    lvl_filled = np.int64(0)
                    while o >= 0 and rem > 0:
                        ma = pool[o, O_ACCT]
                        if ma == a and stp:
                            stopped = True
                            break
                        q = min(rem, pool[o, O_QTY] - pool[o, O_FILLED])
                        if side > 0 and otype == T_MARKET and not unl:
                            afford = bal_free[qa] // (lpx + commission_nb(lpx, tpos))
                            if afford < q:
                                q = afford
                            if q <= 0:
                                stopped = True
                                break
                        notional = lpx * q
                        tcomm = commission_nb(notional, taker_fee)
                        mcomm = commission_nb(notional, acct[ma, A_MAKER])
                        tid += 1
                        n_fills += 1
                        last_px = lpx
                        # taker balances
                        if side > 0:
                            bal_locked[qa] -= q * lockpl
                            bal_free[qa] += q * lockpl - notional - tcomm
                            bal_free[bas] += q
                        else:
                            bal_locked[bas] -= q * lockpl
                            bal_free[bas] += q * lockpl - q
                            bal_free[qa] += notional - tcomm
                        # maker balances
                        mq = ma * n_assets + sym[s, S_QUOTE_ASSET]
                        mb = ma * n_assets + sym[s, S_BASE_ASSET]
                        mlp = pool[o, O_LOCKPL]
                        if side > 0:  # the maker sells
                            bal_locked[mb] -= q * mlp
                            bal_free[mb] += q * mlp - q
                            bal_free[mq] += notional - mcomm
                        else:
                            bal_locked[mq] -= q * mlp
                            bal_free[mq] += q * mlp - notional - mcomm
                            bal_free[mb] += q
                        rem -= q
                        filled += q
                        qfilled += notional
                        ostatus = OS_FILLED if rem == 0 else OS_PARTIALLY_FILLED
                        mfilled = pool[o, O_FILLED] + q
                        pool[o, O_FILLED] = mfilled
                        pool[o, O_QFILLED] += notional
                        pool[o, O_UPDATED] = ts
                        mdone = mfilled == pool[o, O_QTY]
                        mstatus = OS_FILLED if mdone else OS_PARTIALLY_FILLED
                        pool[o, O_STATUS] = mstatus
                        lv_qty[lvi] -= q
                        lvl_filled += q
                        if report:
                            _exec_row(out, n_out, X_TRADE, s, i, ts, oid, a, side, otype, tif, px, qty, filled,
                                      qfilled, ostatus, cid, ts)
                            rr = out[n_out]
                            rr["trade_id"] = tid
                            rr["fill_px"] = lpx
                            rr["fill_qty"] = q
                            rr["is_maker"] = 0
                            rr["commission"] = tcomm
                            n_out += 1
                        if acct[ma, A_UNLIMITED] == 0:
                            _exec_row(out, n_out, X_TRADE, s, i, ts, pool[o, O_ID], ma, -side, pool[o, O_TYPE],
                                      pool[o, O_TIF], lpx, pool[o, O_QTY], mfilled, pool[o, O_QFILLED], mstatus,
                                      pool[o, O_CID], pool[o, O_CREATED])
                            rr = out[n_out]
                            rr["trade_id"] = tid
                            rr["fill_px"] = lpx
                            rr["fill_qty"] = q
                            rr["is_maker"] = 1
                            rr["commission"] = mcomm
                            n_out += 1
                        rr = out[n_out]
                        rr["kind"] = EV_TRADE
                        rr["sym"] = s
                        rr["cmd"] = i
                        rr["ts_ns"] = ts
                        rr["trade_id"] = tid
                        rr["fill_px"] = lpx
                        rr["fill_qty"] = q
                        rr["side"] = side
                        rr["order_id"] = oid
                        rr["account"] = a
                        rr["commission"] = tcomm
                        rr["maker_order_id"] = pool[o, O_ID]
                        rr["maker_account"] = ma
                        rr["maker_commission"] = mcomm
                        n_out += 1
                        nxt = pool[o, O_NEXT]
                        if mdone:
                            # the maker leaves the book: it is the head of its level
                            lv_head[lvi] = nxt
                            if nxt >= 0:
                                pool[nxt, O_PREV] = -1
                            else:
                                lv_tail[lvi] = -1
                            _ol_remove(ol, ol_meta, pool, ma * n_sym + s, pool[o, O_OLPOS])
                            _hash_del(oid_keys, oid_vals, pool[o, O_ID])
                            if pool[o, O_CID] > 0:
                                _hash_del(cid_keys, cid_vals, pool[o, O_CID])
                            free_slots[n_free] = o
                            n_free += 1
                            n_mk += 1
                            o = nxt
                        # else the maker keeps its place with what is left: a MARKET buy capped by its balance meets
                        # it again (its own maker fill, when STP is off, may have paid for more lots)
                    if lvl_filled > 0:
                        upd += 1
                        _level_row(out, n_out, s, i, ts, upd, -side, lpx, lv_qty[lvi])
                        n_out += 1
                    if lv_head[lvi] >= 0:
                        break  # the level still holds orders: the taker is done, stopped, or out of quote
                    # the level emptied: the next best level of that side
                    if side > 0:
                        nal -= 1
                        jj = j + 1
                        if nal > 0:
                            while lv_head[off + jj] < 0:
                                jj += 1
                            ba = jj
                        else:
                            ba = -1
                    else:
                        nbl -= 1
                        jj = j - 1
                        if nbl > 0:
                            while lv_head[off + jj] < 0:
                                jj -= 1
                            bb = jj
                        else:
                            bb = -1
                    if stopped:
                        break
                if side > 0:
                    sym[s, S_NAO] -= n_mk
                else:
                    sym[s, S_NBO] -= n_mk
                if n_fills > 0:
                    sym[s, S_REF] = last_px
                sym[s, S_TID] = tid
                sym[s, S_NBL] = nbl
                sym[s, S_NAL] = nal
                sym[s, S_BB] = bb
                sym[s, S_BA] = ba
                sym[s, S_UPD] = upd
            if rem > 0 and can_rest and not stopped:
                # rest the remainder at the tail of its level
                n_free -= 1
                o = free_slots[n_free]
                pool[o, O_ID] = oid
                pool[o, O_ACCT] = a
                pool[o, O_SYM] = s
                pool[o, O_SIDE] = side
                pool[o, O_TYPE] = otype
                pool[o, O_TIF] = tif
                pool[o, O_PX] = px
                pool[o, O_QTY] = qty
                pool[o, O_FILLED] = filled
                pool[o, O_QFILLED] = qfilled
                pool[o, O_STATUS] = ostatus
                pool[o, O_CID] = cid
                pool[o, O_CREATED] = ts
                pool[o, O_UPDATED] = ts
                pool[o, O_LOCKPL] = lockpl
                pool[o, O_NEXT] = -1
                j = px - base
                lvi = off + j
                tail = lv_tail[lvi]
                pool[o, O_PREV] = tail
                if tail >= 0:
                    pool[tail, O_NEXT] = o
                else:
                    lv_head[lvi] = o
                    if side > 0:
                        sym[s, S_NBL] += 1
                        if bb < 0 or j > bb:
                            sym[s, S_BB] = j
                    else:
                        sym[s, S_NAL] += 1
                        if ba < 0 or j < ba:
                            sym[s, S_BA] = j
                lv_tail[lvi] = o
                lv_qty[lvi] += rem
                if side > 0:
                    sym[s, S_NBO] += 1
                else:
                    sym[s, S_NAO] += 1
                upd = sym[s, S_UPD] + 1
                sym[s, S_UPD] = upd
                _level_row(out, n_out, s, i, ts, upd, side, px, lv_qty[lvi])
                n_out += 1
                lo = ol_meta[ak, L_OFF]
                ln = ol_meta[ak, L_N]
                ol[lo + ln] = o
                pool[o, O_OLPOS] = ln
                ol_meta[ak, L_N] = ln + 1
                _hash_put(oid_keys, oid_vals, oid, o)
                if cid > 0:
                    _hash_put(cid_keys, cid_vals, cid, o)
            elif rem > 0:
                ostatus = OS_EXPIRED
                if lockpl != 0:
                    bal_free[qa if side > 0 else bas] += rem * lockpl
                    bal_locked[qa if side > 0 else bas] -= rem * lockpl
                if report:
                    _exec_row(out, n_out, X_EXPIRED, s, i, ts, oid, a, side, otype, tif, px, qty, filled, qfilled,
                              OS_EXPIRED, cid, ts)
                    n_out += 1
            r["status"] = ostatus
            r["side"] = side
            r["type"] = otype
            r["tif"] = tif
            r["sym"] = s
            r["account"] = a
            r["order_id"] = oid
            r["cid"] = cid
            r["qty"] = qty
            r["filled"] = filled
            r["quote_filled"] = qfilled
            r["created_ns"] = ts
            r["n"] = n_fills
        else:
            # OP_CANCEL, OP_CANCEL_NTH, OP_CANCEL_ALL
            n_open = ol_meta[ak, L_N]
            need = 2 * n_open + 2 if op == OP_CANCEL_ALL else 3
            if n_out + need > out_cap:
                st[ST_NEED_ROWS] = need
                status = STATUS_OUT_FULL
                break
            t = np.int64(-1)
            if op == OP_CANCEL:
                oid = c["order_id"]
                cid = c["cid"]
                if oid > 0:
                    h = _hash_find(oid_keys, oid)
                    if oid_keys[h] == oid:
                        t = oid_vals[h]
                        if cid > 0 and pool[t, O_CID] != cid:
                            t = -1
                elif cid > 0:
                    h = _hash_find(cid_keys, cid)
                    if cid_keys[h] == cid:
                        t = cid_vals[h]
                if t >= 0 and (pool[t, O_ACCT] != a or pool[t, O_SYM] != s):
                    t = -1
            elif op == OP_CANCEL_NTH:
                if n_open > 0:
                    t = ol[ol_meta[ak, L_OFF] + c["nth"] % n_open]
            if op != OP_CANCEL_ALL and t < 0:
                r["code"] = C_CANCEL_REJECTED
                r["msg"] = MSG_UNKNOWN_ORDER
                i += 1
                continue
            report = acct[a, A_UNLIMITED] == 0
            qa = a * n_assets + sym[s, S_QUOTE_ASSET]
            bas = a * n_assets + sym[s, S_BASE_ASSET]
            upd = sym[s, S_UPD]
            n_canceled = 0
            while True:
                if op == OP_CANCEL_ALL:
                    ln = ol_meta[ak, L_N]
                    if ln == 0:
                        break
                    t = ol[ol_meta[ak, L_OFF] + ln - 1]
                side = pool[t, O_SIDE]
                rem = pool[t, O_QTY] - pool[t, O_FILLED]
                lp = pool[t, O_LOCKPL]
                if lp != 0:
                    bal_free[qa if side > 0 else bas] += rem * lp
                    bal_locked[qa if side > 0 else bas] -= rem * lp
                px = pool[t, O_PX]
                j = px - base
                lvi = off + j
                prv = pool[t, O_PREV]
                nxt = pool[t, O_NEXT]
                if prv >= 0:
                    pool[prv, O_NEXT] = nxt
                else:
                    lv_head[lvi] = nxt
                if nxt >= 0:
                    pool[nxt, O_PREV] = prv
                else:
                    lv_tail[lvi] = prv
                lv_qty[lvi] -= rem
                if side > 0:
                    sym[s, S_NBO] -= 1
                else:
                    sym[s, S_NAO] -= 1
                if lv_head[lvi] < 0:
                    if side > 0:
                        nbl = sym[s, S_NBL] - 1
                        sym[s, S_NBL] = nbl
                        if j == bb:
                            jj = j - 1
                            if nbl > 0:
                                while lv_head[off + jj] < 0:
                                    jj -= 1
                                bb = jj
                            else:
                                bb = -1
                    else:
                        nal = sym[s, S_NAL] - 1
                        sym[s, S_NAL] = nal
                        if j == ba:
                            jj = j + 1
                            if nal > 0:
                                while lv_head[off + jj] < 0:
                                    jj += 1
                                ba = jj
                            else:
                                ba = -1
                if report:
                    _exec_row(out, n_out, X_CANCELED, s, i, ts, pool[t, O_ID], a, side, pool[t, O_TYPE],
                              pool[t, O_TIF], px, pool[t, O_QTY], pool[t, O_FILLED], pool[t, O_QFILLED],
                              OS_CANCELED, pool[t, O_CID], pool[t, O_CREATED])
                    n_out += 1
                upd += 1
                _level_row(out, n_out, s, i, ts, upd, side, px, lv_qty[lvi])
                n_out += 1
                _ol_remove(ol, ol_meta, pool, ak, pool[t, O_OLPOS])
                _hash_del(oid_keys, oid_vals, pool[t, O_ID])
                if pool[t, O_CID] > 0:
                    _hash_del(cid_keys, cid_vals, pool[t, O_CID])
                free_slots[n_free] = t
                n_free += 1
                n_canceled += 1
                if op != OP_CANCEL_ALL:
                    r["status"] = OS_CANCELED
                    r["side"] = side
                    r["type"] = pool[t, O_TYPE]
                    r["tif"] = pool[t, O_TIF]
                    r["order_id"] = pool[t, O_ID]
                    r["cid"] = pool[t, O_CID]
                    r["px"] = px
                    r["qty"] = pool[t, O_QTY]
                    r["filled"] = pool[t, O_FILLED]
                    r["quote_filled"] = pool[t, O_QFILLED]
                    r["created_ns"] = pool[t, O_CREATED]
                    break
            sym[s, S_BB] = bb
            sym[s, S_BA] = ba
            sym[s, S_UPD] = upd
            r["sym"] = s
            r["account"] = a
            r["n"] = n_canceled
        i += 1
    st[ST_N_OUT] = n_out
    st[ST_N_FREE] = n_free
    st[ST_NEXT_OID] = next_oid
    return status, i


# -- reading and maintenance (called from Python, not per event) -------------------------------------------------------


@njit(cache=True)
def levels_nb(lv_qty, sym, s, side, limit, out):
    """Write up to ``limit`` (px, qty) levels of one side of symbol ``s``, best first, into ``out[limit, 2]``;
    return how many."""
    off = sym[s, S_OFF]
    cap = sym[s, S_CAP]
    base = sym[s, S_BASE]
    k = 0
    if side > 0:
        j = sym[s, S_BB]
        n = sym[s, S_NBL]
        while j >= 0 and k < limit and k < n:
            q = lv_qty[off + j]
            if q > 0:
                out[k, 0] = base + j
                out[k, 1] = q
                k += 1
            j -= 1
    else:
        j = sym[s, S_BA]
        n = sym[s, S_NAL]
        while 0 <= j < cap and k < limit and k < n:
            q = lv_qty[off + j]
            if q > 0:
                out[k, 0] = base + j
                out[k, 1] = q
                k += 1
            j += 1
    return k


@njit(cache=True)
def lookup_nb(keys, vals, key):
    """Slot of ``key`` in a hash table, -1 if absent."""
    if key <= 0:
        return -1
    h = _hash_find(keys, key)
    return vals[h] if keys[h] == key else -1


@njit(cache=True)
def rebuild_tables_nb(pool, free_slots, n_free, oid_keys, oid_vals, cid_keys, cid_vals):
    """Fill the (emptied) hash tables from the resting orders of the pool (every slot not on the free stack)."""
    used = np.ones(pool.shape[0], np.bool_)
    for k in range(n_free):
        used[free_slots[k]] = False
    for o in range(pool.shape[0]):
        if used[o]:
            _hash_put(oid_keys, oid_vals, pool[o, O_ID], o)
            if pool[o, O_CID] > 0:
                _hash_put(cid_keys, cid_vals, pool[o, O_CID], o)


@njit(cache=True)
def window_bounds_nb(lv_head, off, cap):
    """(lowest, highest) index of a non-empty level in a window, (-1, -1) if none."""
    lo = 0
    while lo < cap and lv_head[off + lo] < 0:
        lo += 1
    if lo == cap:
        return -1, -1
    hi = cap - 1
    while lv_head[off + hi] < 0:
        hi -= 1
    return lo, hi
