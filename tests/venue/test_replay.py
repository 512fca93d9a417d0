"""ReplayVenue: hand-built recordings with answers worked out by hand (queue models through the venue, trade-through
and crossing fills, taking at replayed prices, post-only, IOC/FOK/MARKET, balances, ids across a gap), then the
real Binance captures (the served book equals the recorded one as the data core checks it, a Binance-rule client
stays in sync, no order lost under random user actions) and LOBSTER / Parquet sources."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pytest

from workbench.book.book import L2Book
from workbench.enums import (
    ASK,
    BID,
    F_BATCH_END,
    F_CLEAR,
    F_GAP,
    K_BBO,
    K_DEPTH,
    K_SNAPSHOT,
    K_TRADE,
)
from workbench.instrument import Instrument
from workbench.types import empty_events
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
from workbench.venue.queue import ConservativeQueue, NoQueue, ProbabilisticQueue
from workbench.venue.replay import ReplayVenue

INS = Instrument("TEST", tick_size="0.01", lot_size="1")
SPEC = SymbolSpec(INS, "BASE", "QUOTE", min_notional_ticks_lots=50)
SYM = "TEST"
BUY, SELL = 1, -1
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
LIMIT, MARKET, MAKER = OrderType.LIMIT, OrderType.MARKET, OrderType.LIMIT_MAKER
Q0 = 10**9  # initial quote units
B0 = 1000   # initial base lots


# -- building recordings -----------------------------------------------------------------------------------------------
def _rows(n: int, ts: int, kind: int, uid: int, first: int) -> np.ndarray:
    ev = empty_events(n)
    ev["ts_exch_ns"] = ts
    ev["ts_local_ns"] = ts
    ev["kind"] = kind
    ev["id"] = uid
    ev["first_id"] = first
    ev["prev_id"] = -1
    return ev


def _levels(ev: np.ndarray, bids: Sequence, asks: Sequence) -> np.ndarray:
    lv = [(BID, p, q) for p, q in bids] + [(ASK, p, q) for p, q in asks]
    for k, (s, p, q) in enumerate(lv):
        ev[k]["side"], ev[k]["px_ticks"], ev[k]["qty_lots"] = s, p, q
    ev[-1]["flags"] |= F_BATCH_END
    return ev


def snap(ts: int, uid: int, bids: Sequence = (), asks: Sequence = ()) -> np.ndarray:
    ev = _levels(_rows(max(len(bids) + len(asks), 1), ts, K_SNAPSHOT, uid, uid), bids, asks)
    ev[0]["flags"] |= F_CLEAR
    return ev


def diff(ts: int, u: int, bids: Sequence = (), asks: Sequence = (), first: int | None = None) -> np.ndarray:
    return _levels(_rows(max(len(bids) + len(asks), 1), ts, K_DEPTH, u, u if first is None else first), bids, asks)


def trade(ts: int, tid: int, px: int, qty: int, aggressor: int) -> np.ndarray:
    ev = _rows(1, ts, K_TRADE, tid, tid)
    ev["side"], ev["px_ticks"], ev["qty_lots"], ev["flags"] = aggressor, px, qty, F_BATCH_END
    return ev


def gap(ts: int, u: int) -> np.ndarray:
    """The reader's row where the book lost sync (it is not flagged BATCH_END: the book is unknown after it)."""
    ev = _rows(1, ts, K_DEPTH, u, u)
    ev["flags"] = F_CLEAR | F_GAP
    return ev


BOOK = snap(1000, 100, bids=[(100, 10), (99, 5)], asks=[(101, 7), (102, 8)])


def venue(*parts: np.ndarray, fees=FeeSchedule(0, 0), chunks: int = 1, **kw) -> ReplayVenue:
    ev = np.concatenate(parts)
    split = np.array_split(ev, chunks) if chunks > 1 else [ev]
    accounts = {1: {"BASE": B0, "QUOTE": Q0}, 2: {"BASE": B0, "QUOTE": Q0}}
    return ReplayVenue(split, SPEC, fees=fees, accounts=accounts, **kw)


def req(side, qty, px=0, type=LIMIT, tif=GTC, account=1, coid=""):
    return OrderRequest(account, SYM, side, type, qty, px, tif, coid)


def reports(v: ReplayVenue) -> list[ExecutionReport]:
    return [e for e in v.poll() if isinstance(e, ExecutionReport)]


# -- queue models through the venue ------------------------------------------------------------------------------------
def brief_history():
    """Level 100 holds 10 lots; our buy of 2 joins at t=2000; sells of 4 and 5 lots hit the level, 2 lots join
    behind us, then a sell of 3 lots."""
    return [
        BOOK,
        trade(3000, 1, 100, 4, SELL), diff(3000, 101, bids=[(100, 6)]),
        trade(4000, 2, 100, 5, SELL), diff(4000, 102, bids=[(100, 1)]),
        diff(4500, 103, bids=[(100, 3)]),
        trade(5000, 3, 100, 3, SELL), diff(5000, 104, bids=[(100, 0)]),
    ]


@pytest.mark.parametrize("model", [ConservativeQueue(), ProbabilisticQueue(3)], ids=repr)
def test_resting_order_fills_when_the_queue_ahead_is_gone(model):
    fees = FeeSchedule(maker_ppm=-100_000, taker_ppm=200_000)  # large rates so that commissions show in tiny units
    v = venue(*brief_history(), fees=fees, queue=model)
    r = v.place(req(BUY, 2, 100), 2000)
    oid = r.order.order_id
    assert r.order.status == OrderStatus.NEW and r.fills == () and v.queue_ahead(oid) == 10
    v.advance(4600)
    assert v.order(1, SYM, order_id=oid).filled_lots == 0
    assert v.queue_ahead(oid) == pytest.approx(1)
    v.poll()
    v.advance(5000)
    fills = [e.fill for e in reports(v) if e.exec_type == "TRADE"]
    assert [(f.px_ticks, f.qty_lots, f.is_maker, f.ts_ns) for f in fills] == [(100, 2, True, 5000)]
    assert fills[0].commission == commission_units(100, 2, -100_000) == -20  # a rebate
    o = v.order(1, SYM, order_id=oid)
    assert o.status == OrderStatus.FILLED and o.quote_filled == 200
    assert v.balances(1) == {"BASE": (B0 + 2, 0), "QUOTE": (Q0 - 200 + 20, 0)}
    assert v.open_orders(1) == []


def cancel_history():
    """Level 100: 10 lots, our order joins, 10 lots join behind, 6 lots are cancelled, sells of 4 and 5 lots."""
    return [
        BOOK,
        diff(2500, 101, bids=[(100, 20)]),
        diff(2600, 102, bids=[(100, 14)]),
        trade(3000, 1, 100, 4, SELL), diff(3000, 103, bids=[(100, 10)]),
        trade(4000, 2, 100, 5, SELL), diff(4000, 104, bids=[(100, 5)]),
    ]


def test_probabilistic_queue_moves_on_cancels_conservative_does_not():
    p = venue(*cancel_history(), queue=ProbabilisticQueue(2))
    c = venue(*cancel_history(), queue=ConservativeQueue())
    oid = [x.place(req(BUY, 2, 100), 2000).order.order_id for x in (p, c)]
    for x in (p, c):
        x.advance(2700)
    # 6 cancelled with 10 ahead and 10 behind: power 2 takes half of it from ahead
    assert p.queue_ahead(oid[0]) == pytest.approx(7) and c.queue_ahead(oid[1]) == 10
    p.advance(3500)
    c.advance(3500)
    assert p.queue_ahead(oid[0]) == pytest.approx(3) and c.queue_ahead(oid[1]) == 6
    p.advance(4000)
    c.advance(4000)
    assert p.order(1, SYM, order_id=oid[0]).filled_lots == 2  # 3 ahead, 5 traded: 2 reach us
    assert c.order(1, SYM, order_id=oid[1]).filled_lots == 0 and c.queue_ahead(oid[1]) == 1


def test_sampled_queue_is_deterministic_for_a_seed():
    def run(seed):
        v = venue(*cancel_history(), queue=ProbabilisticQueue(2, sampled=True), seed=seed)
        oid = v.place(req(BUY, 2, 100), 2000).order.order_id
        v.advance(2700)
        return v.queue_ahead(oid)

    outcomes = [run(s) for s in range(40)]
    assert outcomes[:5] == [run(s) for s in range(5)]
    assert set(outcomes) <= {4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0} and len(set(outcomes)) > 2
    assert abs(np.mean(outcomes) - 7) < 1.2  # Binomial(6, 1/2) taken from 10


def test_no_queue_fills_at_the_first_trade():
    v = venue(*brief_history(), queue=NoQueue())
    oid = v.place(req(BUY, 2, 100), 2000).order.order_id
    v.advance(3000)
    assert v.order(1, SYM, order_id=oid).status == OrderStatus.FILLED


def test_users_orders_keep_time_priority_within_a_level():
    ev = [BOOK, trade(3000, 1, 100, 12, SELL), diff(3000, 101, bids=[(100, 1)]), trade(4000, 2, 100, 1, SELL)]
    v = venue(*ev)
    a = v.place(req(BUY, 2, 100, account=1), 2000).order.order_id
    b = v.place(req(BUY, 2, 100, account=2), 2100).order.order_id
    v.advance(3000)  # 10 ahead of both; 12 traded: 2 beyond the queue, and they go to the earlier order
    assert (v.order(1, SYM, order_id=a).filled_lots, v.order(2, SYM, order_id=b).filled_lots) == (2, 0)
    v.advance(4000)
    assert v.order(2, SYM, order_id=b).filled_lots == 1


def test_trades_are_merged_before_the_diff_that_shows_them():
    """Binance sends trades and diffs on separate streams: here the diff (E=3000) arrives before the trade it
    contains (T=2990). Counting the diff as a cancel and then the trade again would move the order twice."""
    ev = [BOOK, diff(2500, 101, bids=[(100, 20)]), diff(3000, 102, bids=[(100, 16)]), trade(2990, 1, 100, 4, SELL)]
    v = venue(*ev, queue=ProbabilisticQueue(1), chunks=3)
    oid = v.place(req(BUY, 2, 100), 2000).order.order_id
    v.advance(3000)
    assert v.queue_ahead(oid) == pytest.approx(6)  # 10 - 4 traded, no cancel
    prints = [e for e in v.poll() if isinstance(e, (TradePrint, LevelChange))]
    kinds = [type(e).__name__ for e in prints]
    assert kinds.index("TradePrint") < [i for i, e in enumerate(prints) if getattr(e, "update_id", 0) == 102][0]


# -- trade-through and crossing ----------------------------------------------------------------------------------------
def test_trade_through_fills_entirely_at_the_order_price():
    v = venue(BOOK, trade(3000, 1, 98, 1, SELL))
    oid = v.place(req(BUY, 3, 99), 2000).order.order_id
    assert v.queue_ahead(oid) == 5
    v.advance(3000)
    (f,) = [e.fill for e in reports(v) if e.fill]
    assert (f.px_ticks, f.qty_lots, f.is_maker) == (99, 3, True)  # a 1-lot print beyond the price fills it all


def test_opposite_side_crossing_fills_entirely():
    up = diff(3000, 101, bids=[(100, 0), (103, 4)], asks=[(101, 0), (102, 0), (104, 5)])
    v = venue(BOOK, up)
    s = v.place(req(SELL, 3, 102), 2000).order.order_id
    b = v.place(req(BUY, 1, 99), 2000).order.order_id
    v.advance(3000)
    assert v.order(1, SYM, order_id=s).status == OrderStatus.FILLED
    assert v.order(1, SYM, order_id=b).status == OrderStatus.NEW
    assert v.balances(1)["QUOTE"] == (Q0 + 306 - 100, 100)  # 99 + one unit a lot of margin


def test_no_fill_from_a_trade_on_the_other_side():
    v = venue(BOOK, trade(3000, 1, 100, 50, BUY))  # a buy print at 100 cannot hit our bid
    oid = v.place(req(BUY, 2, 100), 2000).order.order_id
    v.advance(3000)
    assert v.order(1, SYM, order_id=oid).filled_lots == 0


# -- taking ------------------------------------------------------------------------------------------------------------
def test_marketable_order_walks_two_levels_at_replayed_prices_with_taker_commission():
    fees = FeeSchedule(maker_ppm=0, taker_ppm=25_000)
    v = venue(BOOK, fees=fees)
    r = v.place(req(BUY, 10, 105), 2000)
    assert [(f.px_ticks, f.qty_lots, f.is_maker) for f in r.fills] == [(101, 7, False), (102, 3, False)]
    c = [commission_units(101, 7, 25_000), commission_units(102, 3, 25_000)]
    assert [f.commission for f in r.fills] == c == [18, 8]  # ceil(17.675), ceil(7.65)
    assert r.order.status == OrderStatus.FILLED and r.order.quote_filled == 707 + 306
    assert v.balances(1) == {"BASE": (B0 + 10, 0), "QUOTE": (Q0 - 1013 - 26, 0)}
    assert [e.exec_type for e in reports(v)] == ["NEW", "TRADE", "TRADE"]
    # the public book is the recording: nothing was removed from it
    assert v.depth(SYM, 5).asks == [(101, 7), (102, 8)]


def test_taken_liquidity_is_not_offered_twice_until_the_recording_updates_the_level():
    v = venue(BOOK, diff(3000, 101, asks=[(102, 8)]))
    assert sum(f.qty_lots for f in v.place(req(BUY, 10, 102, tif=IOC), 2000).fills) == 10
    r = v.place(req(BUY, 10, 102, tif=IOC), 2100)  # 101 is gone, 102 has 5 left
    assert [(f.px_ticks, f.qty_lots) for f in r.fills] == [(102, 5)] and r.order.status == OrderStatus.EXPIRED
    r = v.place(req(BUY, 10, 102, tif=IOC), 3000)  # the diff at 3000 restates 102
    assert [(f.px_ticks, f.qty_lots) for f in r.fills] == [(102, 8)]


def test_post_only():
    v = venue(BOOK)
    r = v.place(req(BUY, 1, 101, type=MAKER), 2000)
    assert r.order is None and r.rejection.code == ErrorCode.NEW_ORDER_REJECTED
    assert r.rejection.message == "Order would immediately match and take."
    r = v.place(req(SELL, 1, 100, type=MAKER), 2000)
    assert r.order is None and r.rejection.code == -2010
    r = v.place(req(BUY, 1, 100, type=MAKER), 2000)
    assert r.order.status == OrderStatus.NEW and v.queue_ahead(r.order.order_id) == 10
    assert v.balances(1) == {"BASE": (B0, 0), "QUOTE": (Q0 - 101, 101)}  # 100 + one unit a lot of rounding margin


def test_ioc_fok_market():
    v = venue(BOOK)
    r = v.place(req(BUY, 10, 101, tif=IOC), 2000)
    assert r.order.status == OrderStatus.EXPIRED and r.order.filled_lots == 7
    assert [e.exec_type for e in reports(v)] == ["NEW", "TRADE", "EXPIRED"]
    v = venue(BOOK)
    r = v.place(req(BUY, 16, 102, tif=FOK), 2000)  # 15 on offer up to 102
    assert r.order.status == OrderStatus.EXPIRED and r.fills == ()
    assert v.balances(1) == {"BASE": (B0, 0), "QUOTE": (Q0, 0)}
    r = v.place(req(BUY, 15, 102, tif=FOK), 2000)
    assert r.order.status == OrderStatus.FILLED and [f.qty_lots for f in r.fills] == [7, 8]
    v = venue(BOOK)
    r = v.place(req(BUY, 20, type=MARKET), 2000)
    assert r.order.status == OrderStatus.EXPIRED and r.order.filled_lots == 15 and r.order.px_ticks == 0
    assert v.balances(1) == {"BASE": (B0 + 15, 0), "QUOTE": (Q0 - 707 - 816, 0)}
    r = v.place(req(SELL, 12, type=MARKET), 2000)
    assert [(f.px_ticks, f.qty_lots) for f in r.fills] == [(100, 10), (99, 2)]
    assert r.order.status == OrderStatus.FILLED


def test_market_order_without_liquidity_expires():
    v = venue(snap(1000, 1, bids=[(100, 1)]))
    r = v.place(req(BUY, 3, type=MARKET), 2000)
    assert r.order.status == OrderStatus.EXPIRED and r.fills == ()
    assert v.balances(1)["QUOTE"] == (Q0, 0)


def test_an_order_pays_the_fees_in_force_when_it_was_placed():
    v = venue(BOOK, trade(3000, 1, 98, 1, SELL), fees=FeeSchedule(maker_ppm=0, taker_ppm=0))
    v.place(req(BUY, 3, 99), 2000)
    v.set_fees(1, FeeSchedule(maker_ppm=500_000, taker_ppm=500_000))
    r = v.place(req(BUY, 1, 101, tif=IOC), 2500)
    assert r.fills[0].commission == commission_units(101, 1, 500_000) == 51
    v.advance(3000)
    (f,) = [e.fill for e in reports(v) if e.fill and e.fill.is_maker]
    assert f.commission == 0
    assert v.balances(1)["QUOTE"] == (Q0 - 101 - 51 - 297, 0)


def test_rejections_cancels_and_lookups():
    v = venue(BOOK)
    assert v.place(OrderRequest(1, "OTHER", BUY, LIMIT, 1, 100), 2000).rejection.code == ErrorCode.BAD_SYMBOL
    assert v.place(req(BUY, 0, 100), 2000).rejection is not None
    assert v.place(req(BUY, 1, 0), 2000).rejection.message == "Filter failure: PRICE_FILTER"
    assert v.place(req(BUY, 1, 40), 2000).rejection.message == "Filter failure: NOTIONAL"  # 40 < 50
    assert v.place(req(BUY, 10**7, 100), 2000).rejection.message.startswith("Account has insufficient balance")
    assert v.place(req(SELL, B0 + 1, 200), 2000).rejection.code == ErrorCode.NEW_ORDER_REJECTED
    r = v.place(req(BUY, 2, 99, coid="mine"), 2000)
    assert r.order.client_order_id == "mine"
    assert v.place(req(BUY, 2, 98, coid="mine"), 2000).rejection.message == "Duplicate order sent."
    assert v.place(req(BUY, 2, 98), 2000).order.client_order_id.startswith("replay-")
    assert v.order(1, SYM, client_order_id="mine").order_id == r.order.order_id
    assert v.order(2, SYM, order_id=r.order.order_id) is None  # another account's order
    assert v.cancel(2, SYM, 2100, order_id=r.order.order_id).rejection.code == ErrorCode.CANCEL_REJECTED
    c = v.cancel(1, SYM, 2100, client_order_id="mine")
    assert c.order.status == OrderStatus.CANCELED
    assert v.cancel(1, SYM, 2100, client_order_id="mine").rejection.message == "Unknown order sent."
    assert v.place(req(BUY, 2, 98, coid="mine"), 2200).order is not None  # the id is free again once closed
    v.place(req(SELL, 3, 110), 2200)
    assert len(v.open_orders(1)) == 3
    gone = v.cancel_all(1, SYM, 2300)
    assert len(gone) == 3 and all(o.status == OrderStatus.CANCELED for o in gone)
    assert v.open_orders(1) == [] and v.balances(1) == {"BASE": (B0, 0), "QUOTE": (Q0, 0)}


# -- the market: ids, gaps, time ---------------------------------------------------------------------------------------
def test_update_ids_and_a_gap():
    ev = [
        BOOK,
        diff(2000, 105, bids=[(100, 12)], first=101),
        gap(3000, 110),
        trade(3500, 7, 95, 1, BUY),  # trades go on while the book is unknown
        snap(4000, 200, bids=[(90, 1)], asks=[(91, 1)]),
        diff(5000, 203, asks=[(91, 2)], first=201),
    ]
    v = venue(*ev)
    oid = v.place(req(BUY, 2, 100), 1500).order.order_id
    v.poll()
    v.advance(2000)
    assert [(e.update_id, e.side, e.px_ticks, e.qty_lots) for e in v.poll()] == [(105, BID, 100, 12)]
    assert v.depth(SYM, 5).last_update_id == 105
    v.advance(3000)
    out = v.poll()
    assert sorted((e.update_id, e.px_ticks, e.qty_lots) for e in out) == [(110, p, 0) for p in (99, 100, 101, 102)]
    d = v.depth(SYM, 5)
    assert (d.last_update_id, d.bids, d.asks) == (110, [], [])
    assert v.order(1, SYM, order_id=oid).status == OrderStatus.NEW  # orders stay; their queue waits
    v.advance(3999)
    assert [(type(e).__name__, e.trade_id) for e in v.poll()] == [("TradePrint", 7)]
    assert v.depth(SYM, 5).bids == []
    v.advance(4000)
    out = v.poll()
    changes = [(e.update_id, e.side, e.px_ticks, e.qty_lots) for e in out if isinstance(e, LevelChange)]
    assert changes == [(200, BID, 90, 1), (200, ASK, 91, 1)]
    # the market restarted below our bid: the ask at 91 crosses it, which fills it as maker at its price
    fills = [e.fill for e in out if isinstance(e, ExecutionReport) and e.fill]
    assert [(f.px_ticks, f.qty_lots, f.is_maker, f.ts_ns) for f in fills] == [(100, 2, True, 4000)]
    v.advance(5000)
    assert v.depth(SYM, 5).last_update_id == 203 and v.depth(SYM, 5).asks == [(91, 2)]
    assert v.next_event_ns is None and v.exhausted


def test_time_and_step():
    v = venue(*brief_history(), chunks=4)
    assert v.next_event_ns == 1000
    assert v.step() == 1000 and v.now_ns == 1000
    v.advance(500)  # time never goes back
    assert v.now_ns == 1000
    v.advance(3999)
    assert v.next_event_ns == 4000 and v.depth(SYM, 1).bids == [(100, 6)]
    times = []
    while (t := v.step()) is not None:
        times.append(t)
    assert times == [4000, 4000, 4500, 5000, 5000]  # trade first, then the diff of the same time
    assert v.counts["messages"] == 8 and v.counts["trade_prints"] == 3


def test_publishing_off_serves_the_same_book():
    a, b = venue(*cancel_history()), venue(*cancel_history(), publish_market=False)
    for t in (1000, 2550, 3000, 10_000):
        a.advance(t)
        b.advance(t)
        assert a.depth(SYM, 10) == b.depth(SYM, 10)
    assert b.poll() == [] and len(a.poll()) > 0


# -- real recordings ---------------------------------------------------------------------------------------------------
SPOT = ["binance/spot/btcusdt_20240808.gz", "binance/spot/btcusdt_20240809.gz"]
USDM = ["binance/usdm/btcusdt_20240808.gz"]


def read_capture(shared_data, files):
    from workbench.data import BinanceCapture

    reader = BinanceCapture([shared_data / f for f in files])
    return reader, list(reader)


@pytest.fixture(scope="module")
def spot(shared_data):
    return read_capture(shared_data, SPOT)


@pytest.fixture(scope="module")
def usdm(shared_data):
    return read_capture(shared_data, USDM)


def spec_of(reader) -> SymbolSpec:
    return SymbolSpec(reader.instrument, "BTC", "USDT")


def bbo_check(chunks, tops: dict[int, tuple]) -> tuple[int, int]:
    """The data core's bookTicker check (BinanceCapture's ``bbo_checked`` / ``bbo_matched``), applied to the venue's
    tops: after each applied diff, the book against the latest bookTicker whose update id is not after the diff's
    ``u``, decided when a ticker with a later id has arrived (tickers and diffs travel on separate streams)."""
    tickers: list[tuple] = []
    pending: list[tuple] = []
    checked = matched = 0
    bid = None

    def resolve(u, top):
        nonlocal checked, matched
        for t in reversed(tickers[-4096:]):
            if t[0] <= u:
                checked += 1
                matched += top == t[1:]
                return

    for ev in chunks:
        cols = [ev[c].tolist() for c in ("kind", "flags", "id", "px_ticks", "qty_lots")]
        for kind, flags, uid, px, qty in zip(*cols):
            if kind == K_DEPTH and flags & F_BATCH_END and not flags & F_CLEAR:
                pending.append((uid, tops[uid]))
            elif kind == K_BBO:
                if not flags & F_BATCH_END:
                    bid = (px, qty)
                    continue
                tickers.append((uid, *bid, px, qty))
                k = 0
                while k < len(pending) and pending[k][0] < uid:
                    resolve(*pending[k])
                    k += 1
                del pending[:k]
    for p in pending:
        resolve(*p)
    return checked, matched


def served_tops(reader, chunks) -> dict[int, tuple]:
    """Step the venue (no user orders) message by message; the top it serves after each book message, by id."""
    v = ReplayVenue(chunks, spec_of(reader), publish_market=False)
    tops = {}
    while v.step() is not None:
        d = v.depth(v.symbol, 1)
        if d.bids and d.asks:
            tops[v.last_update_id] = (*d.bids[0], *d.asks[0])
    return tops


@pytest.mark.data
@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_served_book_equals_the_recorded_bookticker(market, request):
    reader, chunks = request.getfixturevalue(market)
    checked, matched = bbo_check(chunks, served_tops(reader, chunks))
    # the same check as the data core's, on the same diffs, with the same outcome
    assert (checked, matched) == (reader.stats["bbo_checked"], reader.stats["bbo_matched"])
    assert checked > 6000 and matched / checked >= 0.999


@pytest.mark.data
def test_bulk_and_message_by_message_serve_the_same_book(spot):
    """With nothing to publish and no user order, ``advance`` hands all due rows to the book at once."""
    reader, chunks = spot
    bulk = ReplayVenue(chunks[:3], spec_of(reader), publish_market=False)
    each = ReplayVenue(chunks[:3], spec_of(reader))
    t = bulk.next_event_ns
    while not each.exhausted:
        t += 3_000_000_000
        bulk.advance(t)
        each.advance(t)
        each.poll()
        assert bulk.depth(bulk.symbol, 50) == each.depth(each.symbol, 50)
        assert bulk.now_ns == each.now_ns
    assert bulk.exhausted and bulk.counts["rows"] == each.counts["rows"] > 0
    assert bulk.counts["messages"] == each.counts["messages"]


@pytest.mark.data
def test_a_binance_rule_client_stays_in_sync(spot):
    """A client buffers the level changes from the start, takes ``depth()`` as its REST snapshot after a while,
    drops buffered changes with ``u <= lastUpdateId``, applies the rest and everything after: its book is the
    venue's at every checkpoint, and the ids it sees never go back."""
    reader, chunks = spot
    v = ReplayVenue(chunks, spec_of(reader))
    t0 = v.next_event_ns
    buffered: list[LevelChange] = []
    v.advance(t0 + 20_000_000_000)
    buffered += [e for e in v.poll() if isinstance(e, LevelChange)]
    snapshot = v.depth(v.symbol, 100_000)
    v.advance(t0 + 21_000_000_000)
    buffered += [e for e in v.poll() if isinstance(e, LevelChange)]
    book = {BID: dict(snapshot.bids), ASK: dict(snapshot.asks)}
    last = snapshot.last_update_id

    def apply(changes):
        nonlocal last
        for e in changes:
            if e.update_id <= snapshot.last_update_id:
                continue
            assert e.update_id >= last
            last = e.update_id
            if e.qty_lots:
                book[e.side][e.px_ticks] = e.qty_lots
            else:
                book[e.side].pop(e.px_ticks, None)

    apply(buffered)
    n_checks = 0
    t = t0 + 21_000_000_000
    while not v.exhausted:
        t += 30_000_000_000
        v.advance(t)
        apply(e for e in v.poll() if isinstance(e, LevelChange))
        d = v.depth(v.symbol, 100_000)
        assert d.last_update_id == last
        assert sorted(book[BID].items(), reverse=True) == d.bids and sorted(book[ASK].items()) == d.asks
        n_checks += 1
    assert n_checks >= 10


@pytest.mark.data
def test_no_order_is_lost_under_random_user_actions(spot):
    """Random orders of every type and cancels from two accounts over the real spot capture: every accepted order
    ends filled, cancelled, expired or still open; execution reports, fills, commissions and balances reconcile
    exactly; balances never go negative."""
    reader, chunks = spot
    spec = spec_of(reader)
    fees = {1: FeeSchedule(maker_ppm=-50, taker_ppm=700), 2: FeeSchedule(maker_ppm=200, taker_ppm=1000)}
    init = {"BTC": 10**9, "USDT": 10**16}  # 10 BTC (lots of 1e-8), 1e6 USDT (units of 1e-10)
    v = ReplayVenue(chunks[:2], spec, queue=ProbabilisticQueue(3), accounts={1: init, 2: init}, seed=5)
    for acc, fs in fees.items():
        v.set_fees(acc, fs)
    rnd = random.Random(11)
    events: list = []
    placed: dict[int, object] = {}
    fills_in_results = []
    t = v.next_event_ns
    while not v.exhausted:
        t += rnd.choice([20, 50, 100, 400]) * 1_000_000
        v.advance(t)
        events += v.poll()
        d = v.depth(spec.symbol, 3)
        if not (d.bids and d.asks):
            continue
        for _ in range(rnd.choice([0, 0, 1, 2])):
            acc = rnd.choice([1, 2])
            act = rnd.random()
            if act < 0.15 and v.open_orders(acc):
                o = rnd.choice(v.open_orders(acc))
                assert v.cancel(acc, spec.symbol, t, order_id=o.order_id).order.status == OrderStatus.CANCELED
            elif act < 0.17:
                v.cancel_all(acc, spec.symbol, t)
            else:
                side = rnd.choice([BUY, SELL])
                touch = d.bids[0][0] if side > 0 else d.asks[0][0]
                px = touch + side * rnd.choice([-3, -1, 0, 0, 0, 1, 2, 50])  # behind, at and through the touch
                typ = rnd.choice([LIMIT, LIMIT, LIMIT, MAKER, MARKET])
                tif = rnd.choice([GTC, GTC, IOC, FOK])
                qty = rnd.choice([1, 500, 2_000, 20_000, 300_000])
                r = v.place(OrderRequest(acc, spec.symbol, side, typ, qty, px, tif), t)
                if r.order is not None:
                    placed[r.order.order_id] = r.order
                    fills_in_results += r.fills
                else:
                    assert r.rejection.code in (ErrorCode.NEW_ORDER_REJECTED, ErrorCode.INVALID_MESSAGE)
        for acc in (1, 2):
            for asset, (free, locked) in v.balances(acc).items():
                assert free >= 0 and locked >= 0, (acc, asset, free, locked)
    events += v.poll()

    rep = [e for e in events if isinstance(e, ExecutionReport)]
    by_order = defaultdict(list)
    for e in rep:
        by_order[e.order.order_id].append(e)
    assert set(by_order) == set(placed)
    fills = [e.fill for e in rep if e.exec_type == "TRADE"]
    assert set(f.trade_id for f in fills_in_results) <= set(f.trade_id for f in fills)
    assert len({f.trade_id for f in fills}) == len(fills)
    n_maker = n_taker = 0
    for oid, seq in by_order.items():
        final = v.order(seq[0].order.account, spec.symbol, order_id=oid)
        assert seq[0].exec_type == "NEW" and seq[-1].order == final
        of = [e.fill for e in seq if e.fill]
        assert sum(f.qty_lots for f in of) == final.filled_lots
        assert sum(f.px_ticks * f.qty_lots for f in of) == final.quote_filled
        closing = {"FILLED": OrderStatus.FILLED, "CANCELED": OrderStatus.CANCELED, "EXPIRED": OrderStatus.EXPIRED}
        if final.status.is_open:
            assert final in v.open_orders(final.account)
            assert final.type != MARKET and final.tif == GTC
        else:
            assert final.status in closing.values()
            assert final.status != OrderStatus.FILLED or final.filled_lots == final.qty_lots
        for f in of:
            fs = fees[f.account]
            rate = fs.maker_ppm if f.is_maker else fs.taker_ppm
            assert f.commission == commission_units(f.px_ticks, f.qty_lots, rate)
            if f.is_maker:
                n_maker += 1
                assert f.px_ticks == final.px_ticks
            else:
                n_taker += 1
                assert final.type == MARKET or (f.px_ticks - final.px_ticks) * final.side <= 0
    assert n_maker > 20 and n_taker > 20, (n_maker, n_taker)

    for acc in (1, 2):
        mine = [f for f in fills if f.account == acc]
        base = init["BTC"] + sum(f.side * f.qty_lots for f in mine)
        quote = init["USDT"] - sum(f.side * f.px_ticks * f.qty_lots + f.commission for f in mine)
        bal = v.balances(acc)
        assert sum(bal["BTC"]) == base and sum(bal["USDT"]) == quote
        opens = v.open_orders(acc)
        fmax = max(fees[acc].maker_ppm, fees[acc].taker_ppm, 0)
        assert bal["BTC"][1] == sum(o.qty_lots - o.filled_lots for o in opens if o.side < 0)
        lock = 0
        for o in opens:
            if o.side > 0:
                left = o.qty_lots - o.filled_lots
                lock += o.px_ticks * left + commission_units(o.px_ticks, left, fmax) + left
        assert bal["USDT"][1] == lock


@pytest.mark.data
def test_parquet_source_in_small_chunks_serves_the_same_book(spot, tmp_path):
    from workbench.data import read_events, write_events

    reader, chunks = spot
    ev = chunks[0][:40_000]
    path = tmp_path / "spot.parquet"
    write_events(path, [ev], instrument=reader.instrument)
    a = ReplayVenue([ev], spec_of(reader))
    b = ReplayVenue(read_events(path, chunk_rows=777), spec_of(reader))  # messages split across chunks
    t = int(ev["ts_exch_ns"].min())
    while not a.exhausted:
        t += 250_000_000
        a.advance(t)
        b.advance(t)
        assert a.depth(a.symbol, 20) == b.depth(b.symbol, 20)
        assert a.poll() == b.poll()
    assert b.exhausted


@pytest.mark.data
def test_lobster_messages(shared_data):
    """Order-level rows: the venue's book is the L2 book of the same rows, each message's level change carries the
    level's new total, trades come from executions, and a resting order fills from them."""
    from workbench.data import iter_lobster_messages

    path = shared_data / "lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv"
    ev = np.concatenate(list(iter_lobster_messages(path)))[:8000]
    spec = SymbolSpec(Instrument("AMZN", "0.0001", "1"), "AMZN", "USD")
    v = ReplayVenue([ev], spec, accounts={1: {"USD": 10**15}})
    ref = L2Book()
    rec = ref.replay(ev, 1)
    t = int(ev["ts_exch_ns"][999])
    n = int(np.searchsorted(ev["ts_exch_ns"], t, side="right"))  # rows due at t (LOBSTER's times are sorted)
    v.advance(t)
    d = v.depth("AMZN", 1)
    k = n - 1  # the book after the last due row
    assert (d.bids[0], d.asks[0]) == ((rec.bid_px[k], rec.bid_qty[k]), (rec.ask_px[k], rec.ask_qty[k]))
    out = v.poll()
    changes = [e for e in out if isinstance(e, LevelChange)]
    prints = [e for e in out if isinstance(e, TradePrint)]
    kinds = ev["kind"][:n]
    book_rows = ev[:n][np.isin(kinds, [5, 6, 7, 8])]  # add, cancel, delete, visible execution
    assert [e.update_id for e in changes] == list(range(1, len(book_rows) + 1))
    mirror = L2Book()
    for e, row in zip(changes, book_rows):  # each change carries the level's new total after its row
        mirror.apply(row[None])
        assert (e.side, e.px_ticks) == (row["side"], row["px_ticks"])
        p, q = mirror.side_levels(e.side)
        assert e.qty_lots == (int(q[p == e.px_ticks][0]) if (p == e.px_ticks).any() else 0)
    assert len(prints) == int(np.count_nonzero(np.isin(kinds, [8, 9, 10]))) > 0
    quiet = ReplayVenue([ev], spec, publish_market=False)  # the bulk path counts the same ids
    quiet.advance(t)
    assert quiet.depth("AMZN", 5) == v.depth("AMZN", 5) and quiet.last_update_id == len(book_rows)
    bid = d.bids[0][0]
    oid = v.place(OrderRequest(1, "AMZN", BUY, LIMIT, 100, bid), v.now_ns).order.order_id
    v.advance(int(ev["ts_exch_ns"][-1]))
    o = v.order(1, "AMZN", order_id=oid)
    assert o.filled_lots > 0  # the price moved through, or the queue ahead traded away, within 7,000 messages
    rec_last = (int(rec.bid_px[-1]), int(rec.ask_px[-1]))
    d = v.depth("AMZN", 1)
    assert (d.bids[0][0], d.asks[0][0]) == rec_last
