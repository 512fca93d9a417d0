"""No order is lost, nothing is created: randomized place/cancel/market sequences over several accounts.

After every batch: every accepted order of a reporting account has a lifecycle NEW -> TRADE* -> (FILLED | CANCELED |
EXPIRED) or is still open, and the open ones are exactly ``open_orders``; each account's base and quote balance
(free + locked) changed by exactly its fills and commissions; base is conserved across accounts and quote up to the
commissions; locked amounts are exactly what the open orders hold; limited accounts never go below zero. After every
command: the public book (rebuilt from level changes) is not crossed; each public level equals the sum of its resting
orders; update ids are consecutive per symbol and trade ids too.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from workbench.instrument import Instrument
from workbench.venue import nb
from workbench.venue.api import ExecutionReport, FeeSchedule, LevelChange, OrderRequest, OrderType, SymbolSpec
from workbench.venue.api import TimeInForce, TradePrint, commission_units
from workbench.venue.matching import MatchingEngine

SPECS = [
    SymbolSpec(Instrument("BTCUSDT", "0.01", "0.00001"), "BTC", "USDT", 1, 60, 0),
    SymbolSpec(Instrument("ETHUSDT", "0.01", "0.0001"), "ETH", "USDT", 1, 60, 2_000),
]
FEES = {0: FeeSchedule(100, 200), 1: FeeSchedule(-50, 300), 2: FeeSchedule(0, 0), 3: FeeSchedule(250, 250),
        4: FeeSchedule(0, 100)}
BALANCES = {a: {"USDT": 40_000_000, "BTC": 3_000, "ETH": 3_000} for a in range(4)}
BALANCES[3] = {"USDT": 300_000, "BTC": 40, "ETH": 40}  # a small account: balance rejections and quote run-outs
LP = 4  # unlimited: the market's own liquidity
TERMINAL = {3, 4, 6}


def random_commands(rng, n, next_oid_hint):
    c = np.zeros(n, nb.cmd_dt)
    u = rng.random(n)
    op = np.select([u < 0.8, u < 0.88, u < 0.93, u < 0.932], [nb.OP_PLACE, nb.OP_CANCEL, nb.OP_CANCEL_NTH,
                                                                nb.OP_CANCEL_ALL], nb.OP_PLACE)
    c["op"] = op
    c["sym"] = rng.choice([0, 0, 1], n)
    c["account"] = rng.choice([0, 1, 2, 3, LP, LP], n)
    side = rng.choice([1, -1], n)
    c["side"] = side
    otype = rng.choice([1, 1, 1, 1, 1, 1, 3, 3, 2], n)
    otype[u >= 0.985] = 2  # a few more marketable orders
    c["type"] = otype
    c["tif"] = rng.choice([1, 1, 1, 1, 1, 2, 3], n)
    rel = rng.random(n) < 0.7
    c["flags"] = np.where(rel, nb.F_REL_PX, 0) | np.where(rng.random(n) < 0.05, nb.F_STP_NONE, 0)
    behind = rng.geometric(0.35, n) - 1
    through = rng.random(n) < 0.04
    c["px"] = np.where(rel, np.where(through, side * rng.integers(1, 4, n), -side * behind),
                       rng.integers(980, 1021, n))
    c["qty"] = np.where(otype == 2, rng.integers(1, 40, n), rng.integers(1, 15, n))
    c["qty"][rng.random(n) < 0.01] = 0  # LOT_SIZE rejections
    c["cid"] = np.where(rng.random(n) < 0.1, rng.integers(1, 6, n), 0)
    c["order_id"] = np.maximum(1, next_oid_hint - rng.integers(0, 100, n))
    c["nth"] = rng.integers(0, 1 << 30, n)
    return c


class Tracker:
    """Everything the invariants need, rebuilt from results and event rows only."""

    def __init__(self, eng: MatchingEngine, accounts):
        self.eng = eng
        self.accounts = accounts
        self.base0 = {a: eng.balances(a) for a in accounts}
        self.delta = defaultdict(int)           # (account, asset) -> change from fills and commissions
        self.commissions = 0
        self.orders = {}                        # order id -> (last status, filled, qty) of reporting accounts
        self.book = [{1: {}, -1: {}} for _ in SPECS]  # public L2 rebuilt from level rows
        self.upd = [0] * len(SPECS)
        self.tid = [0] * len(SPECS)
        self.n_accepted = 0

    def assets(self, s):
        return SPECS[s].base_asset, SPECS[s].quote_asset

    def crossed(self, s):
        b, a = self.book[s][1], self.book[s][-1]
        return bool(b) and bool(a) and max(b) >= min(a)

    def absorb(self, cmds, res, out, ids):
        last_cmd = -1
        placed, after_place = {}, {}  # order id -> its placing command; its state at the end of that command
        for e in out.tolist():
            kind, s, cmd = e[F["kind"]], e[F["sym"]], e[F["cmd"]]
            if cmd != last_cmd:
                if last_cmd >= 0:
                    assert not any(self.crossed(k) for k in range(len(SPECS))), f"crossed after command {last_cmd}"
                last_cmd = cmd
            if kind == nb.EV_LEVEL:
                self.upd[s] += 1
                assert e[F["update_id"]] == self.upd[s]
                lv = self.book[s][e[F["side"]]]
                if e[F["qty"]]:
                    lv[e[F["px"]]] = e[F["qty"]]
                else:
                    del lv[e[F["px"]]]
            elif kind == nb.EV_TRADE:
                self.tid[s] += 1
                assert e[F["trade_id"]] == self.tid[s]
                side, px, q = e[F["side"]], e[F["fill_px"]], e[F["fill_qty"]]
                base, quote = self.assets(s)
                ta, ma = ids[e[F["account"]]], ids[e[F["maker_account"]]]
                tc, mc = e[F["commission"]], e[F["maker_commission"]]
                self.delta[(ta, base)] += side * q
                self.delta[(ta, quote)] -= side * px * q + tc
                self.delta[(ma, base)] -= side * q
                self.delta[(ma, quote)] += side * px * q - mc
                self.commissions += tc + mc
            else:
                x, oid, st, filled, qty = e[F["xtype"]], e[F["order_id"]], e[F["status"]], e[F["filled"]], e[F["qty"]]
                prev = self.orders.get(oid)
                if x == nb.X_NEW:
                    assert prev is None and st == 1 and filled == 0
                else:
                    assert prev is not None and prev[0] not in TERMINAL, f"event after the end of order {oid}"
                    if x == nb.X_TRADE:
                        assert filled == prev[1] + e[F["fill_qty"]] and st in (2, 3) and (st == 3) == (filled == qty)
                    else:
                        assert filled == prev[1] and st == {nb.X_CANCELED: 4, nb.X_EXPIRED: 6}[x]
                self.orders[oid] = (st, filled, qty)
                if x == nb.X_NEW:
                    placed[oid] = cmd
                if placed.get(oid) == cmd:
                    after_place[oid] = (st, filled)
        if last_cmd >= 0:
            assert not any(self.crossed(k) for k in range(len(SPECS)))
        # each accepted order of a reporting account was reported, and its last report is its result
        for r, c in zip(res.tolist(), cmds):
            code, status, oid, filled = r[0], r[2], r[8], r[12]
            if c["op"] == nb.OP_PLACE and code == 0:
                self.n_accepted += 1
                if ids[c["account"]] != LP:
                    assert after_place[oid] == (status, filled), oid

    def check_state(self):
        eng = self.eng
        # the open orders are exactly those whose last report is open
        open_ids = {o for o, (st, _, _) in self.orders.items() if st not in TERMINAL}
        views = [v for a in self.accounts for v in eng.open_orders(a)]
        assert {v.order_id for v in views if v.account != LP} == open_ids
        self.max_open = max(getattr(self, "max_open", 0), len(views))
        for v in views:
            if v.account != LP:
                assert self.orders[v.order_id][1] == v.filled_lots
        # public levels: rebuilt from events == depth == sums of resting orders
        for s, spec in enumerate(SPECS):
            d = eng.depth(spec.symbol, 100_000)
            assert dict(d.bids) == self.book[s][1] and dict(d.asks) == self.book[s][-1]
            assert d.last_update_id == self.upd[s]
            sums = {1: defaultdict(int), -1: defaultdict(int)}
            for v in views:
                if v.symbol == spec.symbol:
                    sums[v.side][v.px_ticks] += v.qty_lots - v.filled_lots
            assert dict(sums[1]) == self.book[s][1] and dict(sums[-1]) == self.book[s][-1]
        # balances: changed by exactly the fills and commissions; locks are what the open orders hold
        total = defaultdict(int)
        for a in self.accounts:
            now = eng.balances(a)
            locked = defaultdict(int)
            if a != LP:
                f = FEES[a]
                fmax = max(f.maker_ppm, f.taker_ppm, 0)
                for v in views:
                    if v.account == a:
                        base, quote = self.assets(0 if v.symbol == "BTCUSDT" else 1)
                        rem = v.qty_lots - v.filled_lots
                        if v.side > 0:
                            locked[quote] += rem * (v.px_ticks + commission_units(v.px_ticks, 1, fmax))
                        else:
                            locked[base] += rem
            for asset, (free, lk) in now.items():
                f0, l0 = self.base0[a][asset]
                assert free + lk - f0 - l0 == self.delta[(a, asset)], (a, asset)
                assert lk == locked[asset], (a, asset)
                if a != LP:
                    assert free >= 0
                total[asset] += self.delta[(a, asset)]
        assert total["BTC"] == 0 and total["ETH"] == 0
        assert total["USDT"] == -self.commissions


F = {name: k for k, name in enumerate(nb.out_dt.names)}


def test_no_order_is_lost_batches():
    rng = np.random.default_rng(20240808)
    eng = MatchingEngine(SPECS, fees=FEES, balances=BALANCES, unlimited=[LP], initial_levels=8, max_levels=4096,
                         initial_orders=4, ref_px_ticks={"BTCUSDT": 1_000, "ETHUSDT": 1_000})
    ids = eng.account_ids
    tr = Tracker(eng, ids)
    n_done = 0
    total = 30_000
    while n_done < total:
        n = int(rng.choice([1, 7, 100, 1000, 3000]))
        cmds = random_commands(rng, n, int(eng._st[nb.ST_NEXT_OID]))
        res, out = eng.submit_batch(cmds, publish=bool(rng.random() < 0.5))
        tr.absorb(cmds, res, out, ids)
        tr.check_state()
        n_done += n
    # the run did exercise the rules
    assert tr.n_accepted > 10_000 and tr.tid[0] > 3_000 and tr.tid[1] > 1_000 and tr.max_open > 300
    statuses = defaultdict(int)
    for st, _, _ in tr.orders.values():
        statuses[st] += 1
    assert all(statuses[k] > 300 for k in (3, 4, 6)), statuses


def test_no_order_is_lost_through_the_venue_methods():
    """The same bookkeeping from the api objects: PlaceResult / CancelResult / cancel_all and poll()."""
    rng = np.random.default_rng(7)
    funds = {a: {k: v for k, v in BALANCES[a].items() if k != "ETH"} for a in range(4)}
    eng = MatchingEngine(SPECS[:1], fees={a: FEES[a] for a in range(4)}, balances=funds, initial_levels=4,
                         initial_orders=2)
    accounts = list(range(4))
    start = {a: eng.balances(a) for a in accounts}
    delta = defaultdict(int)
    last = {}  # order id -> last OrderView seen in an event
    comm = 0
    book = {1: {}, -1: {}}
    for k in range(2_500):
        a = int(rng.integers(0, 4))
        u = rng.random()
        if u < 0.65:
            side = int(rng.choice([1, -1]))
            best = eng.top("BTCUSDT")
            ref = best[0] if side > 0 and best[0] else best[2] if side < 0 and best[2] else 1_000
            px = int(ref - side * (rng.geometric(0.4) - 1) + (side * 2 if rng.random() < 0.1 else 0))
            kind = rng.choice(["limit", "maker", "market"], p=[0.75, 0.1, 0.15])
            tif = TimeInForce(int(rng.choice([1, 1, 2, 3])))
            otype = {"limit": OrderType.LIMIT, "maker": OrderType.LIMIT_MAKER, "market": OrderType.MARKET}[kind]
            r = eng.place(OrderRequest(a, "BTCUSDT", side, otype, int(rng.integers(1, 12)), px, tif), k)
            assert (r.order is None) == (r.rejection is not None)
        elif u < 0.9:
            mine = eng.open_orders(a)
            if mine:
                v = mine[int(rng.integers(0, len(mine)))]
                r = eng.cancel(a, "BTCUSDT", k, order_id=v.order_id)
                assert r.order.order_id == v.order_id and r.order.status.name == "CANCELED"
        else:
            eng.cancel_all(a, "BTCUSDT", k)
        for e in eng.poll():
            if isinstance(e, ExecutionReport):
                o = e.order
                if e.exec_type == "NEW":
                    assert o.order_id not in last
                else:
                    assert not last[o.order_id].status.name in ("FILLED", "CANCELED", "EXPIRED")
                if e.fill:
                    f = e.fill
                    delta[(f.account, "BTC")] += f.side * f.qty_lots
                    delta[(f.account, "USDT")] -= f.side * f.px_ticks * f.qty_lots + f.commission
                    comm += f.commission
                last[o.order_id] = o
            elif isinstance(e, LevelChange):
                if e.qty_lots:
                    book[e.side][e.px_ticks] = e.qty_lots
                else:
                    del book[e.side][e.px_ticks]
            else:
                assert isinstance(e, TradePrint)
        assert not (book[1] and book[-1] and max(book[1]) >= min(book[-1]))
    open_now = {v.order_id: v for a in accounts for v in eng.open_orders(a)}
    assert {o for o, v in last.items() if v.status.is_open} == set(open_now)
    for oid, v in open_now.items():
        assert last[oid].filled_lots == v.filled_lots
    assert len(last) > 1_000
    total = defaultdict(int)
    for a in accounts:
        for asset in ("BTC", "USDT"):
            free, lk = eng.balances(a)[asset]
            assert free >= 0 and free + lk - sum(start[a][asset]) == delta[(a, asset)]
            total[asset] += delta[(a, asset)]
    assert total["BTC"] == 0 and total["USDT"] == -comm
    d = eng.depth("BTCUSDT", 10_000)
    assert dict(d.bids) == book[1] and dict(d.asks) == book[-1]
