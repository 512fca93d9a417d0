"""The matching kernel against a plain-Python reference engine on hypothesis-generated command sequences.

:class:`ReferenceEngine` is written the straightforward way (a dict of deques per side with a sorted list of
prices, Python lists and dicts for everything else) from the rules stated in :mod:`workbench.venue.nb`; it shares
no code with the kernel except the command format and the constants. Both run the same commands; results, events,
books, balances and open orders must be equal, whatever the batches the commands are cut into.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.instrument import Instrument
from workbench.venue import nb
from workbench.venue.api import FeeSchedule, SymbolSpec, commission_units
from workbench.venue.matching import MatchingEngine

LIMIT, MARKET, LIMIT_MAKER = 1, 2, 3
GTC, IOC, FOK = 1, 2, 3
NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED = 1, 2, 3, 4, 6

RES_FIELDS = ("code", "msg", "status", "side", "type", "tif", "sym", "account", "order_id", "cid", "px", "qty",
              "filled", "quote_filled", "created_ns", "n")
EXEC_FIELDS = ("xtype", "sym", "cmd", "ts_ns", "order_id", "account", "side", "type", "tif", "px", "qty", "filled",
               "quote_filled", "status", "cid", "created_ns", "trade_id", "fill_px", "fill_qty", "is_maker",
               "commission")
TRADE_FIELDS = ("sym", "cmd", "ts_ns", "trade_id", "fill_px", "fill_qty", "side", "order_id", "account",
                "commission", "maker_order_id", "maker_account", "maker_commission")
LEVEL_FIELDS = ("sym", "cmd", "ts_ns", "update_id", "side", "px", "qty")


def event_tuples(out: np.ndarray) -> list[tuple]:
    """Kernel event rows as comparable tuples (only the fields each kind defines)."""
    rows = []
    for e in out:
        k = int(e["kind"])
        fields = {nb.EV_EXEC: EXEC_FIELDS, nb.EV_TRADE: TRADE_FIELDS, nb.EV_LEVEL: LEVEL_FIELDS}[k]
        rows.append((k,) + tuple(int(e[f]) for f in fields))
    return rows


def res_tuples(res: np.ndarray) -> list[tuple]:
    return [tuple(int(r[f]) for f in RES_FIELDS) for r in res]


@dataclass
class RefOrder:
    order_id: int
    account: int
    sym: int
    side: int
    type: int
    tif: int
    px: int
    qty: int
    filled: int
    quote_filled: int
    status: int
    cid: int
    created_ns: int
    lock_per_lot: int


class ReferenceEngine:
    """Plain-Python matching engine over the kernel's command format (indices for symbols and accounts)."""

    def __init__(self, symbols: list[dict], accounts: list[dict], n_assets: int) -> None:
        # symbols: base, quote (asset indices), min_qty, max_qty, min_notional, ref
        # accounts: maker, taker, unlimited, balances {asset: amount}
        self.symbols = symbols
        self.accounts = accounts
        self.n_assets = n_assets
        self.free = {(a, k): acc.get("balances", {}).get(k, 0) for a, acc in enumerate(accounts)
                     for k in range(n_assets)}
        self.locked = {(a, k): 0 for a in range(len(accounts)) for k in range(n_assets)}
        self.books = [{1: {}, -1: {}} for _ in symbols]          # side -> px -> deque of RefOrder
        self.prices = [{1: [], -1: []} for _ in symbols]          # side -> sorted prices with orders
        self.update_id = [0] * len(symbols)
        self.trade_id = [0] * len(symbols)
        self.ref = [s["ref"] for s in symbols]
        self.open_lists = {}                                       # (a, s) -> list of RefOrder (swap-remove)
        self.by_id = {}                                            # order id -> open RefOrder
        self.by_cid = {}                                           # cid -> open RefOrder
        self.next_id = 1

    # -- book helpers ------------------------------------------------------------------------------------------------
    def best(self, s, side):
        p = self.prices[s][side]
        if not p:
            return None
        return p[-1] if side > 0 else p[0]

    def level_qty(self, s, side, px):
        return sum(o.qty - o.filled for o in self.books[s][side].get(px, ()))

    def depth(self, s, side):
        p = self.prices[s][side]
        order = reversed(p) if side > 0 else p
        return [(px, self.level_qty(s, side, px)) for px in order]

    def _remove_level_if_empty(self, s, side, px):
        if not self.books[s][side][px]:
            del self.books[s][side][px]
            self.prices[s][side].remove(px)

    def _unlist(self, o):
        lst = self.open_lists[(o.account, o.sym)]
        k = next(k for k, x in enumerate(lst) if x is o)
        last = lst.pop()
        if k < len(lst):
            lst[k] = last
        del self.by_id[o.order_id]
        if o.cid:
            del self.by_cid[o.cid]

    def _move(self, a, asset, free=0, locked=0):
        self.free[(a, asset)] += free
        self.locked[(a, asset)] += locked

    # -- commands ------------------------------------------------------------------------------------------------------
    def run(self, cmds) -> tuple[list[tuple], list[tuple]]:
        results, events = [], []
        for i, c in enumerate(cmds):
            r = dict.fromkeys(RES_FIELDS, 0)
            c = {f: int(c[f]) for f in nb.cmd_dt.names}
            self._command(i, c, r, events)
            results.append(tuple(r[f] for f in RES_FIELDS))
        return results, events

    def _command(self, i, c, r, ev):
        s, a, op, ts = c["sym"], c["account"], c["op"], c["ts_ns"]
        if not 0 <= s < len(self.symbols):
            r.update(code=-1121, msg=nb.MSG_BAD_SYMBOL)
            return
        if not 0 <= a < len(self.accounts) or op not in (1, 2, 3, 4):
            r.update(code=-1102, msg=nb.MSG_BAD_PARAM)
            return
        if op == nb.OP_PLACE:
            self._place(i, c, r, ev)
        else:
            self._cancel(i, c, r, ev)

    def _exec(self, ev, xtype, i, ts, o, fill=(0, 0, 0, 0, 0)):
        if self.accounts[o.account]["unlimited"]:
            return
        ev.append((nb.EV_EXEC, xtype, o.sym, i, ts, o.order_id, o.account, o.side, o.type, o.tif, o.px, o.qty,
                   o.filled, o.quote_filled, o.status, o.cid, o.created_ns) + fill)

    def _level(self, ev, s, i, ts, side, px):
        self.update_id[s] += 1
        ev.append((nb.EV_LEVEL, s, i, ts, self.update_id[s], side, px, self.level_qty(s, side, px)))

    def _fillable(self, s, side, px, a, stp):
        total = 0
        for lpx in self.prices[s][-side] if side > 0 else reversed(self.prices[s][-side]):
            if (side > 0 and lpx > px) or (side < 0 and lpx < px):
                break
            for m in self.books[s][-side][lpx]:
                if stp and m.account == a:
                    return total
                total += m.qty - m.filled
        return total

    def _place(self, i, c, r, ev):
        s, a, ts = c["sym"], c["account"], c["ts_ns"]
        spec, acc = self.symbols[s], self.accounts[a]
        side, otype, tif, qty, cid = c["side"], c["type"], c["tif"], c["qty"], c["cid"]
        if otype == LIMIT_MAKER:
            tif = GTC
        elif otype == MARKET:
            tif = IOC
        if side not in (1, -1) or otype not in (1, 2, 3) or tif not in (1, 2, 3) or cid < 0:
            r.update(code=-1102, msg=nb.MSG_BAD_PARAM)
            return
        bid, ask = self.best(s, 1), self.best(s, -1)
        px = 0
        if otype != MARKET:
            if c["flags"] & nb.F_REL_PX:
                if side > 0:
                    own = bid if bid is not None else (ask - 1 if ask is not None else self.ref[s])
                else:
                    own = ask if ask is not None else (bid + 1 if bid is not None else self.ref[s] + 1)
                px = own + c["px"]
            else:
                px = c["px"]
        r["px"] = px
        if otype != MARKET and px <= 0:
            r.update(code=-1013, msg=nb.MSG_PRICE_FILTER)
            return
        if not (spec["min_qty"] <= qty <= spec["max_qty"]) or qty <= 0:
            r.update(code=-1013, msg=nb.MSG_LOT_SIZE)
            return
        npx = px if otype != MARKET else ((ask if side > 0 else bid) or 0)
        if npx > 0 and (npx * qty > nb.MAX_NOTIONAL or npx * qty < spec["min_notional"]):
            r.update(code=-1013, msg=nb.MSG_NOTIONAL)
            return
        if cid > 0 and cid in self.by_cid:
            r.update(code=-2010, msg=nb.MSG_DUPLICATE)
            return
        if otype == LIMIT_MAKER and ((side > 0 and ask is not None and ask <= px)
                                     or (side < 0 and bid is not None and bid >= px)):
            r.update(code=-2010, msg=nb.MSG_WOULD_TAKE)
            return
        base, quote = spec["base"], spec["quote"]
        lock_per_lot = 0
        if not acc["unlimited"]:
            if side < 0:
                lock_per_lot = 1
                ok = self.free[(a, base)] >= qty
            elif otype != MARKET:
                lock_per_lot = px + commission_units(px, 1, max(acc["maker"], acc["taker"], 0))
                ok = self.free[(a, quote)] >= qty * lock_per_lot
            else:
                ok = ask is None or self.free[(a, quote)] >= ask + commission_units(ask, 1, max(acc["taker"], 0))
            if not ok:
                r.update(code=-2010, msg=nb.MSG_BALANCE)
                return
        o = RefOrder(self.next_id, a, s, side, otype, tif, px, qty, 0, 0, NEW, cid, ts, lock_per_lot)
        self.next_id += 1
        lock_asset = quote if side > 0 else base
        self._move(a, lock_asset, -qty * lock_per_lot, qty * lock_per_lot)
        self._exec(ev, nb.X_NEW, i, ts, o)
        stp = not (c["flags"] & nb.F_STP_NONE)
        stopped = tif == FOK and self._fillable(s, side, px, a, stp) < qty
        n_fills = 0
        while not stopped and o.filled < o.qty:
            lpx = self.best(s, -side)
            if lpx is None or (otype != MARKET and (lpx > px if side > 0 else lpx < px)):
                break
            level = self.books[s][-side][lpx]
            touched = False
            while level and o.filled < o.qty:
                m = level[0]
                if stp and m.account == a:
                    stopped = True
                    break
                q = min(o.qty - o.filled, m.qty - m.filled)
                if side > 0 and otype == MARKET and not acc["unlimited"]:
                    per_lot = lpx + commission_units(lpx, 1, max(acc["taker"], 0))
                    q = min(q, self.free[(a, quote)] // per_lot)
                    if q <= 0:
                        stopped = True
                        break
                touched = True
                n_fills += 1
                self.trade_id[s] += 1
                tid = self.trade_id[s]
                notional = lpx * q
                tcomm = commission_units(lpx, q, acc["taker"])
                mcomm = commission_units(lpx, q, self.accounts[m.account]["maker"])
                for x, comm in ((o, tcomm), (m, mcomm)):
                    lp = x.lock_per_lot
                    if x.side > 0:
                        self._move(x.account, quote, q * lp - notional - comm, -q * lp)
                        self._move(x.account, base, q)
                    else:
                        self._move(x.account, base, q * lp - q, -q * lp)
                        self._move(x.account, quote, notional - comm)
                    x.filled += q
                    x.quote_filled += notional
                    x.status = FILLED if x.filled == x.qty else PARTIALLY_FILLED
                self._exec(ev, nb.X_TRADE, i, ts, o, (tid, lpx, q, 0, tcomm))
                self._exec(ev, nb.X_TRADE, i, ts, m, (tid, lpx, q, 1, mcomm))
                ev.append((nb.EV_TRADE, s, i, ts, tid, lpx, q, side, o.order_id, a, tcomm, m.order_id, m.account,
                           mcomm))
                if m.status == FILLED:
                    level.popleft()
                    self._unlist(m)
            if touched:
                self._level(ev, s, i, ts, -side, lpx)
                self.ref[s] = lpx
            if level:
                break
            self._remove_level_if_empty(s, -side, lpx)
        rem = o.qty - o.filled
        can_rest = otype == LIMIT_MAKER or tif == GTC
        if rem and can_rest and not stopped:
            book = self.books[s][side]
            if px not in book:
                book[px] = deque()
                bisect.insort(self.prices[s][side], px)
            book[px].append(o)
            self._level(ev, s, i, ts, side, px)
            self.open_lists.setdefault((a, s), []).append(o)
            self.by_id[o.order_id] = o
            if cid:
                self.by_cid[cid] = o
        elif rem:
            o.status = EXPIRED
            self._move(a, lock_asset, rem * lock_per_lot, -rem * lock_per_lot)
            self._exec(ev, nb.X_EXPIRED, i, ts, o)
        r.update(status=o.status, side=side, type=otype, tif=tif, sym=s, account=a, order_id=o.order_id, cid=cid,
                 qty=qty, filled=o.filled, quote_filled=o.quote_filled, created_ns=ts, n=n_fills)

    def _cancel(self, i, c, r, ev):
        s, a, op, ts = c["sym"], c["account"], c["op"], c["ts_ns"]
        lst = self.open_lists.setdefault((a, s), [])
        targets = []
        if op == nb.OP_CANCEL:
            o = None
            if c["order_id"] > 0:
                o = self.by_id.get(c["order_id"])
                if o is not None and c["cid"] > 0 and o.cid != c["cid"]:
                    o = None
            elif c["cid"] > 0:
                o = self.by_cid.get(c["cid"])
            if o is not None and (o.account != a or o.sym != s):
                o = None
            targets = [o] if o is not None else []
        elif op == nb.OP_CANCEL_NTH:
            targets = [lst[c["nth"] % len(lst)]] if lst else []
        if op != nb.OP_CANCEL_ALL and not targets:
            r.update(code=-2011, msg=nb.MSG_UNKNOWN_ORDER)
            return
        n = 0
        while True:
            if op == nb.OP_CANCEL_ALL:
                if not lst:
                    break
                o = lst[-1]
            else:
                o = targets[0]
            spec = self.symbols[s]
            rem = o.qty - o.filled
            asset = spec["quote"] if o.side > 0 else spec["base"]
            self._move(a, asset, rem * o.lock_per_lot, -rem * o.lock_per_lot)
            self.books[s][o.side][o.px].remove(o)
            self._unlist(o)
            o.status = CANCELED
            self._exec(ev, nb.X_CANCELED, i, ts, o)
            self._level(ev, s, i, ts, o.side, o.px)
            self._remove_level_if_empty(s, o.side, o.px)
            n += 1
            if op != nb.OP_CANCEL_ALL:
                r.update(status=CANCELED, side=o.side, type=o.type, tif=o.tif, order_id=o.order_id, cid=o.cid,
                         px=o.px, qty=o.qty, filled=o.filled, quote_filled=o.quote_filled, created_ns=o.created_ns)
                break
        r.update(sym=s, account=a, n=n)


# -- the comparison --------------------------------------------------------------------------------------------------

BTC = Instrument("BTCUSDT", "0.01", "0.00001")
ETH = Instrument("ETHUSDT", "0.01", "0.0001")


def make_pair(fees, unlimited, balances, *, min_notional=0, min_qty=1, max_qty=50, initial_levels=4,
              max_levels=1 << 16, ref=100):
    specs = [SymbolSpec(BTC, "BTC", "USDT", min_qty, max_qty, min_notional),
             SymbolSpec(ETH, "ETH", "USDT", min_qty, max_qty, min_notional)]
    eng = MatchingEngine(specs, initial_levels=initial_levels, max_levels=max_levels, initial_orders=2,
                         ref_px_ticks={"BTCUSDT": ref, "ETHUSDT": ref})
    accounts = []
    for a, (f, unl, bal) in enumerate(zip(fees, unlimited, balances)):
        assert eng.add_account(a, fees=FeeSchedule(*f), balances=bal, unlimited=unl) == a
        accounts.append({"maker": f[0], "taker": f[1], "unlimited": unl,
                         "balances": {eng.assets.index(k): v for k, v in bal.items()}})
    syms = [{"base": eng.assets.index(sp.base_asset), "quote": eng.assets.index(sp.quote_asset), "min_qty": min_qty,
             "max_qty": max_qty, "min_notional": min_notional, "ref": ref} for sp in specs]
    return eng, ReferenceEngine(syms, accounts, len(eng.assets))


def compare_state(eng: MatchingEngine, ref: ReferenceEngine):
    for s, name in enumerate(eng._sym_names):
        d = eng.depth(name, 10_000)
        assert d.bids == ref.depth(s, 1), name
        assert d.asks == ref.depth(s, -1), name
        assert d.last_update_id == ref.update_id[s]
        assert eng.reference_px(name) == ref.ref[s]
    for a in range(len(ref.accounts)):
        bal = eng.balances(a)
        for k, asset in enumerate(eng.assets):
            assert bal[asset] == (ref.free[(a, k)], ref.locked[(a, k)]), (a, asset)
        for s, name in enumerate(eng._sym_names):
            ak = a * len(eng._sym_names) + s
            off, n = eng._ol_meta[ak, nb.L_OFF], eng._ol_meta[ak, nb.L_N]
            got = [int(eng._pool[o, nb.O_ID]) for o in eng._ol[off : off + n]]
            assert got == [o.order_id for o in ref.open_lists.get((a, s), [])], (a, name)


def decode(n: int, codes: list[int]) -> np.ndarray:
    """Commands from integers, a mixed-radix code each (one hypothesis draw per command keeps generation fast;
    smaller codes decode to simpler commands, so shrinking still works)."""
    cmds = np.zeros(len(codes), nb.cmd_dt)
    for k, code in enumerate(codes):
        def take(m):
            nonlocal code
            code, v = divmod(code, m)
            return v

        c = cmds[k]
        c["op"] = ([1] * 11 + [2, 2, 3, 3, 4])[take(16)]
        c["sym"] = [0, 0, 0, 1][take(4)]
        c["account"] = take(4)
        c["ts_ns"] = 1000 + k
        if c["op"] == nb.OP_PLACE:
            c["side"] = [1, -1][take(2)]
            c["type"] = [1, 1, 1, 2, 3][take(5)]
            c["tif"] = [1, 1, 2, 3][take(4)]
            rel = take(2) == 1
            c["flags"] = (nb.F_REL_PX if rel else 0) | (nb.F_STP_NONE if take(10) == 9 else 0)
            c["px"] = take(7) - 3 if rel else 94 + take(13)
            c["qty"] = 1 + take(12)
            c["cid"] = [0, 0, 1, 2, 3][take(5)]
        elif c["op"] == nb.OP_CANCEL:
            c["order_id"] = take(n + 1)
            c["cid"] = [0, 0, 1, 2, 3][take(5)]
        elif c["op"] == nb.OP_CANCEL_NTH:
            c["nth"] = code
    return cmds


@st.composite
def commands(draw, n_max=120):
    n = draw(st.integers(1, n_max))
    codes = draw(st.lists(st.integers(0, 2**48), min_size=n, max_size=n))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(codes)), max_size=4))))
    return decode(len(codes), codes), cuts


FEES = [(100, 200), (-50, 300), (0, 0), (100, 100)]
UNLIMITED = [False, False, False, True]


def balances_for(seed):
    rich = {"USDT": 10**9, "BTC": 10**4, "ETH": 10**4}
    poor = {"USDT": 3_000 * (seed % 5), "BTC": 15 * (seed % 3), "ETH": 20}
    return [rich, poor, rich, {}]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands(), st.integers(0, 14), st.sampled_from([0, 0, 500]))
def test_kernel_equals_reference(cmd_cuts, seed, min_notional):
    cmds, cuts = cmd_cuts
    eng, ref = make_pair(FEES, UNLIMITED, balances_for(seed), min_notional=min_notional, max_qty=40)
    want_res, want_ev = ref.run(cmds)
    got_res, got_ev = [], []
    for lo, hi in zip([0] + cuts, cuts + [len(cmds)]):
        res, out = eng.submit_batch(cmds[lo:hi], publish=False)
        got_res += res_tuples(res)
        # the event rows name the command by its index in the batch: make it global
        got_ev += [(e[0], e[1], e[2], e[3] + lo) + e[4:] if e[0] == nb.EV_EXEC else
                   (e[0], e[1], e[2] + lo) + e[3:] for e in event_tuples(out)]
    assert got_res == want_res
    assert got_ev == want_ev
    compare_state(eng, ref)


@settings(max_examples=60, deadline=None)
@given(commands(n_max=200), st.integers(0, 14))
def test_facade_events_equal_batch_rows(cmd_cuts, seed):
    """poll() after publishing batches gives one api event per row, same order and values."""
    cmds, _ = cmd_cuts
    eng, _ = make_pair(FEES, UNLIMITED, balances_for(seed))
    res, out = eng.submit_batch(cmds)
    events = eng.poll()
    assert len(events) == len(out)
    for e, row in zip(events, out):
        kind = int(row["kind"])
        name = type(e).__name__
        assert name == {nb.EV_EXEC: "ExecutionReport", nb.EV_TRADE: "TradePrint", nb.EV_LEVEL: "LevelChange"}[kind]
        if kind == nb.EV_LEVEL:
            assert (e.update_id, e.side, e.px_ticks, e.qty_lots) == tuple(
                int(row[f]) for f in ("update_id", "side", "px", "qty"))
        elif kind == nb.EV_TRADE:
            assert (e.trade_id, e.px_ticks, e.qty_lots, e.buyer_is_maker) == (
                int(row["trade_id"]), int(row["fill_px"]), int(row["fill_qty"]), int(row["side"]) < 0)
        else:
            assert e.order.order_id == int(row["order_id"]) and e.order.filled_lots == int(row["filled"])
            assert (e.fill is not None) == (int(row["xtype"]) == nb.X_TRADE)
    assert eng.poll() == []
