"""The matching engine rule by rule, on hand-built scenarios with exact fills, statuses, balances and events.

Numbers used throughout: BTCUSDT prices around 10_000 ticks, maker fee 100 ppm, taker fee 200 ppm, so a fill of
5 lots at 10_000 has notional 50_000 units, a maker commission of 5 and a taker commission of 10; a BUY LIMIT at
10_000 locks 10_000 + ceil(10_000 * 200 / 1e6) = 10_002 quote units per lot.
"""

from __future__ import annotations

import numpy as np
import pytest

from workbench.exceptions import ConfigError
from workbench.instrument import Instrument
from workbench.venue import nb
from workbench.venue.api import (
    ErrorCode,
    ExecutionReport,
    FeeSchedule,
    LevelChange,
    OrderRequest,
    OrderStatus,
    OrderType,
    SymbolSpec,
    TimeInForce,
    TradePrint,
    commission_units,
)
from workbench.venue.matching import MatchingEngine

BTC = Instrument("BTCUSDT", "0.01", "0.00001")
ETH = Instrument("ETHUSDT", "0.01", "0.0001")
SPEC = SymbolSpec(BTC, "BTC", "USDT", min_qty_lots=1, max_qty_lots=1000)
FEES = FeeSchedule(maker_ppm=100, taker_ppm=200)
USDT0 = 10**9
BTC0 = 10**6
RICH = {"USDT": USDT0, "BTC": BTC0}
SYM = "BTCUSDT"
BUY, SELL = 1, -1
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
S = OrderStatus


def engine(specs=(SPEC,), **kw) -> MatchingEngine:
    kw.setdefault("fees", FEES)
    kw.setdefault("balances", {1: RICH, 2: RICH, 3: RICH})
    return MatchingEngine(list(specs), **kw)


def lim(acct, side, px, qty, tif=GTC, cid="", sym=SYM):
    return OrderRequest(acct, sym, side, OrderType.LIMIT, qty, px, tif, cid)


def mkt(acct, side, qty, sym=SYM):
    return OrderRequest(acct, sym, side, OrderType.MARKET, qty)


def maker(acct, side, px, qty, cid=""):
    return OrderRequest(acct, SYM, side, OrderType.LIMIT_MAKER, qty, px, GTC, cid)


def compact(events) -> list[tuple]:
    """Events as short tuples: ("X", type, order id, status, filled, quote filled, fill), ("T", ...), ("L", ...)."""
    out = []
    for e in events:
        if isinstance(e, ExecutionReport):
            f = e.fill
            fill = None if f is None else (f.trade_id, f.px_ticks, f.qty_lots, f.is_maker, f.commission)
            out.append(("X", e.exec_type, e.order.order_id, e.order.status.name, e.order.filled_lots,
                        e.order.quote_filled, fill))
        elif isinstance(e, TradePrint):
            out.append(("T", e.trade_id, e.px_ticks, e.qty_lots, e.buyer_is_maker))
        else:
            assert isinstance(e, LevelChange)
            out.append(("L", e.update_id, e.side, e.px_ticks, e.qty_lots))
    return out


def bal(eng, acct):
    b = eng.balances(acct)
    return b["BTC"], b["USDT"]


def rejected(res, code, message):
    assert res.order is None and res.rejection is not None
    assert (res.rejection.code, res.rejection.message) == (code, message)
    return True


# -- priority, partial fills, commissions --------------------------------------------------------------------------


def test_price_time_priority_partial_fills_across_levels():
    eng = engine()
    a1 = eng.place(lim(1, SELL, 10_000, 5), 1).order
    b1 = eng.place(lim(2, SELL, 10_000, 3), 2).order
    a2 = eng.place(lim(1, SELL, 10_001, 4), 3).order
    assert (a1.order_id, b1.order_id, a2.order_id) == (1, 2, 3)
    assert compact(eng.poll()) == [
        ("X", "NEW", 1, "NEW", 0, 0, None), ("L", 1, SELL, 10_000, 5),
        ("X", "NEW", 2, "NEW", 0, 0, None), ("L", 2, SELL, 10_000, 8),
        ("X", "NEW", 3, "NEW", 0, 0, None), ("L", 3, SELL, 10_001, 4),
    ]
    r = eng.place(lim(3, BUY, 10_001, 10), 4)
    assert r.rejection is None
    o = r.order
    assert (o.order_id, o.status, o.filled_lots, o.quote_filled, o.updated_ns) == (4, S.FILLED, 10, 100_002, 4)
    # time priority within 10_000 (order 1, then 2), then price: 10_001
    assert [(f.trade_id, f.px_ticks, f.qty_lots, f.commission, f.is_maker) for f in r.fills] == [
        (1, 10_000, 5, 10, False), (2, 10_000, 3, 6, False), (3, 10_001, 2, 5, False)]
    assert compact(eng.poll()) == [
        ("X", "NEW", 4, "NEW", 0, 0, None),
        ("X", "TRADE", 4, "PARTIALLY_FILLED", 5, 50_000, (1, 10_000, 5, False, 10)),
        ("X", "TRADE", 1, "FILLED", 5, 50_000, (1, 10_000, 5, True, 5)),
        ("T", 1, 10_000, 5, False),
        ("X", "TRADE", 4, "PARTIALLY_FILLED", 8, 80_000, (2, 10_000, 3, False, 6)),
        ("X", "TRADE", 2, "FILLED", 3, 30_000, (2, 10_000, 3, True, 3)),
        ("T", 2, 10_000, 3, False),
        ("L", 4, SELL, 10_000, 0),
        ("X", "TRADE", 4, "FILLED", 10, 100_002, (3, 10_001, 2, False, 5)),
        ("X", "TRADE", 3, "PARTIALLY_FILLED", 2, 20_002, (3, 10_001, 2, True, 3)),
        ("T", 3, 10_001, 2, False),
        ("L", 5, SELL, 10_001, 2),
    ]
    d = eng.depth(SYM, 5)
    assert (d.last_update_id, d.bids, d.asks) == (5, [], [(10_001, 2)])
    assert bal(eng, 1) == ((BTC0 - 9, 2), (USDT0 + 50_000 - 5 + 20_002 - 3, 0))
    assert bal(eng, 2) == ((BTC0 - 3, 0), (USDT0 + 30_000 - 3, 0))
    assert bal(eng, 3) == ((BTC0 + 10, 0), (USDT0 - 100_002 - 21, 0))
    assert eng.order(1, SYM, order_id=3).status == S.PARTIALLY_FILLED
    assert eng.order(1, SYM, order_id=1).status == S.FILLED  # closed: from the history


def test_resting_buy_filled_by_a_seller_and_maker_rebate():
    eng = engine(fees={1: FeeSchedule(-50, 200), 2: FeeSchedule(100, 300)}, balances={1: RICH, 2: RICH})
    eng.place(lim(1, BUY, 10_001, 3), 1)  # locks 3 * (10_001 + ceil(10_001 * 200 / 1e6) = 3)
    assert bal(eng, 1)[1] == (USDT0 - 3 * 10_004, 3 * 10_004)
    r = eng.place(lim(2, SELL, 9_000, 5, IOC), 2)  # a seller sweeps the bid at the maker's price
    assert [(f.px_ticks, f.qty_lots, f.commission) for f in r.fills] == [(10_001, 3, commission_units(10_001, 3, 300))]
    assert r.order.status == S.EXPIRED and r.order.filled_lots == 3
    # the maker's rebate: ceil(30_003 * -50 / 1e6) = ceil(-1.50015) = -1 (never overpaid)
    assert commission_units(10_001, 3, -50) == -1
    assert bal(eng, 1) == ((BTC0 + 3, 0), (USDT0 - 30_003 + 1, 0))
    assert bal(eng, 2) == ((BTC0 - 3, 0), (USDT0 + 30_003 - 10, 0))


# -- time in force, order types ---------------------------------------------------------------------------------------


def test_ioc_remainder_expired_and_unlocked():
    eng = engine()
    eng.place(lim(1, SELL, 10_000, 5), 1)
    eng.poll()
    r = eng.place(lim(3, BUY, 10_000, 8, IOC), 2)
    assert (r.order.status, r.order.filled_lots, r.order.tif) == (S.EXPIRED, 5, IOC)
    assert compact(eng.poll()) == [
        ("X", "NEW", 2, "NEW", 0, 0, None),
        ("X", "TRADE", 2, "PARTIALLY_FILLED", 5, 50_000, (1, 10_000, 5, False, 10)),
        ("X", "TRADE", 1, "FILLED", 5, 50_000, (1, 10_000, 5, True, 5)),
        ("T", 1, 10_000, 5, False),
        ("L", 2, SELL, 10_000, 0),
        ("X", "EXPIRED", 2, "EXPIRED", 5, 50_000, None),
    ]
    assert bal(eng, 3) == ((BTC0 + 5, 0), (USDT0 - 50_010, 0))
    assert eng.open_orders(3) == []
    # an IOC that cannot trade at all expires without fills and without touching the book
    r = eng.place(lim(3, BUY, 9_000, 2, IOC), 3)
    assert (r.order.status, r.order.filled_lots, r.fills) == (S.EXPIRED, 0, ())
    assert compact(eng.poll()) == [("X", "NEW", 3, "NEW", 0, 0, None), ("X", "EXPIRED", 3, "EXPIRED", 0, 0, None)]


def test_fok_all_or_nothing():
    eng = engine()
    eng.place(lim(1, SELL, 10_000, 5), 1)
    eng.place(lim(2, SELL, 10_001, 3), 2)
    eng.poll()
    before = eng.depth(SYM, 5)
    r = eng.place(lim(3, BUY, 10_001, 9, FOK), 3)
    assert (r.order.status, r.order.filled_lots, r.fills) == (S.EXPIRED, 0, ())
    assert compact(eng.poll()) == [("X", "NEW", 3, "NEW", 0, 0, None), ("X", "EXPIRED", 3, "EXPIRED", 0, 0, None)]
    assert eng.depth(SYM, 5) == before and bal(eng, 3) == ((BTC0, 0), (USDT0, 0))
    r = eng.place(lim(3, BUY, 10_000, 6, FOK), 4)  # enough lots in total, not at this price
    assert r.order.status == S.EXPIRED and r.order.filled_lots == 0
    r = eng.place(lim(3, BUY, 10_001, 8, FOK), 5)
    assert (r.order.status, r.order.filled_lots, len(r.fills)) == (S.FILLED, 8, 2)
    assert eng.depth(SYM, 5).asks == []


def test_fok_counts_liquidity_only_up_to_its_own_account():
    eng = engine()
    eng.place(lim(1, SELL, 10_000, 5), 1)
    eng.place(lim(3, SELL, 10_001, 2), 2)  # the FOK buyer's own order: STP would stop it here
    eng.place(lim(2, SELL, 10_002, 5), 3)
    r = eng.place(lim(3, BUY, 10_002, 6, FOK), 4)
    assert (r.order.status, r.order.filled_lots) == (S.EXPIRED, 0)
    r = eng.place(lim(3, BUY, 10_002, 5, FOK), 5)
    assert (r.order.status, r.order.filled_lots) == (S.FILLED, 5)
    assert eng.depth(SYM, 5).asks == [(10_001, 2), (10_002, 5)]


def test_limit_maker_rejected_when_it_would_take():
    eng = engine()
    eng.place(lim(1, SELL, 10_000, 5), 1)
    eng.place(lim(1, BUY, 9_990, 5), 2)
    eng.poll()
    for px in (10_000, 10_005):
        assert rejected(eng.place(maker(3, BUY, px, 1), 3), ErrorCode.NEW_ORDER_REJECTED,
                        "Order would immediately match and take.")
    assert rejected(eng.place(maker(3, SELL, 9_990, 1), 3), ErrorCode.NEW_ORDER_REJECTED,
                    "Order would immediately match and take.")
    assert eng.poll() == [] and bal(eng, 3) == ((BTC0, 0), (USDT0, 0))
    r = eng.place(maker(3, BUY, 9_999, 1), 4)
    assert (r.order.status, r.order.type, r.order.tif) == (S.NEW, OrderType.LIMIT_MAKER, GTC)
    assert eng.depth(SYM, 1).bids == [(9_999, 1)]


def test_market_walks_the_book_and_expires_the_remainder():
    eng = engine()
    eng.place(lim(1, SELL, 10_000, 3), 1)
    eng.place(lim(2, SELL, 10_002, 4), 2)
    eng.poll()
    r = eng.place(mkt(3, BUY, 10), 3)
    assert (r.order.status, r.order.filled_lots, r.order.quote_filled) == (S.EXPIRED, 7, 70_008)
    assert (r.order.type, r.order.tif, r.order.px_ticks) == (OrderType.MARKET, IOC, 0)
    assert [(f.px_ticks, f.qty_lots) for f in r.fills] == [(10_000, 3), (10_002, 4)]
    assert [e[0] + e[1][:1] if e[0] == "X" else e[0] for e in compact(eng.poll())] == [
        "XN", "XT", "XT", "T", "L", "XT", "XT", "T", "L", "XE"]
    # a market buy locks nothing: only what it paid left the account
    assert bal(eng, 3) == ((BTC0 + 7, 0), (USDT0 - 70_008 - 6 - 9, 0))
    # facing an empty side, a market order is accepted and expires unfilled
    r = eng.place(mkt(3, SELL, 2), 4)
    assert (r.order.status, r.order.filled_lots, r.fills) == (S.EXPIRED, 0, ())
    assert bal(eng, 3) == ((BTC0 + 7, 0), (USDT0 - 70_023, 0))


def test_market_buy_stops_when_the_quote_runs_out():
    eng = engine(balances={1: RICH, 2: RICH, 4: {"USDT": 35_000}, 5: {"USDT": 10_001}})
    eng.place(lim(1, SELL, 10_000, 3), 1)
    eng.place(lim(2, SELL, 10_000, 5), 2)
    # one lot at the best ask costs 10_000 + ceil(10_000 * 200 / 1e6) = 10_002 at most
    assert rejected(eng.place(mkt(5, BUY, 1), 3), ErrorCode.NEW_ORDER_REJECTED,
                    "Account has insufficient balance for requested action.")
    r = eng.place(mkt(4, BUY, 8), 4)
    assert (r.order.status, r.order.filled_lots) == (S.EXPIRED, 3)
    assert [(f.qty_lots, f.commission) for f in r.fills] == [(3, 6)]
    assert bal(eng, 4) == ((3, 0), (35_000 - 30_006, 0))
    assert eng.depth(SYM, 5).asks == [(10_000, 5)]


def test_market_sell_needs_the_base_and_sweeps_bids():
    eng = engine(balances={1: RICH, 4: {"BTC": 4}})
    eng.place(lim(1, BUY, 10_000, 2), 1)
    eng.place(lim(1, BUY, 9_999, 5), 2)
    assert rejected(eng.place(mkt(4, SELL, 5), 3), ErrorCode.NEW_ORDER_REJECTED,
                    "Account has insufficient balance for requested action.")
    r = eng.place(mkt(4, SELL, 4), 4)
    assert (r.order.status, r.order.filled_lots, r.order.quote_filled) == (S.FILLED, 4, 39_998)
    assert bal(eng, 4) == ((0, 0), (39_998 - 4 - 4, 0))
    assert eng.depth(SYM, 5).bids == [(9_999, 3)]


# -- self-trade prevention ------------------------------------------------------------------------------------------


def test_self_trade_prevention_expires_the_taker():
    eng = engine()
    eng.place(lim(2, SELL, 10_000, 2), 1)
    eng.place(lim(1, SELL, 10_001, 3), 2)
    eng.poll()
    r = eng.place(lim(1, BUY, 10_001, 5), 3)  # GTC, but the remainder expires at its own order
    assert (r.order.status, r.order.filled_lots) == (S.EXPIRED, 2)
    assert compact(eng.poll()) == [
        ("X", "NEW", 3, "NEW", 0, 0, None),
        ("X", "TRADE", 3, "PARTIALLY_FILLED", 2, 20_000, (1, 10_000, 2, False, 4)),
        ("X", "TRADE", 1, "FILLED", 2, 20_000, (1, 10_000, 2, True, 2)),
        ("T", 1, 10_000, 2, False),
        ("L", 3, SELL, 10_000, 0),
        ("X", "EXPIRED", 3, "EXPIRED", 2, 20_000, None),
    ]
    assert eng.depth(SYM, 5).asks == [(10_001, 3)] and eng.depth(SYM, 5).bids == []
    assert [o.order_id for o in eng.open_orders(1)] == [2]
    assert bal(eng, 1) == ((BTC0 + 2 - 3, 3), (USDT0 - 20_004, 0))
    # at the head of the first level: nothing trades
    r = eng.place(mkt(1, BUY, 1), 4)
    assert (r.order.status, r.order.filled_lots) == (S.EXPIRED, 0)


def test_stp_none_lets_an_account_trade_with_itself():
    eng = engine()
    eng.place(lim(1, SELL, 10_000, 2), 1)
    cmd = np.zeros(1, nb.cmd_dt)
    cmd[0] = (nb.OP_PLACE, nb.F_STP_NONE, BUY, 1, 1, 0, eng.account_index(1), 10_000, 2, 0, 0, 0, 2)
    res, out = eng.submit_batch(cmd)
    assert (res[0]["status"], res[0]["filled"]) == (S.FILLED, 2)
    # base unchanged, quote down by both commissions (maker 2, taker 4)
    assert bal(eng, 1) == ((BTC0, 0), (USDT0 - 6, 0))


# -- filters and rejections -----------------------------------------------------------------------------------------


def test_filters():
    spec = SymbolSpec(BTC, "BTC", "USDT", min_qty_lots=2, max_qty_lots=1000, min_notional_ticks_lots=50_000)
    eng = engine([spec])
    for px in (0, -5):
        assert rejected(eng.place(lim(1, BUY, px, 10), 1), ErrorCode.INVALID_MESSAGE, "Filter failure: PRICE_FILTER")
    for qty in (0, 1, 1001, -3):
        assert rejected(eng.place(lim(1, BUY, 10_000, qty), 1), ErrorCode.INVALID_MESSAGE,
                        "Filter failure: LOT_SIZE")
    assert rejected(eng.place(lim(1, BUY, 10_000, 4), 1), ErrorCode.INVALID_MESSAGE, "Filter failure: NOTIONAL")
    assert rejected(eng.place(lim(1, BUY, 2**62, 2), 1), ErrorCode.INVALID_MESSAGE, "Filter failure: NOTIONAL")
    assert eng.place(lim(1, SELL, 10_000, 5), 1).order.status == S.NEW
    # MARKET: the notional at the best opposite price
    assert rejected(eng.place(mkt(2, BUY, 4), 2), ErrorCode.INVALID_MESSAGE, "Filter failure: NOTIONAL")
    assert eng.place(mkt(2, BUY, 5), 2).order.status == S.FILLED
    # no opposite side: no notional check, the order is accepted and expires
    r = eng.place(mkt(2, BUY, 3), 3)
    assert (r.order.status, r.order.filled_lots) == (S.EXPIRED, 0)
    assert [e for e in eng.poll() if isinstance(e, ExecutionReport) and e.exec_type == "REJECTED"] == []


def test_unknown_symbol():
    eng = engine()
    assert rejected(eng.place(lim(1, BUY, 10_000, 1, sym="NOPE"), 1), ErrorCode.BAD_SYMBOL, "Invalid symbol.")
    r = eng.cancel(1, "NOPE", 1, order_id=1)
    assert (r.rejection.code, r.rejection.message) == (ErrorCode.BAD_SYMBOL, "Invalid symbol.")
    cmd = np.zeros(1, nb.cmd_dt)
    cmd[0]["op"], cmd[0]["sym"], cmd[0]["side"], cmd[0]["type"], cmd[0]["qty"], cmd[0]["px"] = 1, 7, 1, 1, 1, 10
    res, out = eng.submit_batch(cmd)
    assert (res[0]["code"], res[0]["msg"], len(out)) == (ErrorCode.BAD_SYMBOL, nb.MSG_BAD_SYMBOL, 0)
    with pytest.raises(ConfigError):
        eng.depth("NOPE", 5)


def test_malformed_side_type_tif():
    eng = engine()
    for req in (OrderRequest(1, SYM, 0, OrderType.LIMIT, 1, 10_000), OrderRequest(1, SYM, 1, 9, 1, 10_000),
                OrderRequest(1, SYM, 1, OrderType.LIMIT, 1, 10_000, 7), OrderRequest(1, SYM, 1000, 1, 1, 1)):
        assert eng.place(req, 1).rejection.code == ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED


def test_duplicate_client_order_id():
    eng = engine()
    assert eng.place(lim(1, BUY, 9_000, 1, cid="x"), 1).order.client_order_id == "x"
    assert rejected(eng.place(lim(1, BUY, 9_001, 1, cid="x"), 2), ErrorCode.NEW_ORDER_REJECTED,
                    "Duplicate order sent.")
    assert eng.place(lim(2, BUY, 9_001, 1, cid="x"), 3).order is not None  # another account
    # an order that never rested does not hold its id
    assert eng.place(lim(1, BUY, 8_000, 1, IOC, cid="y"), 4).order.status == S.EXPIRED
    assert eng.place(lim(1, BUY, 8_000, 1, cid="y"), 5).order.status == S.NEW
    assert eng.cancel(1, SYM, 6, client_order_id="x").order.status == S.CANCELED
    assert eng.place(lim(1, BUY, 9_002, 1, cid="x"), 7).order.status == S.NEW
    # the venue names orders sent without an id, and they can be canceled by that name
    auto = eng.place(lim(3, BUY, 9_000, 1), 8).order.client_order_id
    assert auto.startswith("wb-") and eng.cancel(3, SYM, 9, client_order_id=auto).order.status == S.CANCELED


def test_insufficient_balance_exact_boundary():
    need = 3 * (10_000 + 2)  # BUY LIMIT lock: px + ceil(px * max(maker, taker) / 1e6) per lot
    eng = engine(balances={4: {"USDT": need, "BTC": 2}, 5: {"USDT": need - 1}, 1: RICH})
    msg = "Account has insufficient balance for requested action."
    assert rejected(eng.place(lim(5, BUY, 10_000, 3), 1), ErrorCode.NEW_ORDER_REJECTED, msg)
    assert eng.place(lim(4, BUY, 10_000, 3), 1).order.status == S.NEW
    assert bal(eng, 4) == ((2, 0), (0, need))
    assert rejected(eng.place(lim(4, BUY, 1, 1), 2), ErrorCode.NEW_ORDER_REJECTED, msg)  # all quote locked
    assert rejected(eng.place(lim(4, SELL, 20_000, 3), 2), ErrorCode.NEW_ORDER_REJECTED, msg)
    assert eng.place(lim(4, SELL, 20_000, 2), 2).order.status == S.NEW
    assert rejected(eng.place(lim(4, SELL, 20_000, 1), 3), ErrorCode.NEW_ORDER_REJECTED, msg)  # base locked
    # filled as a maker (100 ppm) the lock covers notional and commission; the surplus comes back
    eng.place(lim(1, SELL, 10_000, 3), 4)
    assert bal(eng, 4) == ((3, 2), (need - 30_003, 0))


def test_multi_symbol_accounts_share_the_quote_asset():
    eng = engine([SPEC, SymbolSpec(ETH, "ETH", "USDT")], balances={1: {"USDT": 30_000}, 2: {"ETH": 20, "BTC": 10}})
    assert eng.place(lim(1, BUY, 1_000, 15, sym="ETHUSDT"), 1).order.status == S.NEW  # locks 15 * 1_001
    assert eng.place(lim(1, BUY, 1_000, 15, sym=SYM), 2).rejection is not None
    assert eng.balances(1) == {"BTC": (0, 0), "USDT": (30_000 - 15_015, 15_015), "ETH": (0, 0)}
    r = eng.place(lim(2, SELL, 1_000, 15, sym="ETHUSDT"), 3)
    assert r.order.status == S.FILLED and eng.depth(SYM, 5).last_update_id == 0
    assert eng.depth("ETHUSDT", 5).last_update_id == 2
    assert eng.balances(1)["ETH"] == (15, 0)


# -- cancels -----------------------------------------------------------------------------------------------------------


def test_cancel_by_order_id_and_client_id():
    eng = engine()
    o1 = eng.place(lim(1, BUY, 9_000, 4, cid="a"), 1).order
    o2 = eng.place(lim(1, SELL, 11_000, 2, cid="b"), 2).order
    eng.poll()
    r = eng.cancel(1, SYM, 3, order_id=o1.order_id)
    assert (r.order.order_id, r.order.status, r.order.client_order_id, r.order.updated_ns) == (1, S.CANCELED, "a", 3)
    assert compact(eng.poll()) == [("X", "CANCELED", 1, "CANCELED", 0, 0, None), ("L", 3, BUY, 9_000, 0)]
    r = eng.cancel(1, SYM, 4, client_order_id="b")
    assert r.order.order_id == o2.order_id and r.order.status == S.CANCELED
    assert bal(eng, 1) == ((BTC0, 0), (USDT0, 0))
    unknown = (ErrorCode.CANCEL_REJECTED, "Unknown order sent.")
    for kw in ({"order_id": 1}, {"client_order_id": "a"}, {"order_id": 99}, {"client_order_id": "zz"}):
        r = eng.cancel(1, SYM, 5, **kw)
        assert (r.order, (r.rejection.code, r.rejection.message)) == (None, unknown)
    o3 = eng.place(lim(1, BUY, 9_000, 4, cid="c"), 6).order
    assert eng.cancel(2, SYM, 7, order_id=o3.order_id).rejection.code == ErrorCode.CANCEL_REJECTED  # not yours
    assert eng.cancel(1, SYM, 7, order_id=o3.order_id, client_order_id="a").rejection is not None  # ids disagree
    assert eng.cancel(1, SYM, 7).rejection.code == ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED
    eng.place(lim(2, SELL, 9_000, 4), 8)  # fills o3
    assert eng.cancel(1, SYM, 9, order_id=o3.order_id).rejection.code == ErrorCode.CANCEL_REJECTED
    assert eng.order(1, SYM, client_order_id="c").status == S.FILLED


def test_cancel_all():
    eng = engine()
    ids = [eng.place(lim(1, BUY, 9_000 + k, 1), k).order.order_id for k in range(3)]
    other = eng.place(lim(2, BUY, 9_000, 2), 5).order.order_id
    eng.poll()
    views = eng.cancel_all(1, SYM, 10)
    assert [(v.order_id, v.status, v.updated_ns) for v in views] == [(i, S.CANCELED, 10) for i in reversed(ids)]
    assert compact(eng.poll()) == [
        ("X", "CANCELED", 3, "CANCELED", 0, 0, None), ("L", 5, BUY, 9_002, 0),
        ("X", "CANCELED", 2, "CANCELED", 0, 0, None), ("L", 6, BUY, 9_001, 0),
        ("X", "CANCELED", 1, "CANCELED", 0, 0, None), ("L", 7, BUY, 9_000, 2),
    ]
    assert eng.open_orders(1) == [] and [o.order_id for o in eng.open_orders(2)] == [other]
    assert bal(eng, 1) == ((BTC0, 0), (USDT0, 0))
    assert eng.cancel_all(1, SYM, 11) == [] and eng.cancel_all(1, "NOPE", 11) == []


def test_cancel_nth_uses_the_dense_open_list():
    eng = engine()
    a = eng.account_index(1)
    ids = [eng.place(lim(1, BUY, 9_000 + k, 1), k).order.order_id for k in range(4)]  # list [1, 2, 3, 4]
    cmds = np.zeros(4, nb.cmd_dt)
    cmds["op"] = nb.OP_CANCEL_NTH
    cmds["account"] = a
    cmds["nth"] = [1, 5, 7, 0]  # 1 % 4 -> id 2 (list [1, 4, 3]); 5 % 3 -> id 3 ([1, 4]); 7 % 2 -> id 4; 0 -> id 1
    res, out = eng.submit_batch(cmds)
    assert res["order_id"].tolist() == [ids[1], ids[2], ids[3], ids[0]]
    assert res["status"].tolist() == [S.CANCELED] * 4 and res["n"].tolist() == [1] * 4
    res, _ = eng.submit_batch(cmds[:1])
    assert (res[0]["code"], res[0]["msg"]) == (ErrorCode.CANCEL_REJECTED, nb.MSG_UNKNOWN_ORDER)


# -- relative prices, the batch API --------------------------------------------------------------------------------


def test_relative_price_limit():
    eng = engine(ref_px_ticks={SYM: 10_000}, fees=FeeSchedule(0, 0))
    a = eng.account_index(1)
    b = eng.account_index(2)

    def rel(acct, side, off, qty=1):
        c = np.zeros(1, nb.cmd_dt)
        c[0] = (nb.OP_PLACE, nb.F_REL_PX, side, 1, 1, 0, acct, off, qty, 0, 0, 0, 0)
        res, _ = eng.submit_batch(c)
        return int(res[0]["px"]), int(res[0]["status"])

    assert rel(a, SELL, 0) == (10_001, S.NEW)        # empty book: reference + 1 for a sell
    eng.cancel_all(1, SYM, 0)
    assert rel(a, BUY, -2) == (9_998, S.NEW)         # empty book: reference for a buy, two ticks behind
    assert rel(a, SELL, 3) == (9_999 + 3, S.NEW)     # no ask: best bid + 1, three ticks behind
    assert rel(a, BUY, -1) == (9_997, S.NEW)         # behind the best bid
    assert rel(a, SELL, -1) == (10_001, S.NEW)       # one tick better than the best ask
    assert rel(b, BUY, 0) == (9_998, S.NEW)          # joins the best bid
    assert rel(b, BUY, 4) == (10_002, S.FILLED)      # an offset through the spread takes
    assert eng.reference_px(SYM) == 10_001
    eng.cancel_all(1, SYM, 0)
    eng.cancel_all(2, SYM, 0)
    assert eng.top(SYM) == (None, 0, None, 0)
    assert rel(a, BUY, 0) == (10_001, S.NEW)         # empty again: the last trade is the reference
    assert rel(b, BUY, -20_000) == (-9_999, 0)        # rejected: PRICE_FILTER


def test_submit_batch_rows_and_validation():
    eng = engine(balances={1: RICH, 2: RICH}, unlimited=[9])
    a, lp = eng.account_index(1), eng.account_index(9)
    cmds = np.zeros(3, nb.cmd_dt)
    cmds[0] = (nb.OP_PLACE, 0, SELL, 1, 1, 0, lp, 10_000, 5, 0, 0, 0, 100)
    cmds[1] = (nb.OP_PLACE, 0, BUY, 2, 1, 0, a, 0, 2, 0, 0, 0, 101)
    cmds[2] = (nb.OP_CANCEL_ALL, 0, 0, 0, 0, 0, lp, 0, 0, 0, 0, 0, 102)
    res, out = eng.submit_batch(cmds, publish=False)
    assert res["code"].tolist() == [0, 0, 0] and res["n"].tolist() == [0, 1, 1]
    kinds = [(int(e["kind"]), int(e["cmd"])) for e in out]
    # the unlimited account gets no execution report; the market buy: NEW, TRADE, print, level; cancel: level
    assert kinds == [(nb.EV_LEVEL, 0), (nb.EV_EXEC, 1), (nb.EV_EXEC, 1), (nb.EV_TRADE, 1), (nb.EV_LEVEL, 1),
                     (nb.EV_LEVEL, 2)]
    t = out[3]
    assert (t["maker_account"], t["account"], t["fill_qty"], t["maker_order_id"], t["order_id"]) == (lp, a, 2, 1, 2)
    assert eng.poll() == []  # not published
    assert eng.balances(9) == {"BTC": (-2, 0), "USDT": (20_000 - 2, 0)}  # tracked, may go negative
    with pytest.raises(ConfigError):
        eng.submit_batch(np.zeros(2, np.int64))


def test_order_and_open_orders_views():
    eng = engine()
    o1 = eng.place(lim(1, BUY, 9_000, 4, cid="p"), 1).order
    o2 = eng.place(lim(1, SELL, 11_000, 2), 2).order
    assert eng.order(1, SYM, order_id=o1.order_id) == o1
    assert eng.order(1, SYM, client_order_id="p") == o1
    assert eng.order(2, SYM, order_id=o1.order_id) is None
    assert eng.order(1, "NOPE", order_id=o1.order_id) is None
    assert eng.order(1, SYM, order_id=12345) is None
    assert eng.open_orders(1) == [o1, o2] == eng.open_orders(1, SYM)
    assert eng.open_orders(1, "NOPE") == [] and eng.open_orders(77) == []
    eng.place(lim(2, SELL, 9_000, 1), 3)
    v = eng.order(1, SYM, order_id=o1.order_id)
    assert (v.status, v.filled_lots, v.updated_ns) == (S.PARTIALLY_FILLED, 1, 3)
    assert eng.balances(77) == {"BTC": (0, 0), "USDT": (0, 0)}


def test_unlimited_accounts_skip_checks_and_reports():
    eng = engine(unlimited=[9])
    assert eng.place(lim(9, SELL, 10_000, 500), 1).order.status == S.NEW  # no funds needed
    eng.poll()
    r = eng.place(lim(3, BUY, 10_000, 2), 2)
    assert r.order.status == S.FILLED
    assert [e[:2] for e in compact(eng.poll())] == [("X", "NEW"), ("X", "TRADE"), ("T", 1), ("L", 2)]
    assert eng.balances(9) == {"BTC": (-2, 0), "USDT": (20_000 - 2, 0)}


def test_window_moves_grows_and_refuses_far_prices():
    eng = engine(initial_levels=8, max_levels=64, unlimited=[9])
    eng.place(lim(9, BUY, 1_000, 1), 1)
    eng.place(lim(9, SELL, 1_005, 1), 2)
    assert eng.place(lim(9, SELL, 1_050, 1), 3).order.status == S.NEW  # widens to hold 1_000..1_050
    r = eng.place(lim(9, SELL, 1_070, 1), 4)  # 1_000..1_070 is wider than 64 ticks
    assert rejected(r, ErrorCode.INVALID_MESSAGE, "Filter failure: PERCENT_PRICE_BY_SIDE")
    # a marketable order whose limit lies far out is fine when nothing of it rests
    r = eng.place(lim(3, BUY, 5_000, 2), 5)
    assert (r.order.status, [f.px_ticks for f in r.fills]) == (S.FILLED, [1_005, 1_050])
    assert eng.depth(SYM, 5).asks == [] and eng.depth(SYM, 5).bids == [(1_000, 1)]
    # the price travels: the window follows it
    eng.cancel_all(9, SYM, 6)
    for k in range(200):
        eng.place(lim(9, BUY, 2_000 + 10 * k, 1), 7 + k)
        eng.cancel_all(9, SYM, 7 + k)
    eng.place(lim(9, BUY, 4_000, 3), 300)
    eng.place(lim(9, SELL, 4_010, 2), 301)
    d = eng.depth(SYM, 5)
    assert (d.bids, d.asks) == ([(4_000, 3)], [(4_010, 2)])
    assert eng.place(mkt(3, SELL, 4), 302).order.filled_lots == 3


def test_depth_limit_and_update_ids():
    eng = engine(unlimited=[9])
    for k in range(10):
        eng.place(lim(9, BUY, 1_000 - k, k + 1), k)
        eng.place(lim(9, SELL, 1_001 + k, k + 1), k)
    d = eng.depth(SYM, 3)
    assert d.bids == [(1_000, 1), (999, 2), (998, 3)] and d.asks == [(1_001, 1), (1_002, 2), (1_003, 3)]
    ups = [e.update_id for e in eng.poll() if isinstance(e, LevelChange)]
    assert ups == list(range(1, 21)) and d.last_update_id == 20 == eng.last_update_id(SYM)
    assert eng.depth(SYM, 0).bids == [] and len(eng.depth(SYM, 100).asks) == 10


def test_commission_kernel_equals_api_exactly():
    rng = np.random.default_rng(3)
    notionals = [0, 1, 999_999, 1_000_000, 1_000_001, 2**62, 2**62 + 12_345, 9_000_000_000_000_000_000]
    notionals += rng.integers(0, 2**62, 200).tolist()
    fees = [-1_000_000, -50, -1, 0, 1, 7, 100, 999_999, 1_000_000]
    for n in notionals:
        for f in fees:
            want = commission_units(n, 1, f)
            assert nb.commission_nb(n, f) == want == -((-n * f) // 1_000_000)


def test_deterministic():
    def run():
        eng = engine(unlimited=[9])
        rng = np.random.default_rng(11)
        for k in range(300):
            side = int(rng.choice([BUY, SELL]))
            if rng.random() < 0.2:
                eng.place(mkt(int(rng.integers(1, 4)), side, int(rng.integers(1, 5))), k)
            else:
                eng.place(lim(int(rng.choice([1, 2, 3, 9])), side, int(rng.integers(990, 1010)),
                              int(rng.integers(1, 5))), k)
        return eng.poll(), eng.depth(SYM, 50), [eng.balances(a) for a in (1, 2, 3, 9)]

    assert run() == run()


def test_config_errors():
    with pytest.raises(ConfigError):
        MatchingEngine([])
    with pytest.raises(ConfigError):
        engine(fees=FeeSchedule(2_000_000, 0))
    eng = engine()
    with pytest.raises(ConfigError):
        eng.add_account(1)
    with pytest.raises(ConfigError):
        eng.deposit(1, "DOGE", 5)
    with pytest.raises(ConfigError):
        eng.deposit(1, "BTC", -BTC0 - 1)
    assert eng.advance(10**18) is None


def test_py_func_runs_a_scenario_identically(monkeypatch):
    """The main kernel uncompiled (``run_nb.py_func``) gives the same results on a small scenario."""

    def scenario():
        eng = engine(unlimited=[9], ref_px_ticks={SYM: 10_000}, initial_levels=4)
        eng.place(lim(1, SELL, 10_000, 5), 1)
        eng.place(lim(2, SELL, 10_000, 3, cid="q"), 2)
        eng.place(lim(9, SELL, 10_003, 7), 3)
        eng.place(lim(3, BUY, 10_003, 10), 4)
        eng.place(lim(3, BUY, 10_003, 10, FOK), 5)
        eng.place(maker(1, BUY, 10_003, 1), 6)
        eng.place(mkt(1, SELL, 2), 7)
        eng.cancel(2, SYM, 8, client_order_id="q")
        cmds = np.zeros(3, nb.cmd_dt)
        cmds[0] = (nb.OP_PLACE, nb.F_REL_PX, BUY, 1, 1, 0, eng.account_index(2), -1, 4, 0, 0, 0, 9)
        cmds[1] = (nb.OP_CANCEL_NTH, 0, 0, 0, 0, 0, eng.account_index(9), 0, 0, 0, 0, 5, 10)
        cmds[2] = (nb.OP_CANCEL_ALL, 0, 0, 0, 0, 0, eng.account_index(2), 0, 0, 0, 0, 0, 11)
        res, _ = eng.submit_batch(cmds)
        return eng.poll(), res.tolist(), eng.depth(SYM, 10), [eng.balances(a) for a in (1, 2, 3, 9)]

    jit = scenario()
    monkeypatch.setattr(nb, "run_nb", nb.run_nb.py_func)
    assert scenario() == jit
    assert len(jit[0]) > 20


def test_out_of_range_integers_are_rejected_not_raised():
    eng = engine()
    assert eng.place(lim(1, BUY, 10**30, 1), 1).rejection.message == "Filter failure: NOTIONAL"
    assert eng.place(lim(1, BUY, -(10**30), 1), 1).rejection.message == "Filter failure: PRICE_FILTER"
    assert eng.place(lim(1, BUY, 10_000, 10**30), 1).rejection.message == "Filter failure: LOT_SIZE"
    assert eng.cancel(1, SYM, 1, order_id=10**30).rejection.code == ErrorCode.CANCEL_REJECTED


def test_history_is_bounded_and_forgets_client_ids():
    eng = engine(history=2)
    for k in range(4):
        eng.place(lim(1, BUY, 9_000, 1, cid=f"c{k}"), k)
        eng.cancel(1, SYM, k, client_order_id=f"c{k}")
    eng.place(lim(1, BUY, 9_000, 1, cid="c0"), 9)  # reused after its first order closed
    assert [eng.order(1, SYM, order_id=i) is None for i in (1, 2, 3, 4)] == [True, True, False, False]
    assert eng.order(1, SYM, client_order_id="c0").order_id == 5
    assert eng.order(1, SYM, client_order_id="c1") is None
    assert set(eng._cid_text.values()) == {"", "c0", "c2", "c3"}
