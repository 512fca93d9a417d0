"""The synthetic market: it must look like a market, be a function of its seed and of time only, and trade with
users like an exchange does.

Market statistics are measured on 20 minutes of the default BTCUSDT market sampled every 100 ms (simulated once per
module, about a second of CPU); every threshold is one a broken model fails (a stuck mid, a one-sided or crossed
book, a Poisson flow where bursts are promised, ...).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from workbench.exceptions import ConfigError
from workbench.venue import nb
from workbench.venue import synthetic_nb as snb
from workbench.venue.api import (
    ExecutionReport,
    LevelChange,
    OrderRequest,
    OrderStatus,
    OrderType,
    TimeInForce,
    TradePrint,
    commission_units,
)
from workbench.venue.synthetic import (
    MARKET_ACCOUNTS,
    PRESETS,
    USER,
    USER_FEES,
    SyntheticConfig,
    SyntheticVenue,
)

SYM = "BTCUSDT"
S = 1_000_000_000
MS = 1_000_000
MINUTES = 20
BUY, SELL = 1, -1


def sample(venue: SyntheticVenue, seconds: float, every_ms: int = 100, levels: int = 10) -> dict[str, np.ndarray]:
    """Run the market, sampling the top of the book every ``every_ms``; returns the samples and the trade rows."""
    n = int(seconds * 1000 / every_ms)
    bid = np.zeros(n, np.int64)
    ask = np.zeros(n, np.int64)
    n_bids = np.zeros(n, np.int64)
    n_asks = np.zeros(n, np.int64)
    depth100 = np.zeros(n, np.int64)  # lots within 100 ticks of the touch, both sides
    trades = []
    t0 = venue.now_ns
    for i in range(n):
        tr = venue.simulate(t0 + (i + 1) * every_ms * MS)
        if len(tr):
            trades.append(tr.copy())
        d = venue.depth(SYM, levels)
        b, a = d.bids, d.asks
        bid[i] = b[0][0] if b else -1
        ask[i] = a[0][0] if a else -1
        n_bids[i], n_asks[i] = len(b), len(a)
        if i % 10 == 0 and b and a:
            deep = venue.depth(SYM, 1000)
            depth100[i] = sum(q for p, q in deep.bids if p > bid[i] - 100) + sum(
                q for p, q in deep.asks if p < ask[i] + 100)
    return {"bid": bid, "ask": ask, "n_bids": n_bids, "n_asks": n_asks, "depth100": depth100[::10],
            "trades": np.concatenate(trades) if trades else np.zeros(0, nb.out_dt)}


def taker_orders(trades: np.ndarray) -> np.ndarray:
    """One row per taker order (its first print): a market or marketable order, however many makers it hit."""
    first = np.r_[True, trades["order_id"][1:] != trades["order_id"][:-1]]
    return trades[first]


def fano_per_second(ts_ns: np.ndarray, seconds: int) -> float:
    """Variance / mean of the counts in 1 s buckets (1 for a Poisson process; above 1 for bursts)."""
    counts = np.bincount(((ts_ns - ts_ns.min()) // S).astype(np.int64), minlength=seconds)[:seconds]
    return float(counts.var() / counts.mean())


def vol_bp_per_sqrt_hour(mid: np.ndarray, step_s: float) -> float:
    r = np.diff(np.log(mid))
    return float(r.std() * np.sqrt(3600 / step_s) * 1e4)


@pytest.fixture(scope="module")
def market() -> dict[str, np.ndarray]:
    return sample(SyntheticVenue.default(seed=11), MINUTES * 60)


# -- configuration and the default venue -------------------------------------------------------------------------------


def test_default_venue_is_binance_like_with_a_funded_user_and_a_warm_book():
    v = SyntheticVenue.default()
    spec = v.symbols[SYM]
    assert (spec.instrument.tick_size, spec.instrument.lot_size) == ("0.01", "0.00001")
    assert spec.min_notional_ticks_lots == 5 * 10**7  # 5 USDT in units of 0.01 x 0.00001
    assert v.balances(USER) == {"BTC": (10 * 10**5, 0), "USDT": (10**6 * 10**7, 0)}
    assert v.fees_of(USER) == USER_FEES and v.fees_of(2) == USER_FEES  # accounts made on first use too
    d = v.depth(SYM, 20)
    assert len(d.bids) == len(d.asks) == 20
    assert abs(d.bids[0][0] - 6_000_000) < 60_000 and d.bids[0][0] < d.asks[0][0]  # within 1 % of 60 000
    assert v.now_ns == 0 and v.poll() == []  # the warm-up is history: nothing waits for poll


def test_presets_and_several_symbols():
    v = SyntheticVenue.default(symbols=("BTCUSDT", "ETHUSDT"), seed=3)
    assert set(v.symbols) == {"BTCUSDT", "ETHUSDT"}
    assert v.balances(USER)["ETH"] == (200 * 10**5, 0) and v.balances(USER)["USDT"][0] == 10**13
    v.advance(5 * S)
    events = v.poll()
    assert {e.symbol for e in events if isinstance(e, LevelChange)} == {"BTCUSDT", "ETHUSDT"}
    ts = [e.ts_ns for e in events]
    assert ts == sorted(ts)  # the symbols' flows interleave in time order
    with pytest.raises(ConfigError):
        SyntheticVenue.default(symbols=("DOGEUSDT",))
    assert set(PRESETS) >= {"BTCUSDT", "ETHUSDT"}


@pytest.mark.parametrize(
    "change",
    [{"hawkes_branching": 1.0}, {"liquidity": 0.0}, {"volatility_bp_per_sqrt_hour": -1.0}, {"tick_size": "0"},
     {"initial_px": "60000.001"}, {"quote_share": 1.5}, {"quote_share": 0.8, "deep_share": 0.3},
     {"behind_tail_exponent": 1.0}, {"improve_ticks": 0.5}],
)
def test_bad_configs_are_refused(change):
    with pytest.raises(ConfigError):
        SyntheticConfig(**change)


def test_market_accounts_are_reserved():
    with pytest.raises(ConfigError):
        SyntheticVenue(SyntheticConfig(), balances={MARKET_ACCOUNTS[0]: {"BTC": 1}})
    with pytest.raises(ConfigError):
        SyntheticVenue(SyntheticConfig(), max_gap_s=0.0)


# -- it looks like a market --------------------------------------------------------------------------------------------


def test_spread_is_one_to_three_ticks_mostly_and_never_crossed(market):
    spread = market["ask"] - market["bid"]
    assert (market["bid"] > 0).all() and (market["ask"] > 0).all()
    assert (spread >= 1).all(), "a crossed or locked book"
    assert np.mean(spread <= 3) >= 0.90
    assert np.mean(spread == 1) >= 0.5


def test_depth_on_both_sides_at_every_sample(market):
    assert market["n_bids"].min() >= 5 and market["n_asks"].min() >= 5
    assert np.median(market["n_bids"]) == np.median(market["n_asks"]) == 10


def test_trades_of_both_signs(market):
    orders = taker_orders(market["trades"])
    assert len(orders) > MINUTES * 60 * 5  # several taker orders a second
    buy_share = np.mean(orders["side"] > 0)
    assert 0.3 <= buy_share <= 0.7
    assert 0.3 <= np.mean(market["trades"]["side"] > 0) <= 0.7


def test_activity_comes_in_bursts_with_hawkes_and_not_without(market):
    seconds = MINUTES * 60
    bursty = fano_per_second(taker_orders(market["trades"])["ts_ns"], seconds)
    quiet = SyntheticVenue.default(seed=11, hawkes_branching=0.0)
    poisson = fano_per_second(taker_orders(quiet.simulate(seconds * S))["ts_ns"], seconds)
    assert bursty > 2.0
    assert 0.7 < poisson < 1.5


def test_mean_rates_do_not_depend_on_the_branching_ratio():
    # the base rates are (1 - n) x the targets: 12 market orders/s either way
    for n in (0.0, 0.8):
        cfg = SyntheticConfig(hawkes_branching=n, seed=5)
        v = SyntheticVenue(cfg)
        rows = []
        orig = v.engine.submit_batch

        def spy(cmds, publish=True):
            rows.append(int(((cmds["op"] == nb.OP_PLACE) & (cmds["type"] == nb.T_MARKET)).sum()))
            return orig(cmds, publish=publish)

        v.engine.submit_batch = spy
        v.simulate(600 * S)
        assert sum(rows) / 600 == pytest.approx(cfg.market_rate_per_s, rel=0.15)


def test_the_mid_moves_and_volatility_follows_its_knob(market):
    mid = (market["bid"] + market["ask"]) / 2
    assert len(np.unique(mid)) > 100
    realised = vol_bp_per_sqrt_hour(mid[::100], 10.0)  # 10 s returns
    knob = PRESETS[SYM].volatility_bp_per_sqrt_hour
    assert 0.6 * knob < realised < 1.5 * knob

    def vol(knob_bp: float) -> float:
        m = sample(SyntheticVenue.default(seed=2, volatility_bp_per_sqrt_hour=knob_bp), 600, every_ms=1000)
        return vol_bp_per_sqrt_hour((m["bid"] + m["ask"]) / 2, 1.0)

    low, high = vol(5.0), vol(40.0)
    assert 2.0 < low < 10.0 and high > 3 * low


def test_depth_grows_with_the_liquidity_knob(market):
    thick = sample(SyntheticVenue.default(seed=11, liquidity=3.0), 300)
    base = np.mean(market["depth100"])
    assert np.mean(thick["depth100"]) > 2.0 * base
    assert base > 50_000  # 0.5 BTC within a dollar of the touch (both sides, on average)


# -- determinism -------------------------------------------------------------------------------------------------------


def test_same_seed_same_market_other_seed_other_market():
    a, b, c = (SyntheticVenue.default(seed=s).simulate(120 * S) for s in (1, 1, 2))
    assert len(a) > 1000
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a["fill_px"], c["fill_px"])


def test_advancing_in_steps_of_1ms_or_in_one_step_gives_the_same_market():
    steps, whole = SyntheticVenue.default(seed=4), SyntheticVenue.default(seed=4)
    for i in range(1, 10_001):
        steps.advance(i * MS)
    whole.advance(10 * S)
    ea, eb = steps.poll(), whole.poll()
    assert len(ea) > 1000 and any(isinstance(e, TradePrint) for e in ea)
    assert ea == eb
    assert steps.depth(SYM, 5000) == whole.depth(SYM, 5000)


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 3 * S), min_size=1, max_size=30))
def test_any_chunking_gives_the_same_market(cuts):
    chunked, whole = SyntheticVenue.default(seed=9, warmup_s=5.0), SyntheticVenue.default(seed=9, warmup_s=5.0)
    for t in sorted(cuts):
        chunked.advance(t)
    chunked.advance(3 * S)
    whole.advance(3 * S)
    assert chunked.poll() == whole.poll()
    assert chunked.depth(SYM, 1000) == whole.depth(SYM, 1000)


def test_tiny_buffers_and_heaps_change_nothing():
    # the generator stops before an event it has no room for and resumes there: grow and compact paths
    small, big = SyntheticVenue.default(seed=6, warmup_s=0.0), SyntheticVenue.default(seed=6, warmup_s=0.0)
    flow = small._flows[0]
    flow.life, flow.bids, flow.asks = (np.zeros((8, 3), np.int64) for _ in range(3))
    small._cmds = np.zeros(16, nb.cmd_dt)
    a, b = small.simulate(60 * S), big.simulate(60 * S)
    np.testing.assert_array_equal(a, b)
    assert small.depth(SYM, 5000) == big.depth(SYM, 5000)
    assert len(flow.bids) > 8 and len(small._cmds) > 16


def test_venues_and_symbols_do_not_share_a_stream():
    alone = SyntheticVenue.default(seed=3)
    pair = SyntheticVenue.default(symbols=("BTCUSDT", "ETHUSDT"), seed=3)
    other = SyntheticVenue.default(seed=99)
    for i in range(1, 61):  # interleaved calls on three venues
        other.advance(i * S)
        alone.advance(i * S)
        pair.advance(i * S)
    btc = [e for e in pair.poll() if e.symbol == SYM]
    assert alone.poll() == btc


def test_splitmix64_matches_its_reference():
    def reference(state: int, n: int) -> list[int]:
        out, mask = [], (1 << 64) - 1
        for _ in range(n):
            state = (state + 0x9E3779B97F4A7C15) & mask
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
            out.append(z ^ (z >> 31))
        return out

    for seed in (0, 1, 2**64 - 1, 0x1234_5678_9ABC_DEF0):
        got = _draws(np.array([seed], np.uint64), 5)
        assert [int(x) for x in got] == reference(seed, 5)
    assert reference(0, 1) == [0xE220A8397B1DCDAF]  # the published first output of splitmix64 from 0
    u = _uniforms(np.array([0], np.uint64), 100_000)
    assert 0 < u.min() and u.max() <= 1 and abs(u.mean() - 0.5) < 0.005


@njit
def _draws(rng, n):
    out = np.empty(n, np.uint64)
    for i in range(n):
        out[i] = snb.splitmix64_nb(rng)
    return out


@njit
def _uniforms(rng, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = snb.uniform_nb(rng)
    return out


_DIGEST = """
import hashlib, sys, warnings
import numpy as np
warnings.simplefilter("ignore")  # numpy warns about the uint64 wrap-around the generator relies on
from workbench.venue.synthetic import SyntheticVenue
v = SyntheticVenue.default(seed=3, warmup_s=0.0)
rows = []
submit = v.engine.submit_batch
v.engine.submit_batch = lambda c, publish=True: (rows.append(c.copy()), submit(c, publish=publish))[1]
trades = v.simulate(3 * 10**9)
c = np.concatenate(rows)
h = hashlib.sha1()
for a, names in ((c, c.dtype.names), (trades, ("ts_ns", "trade_id", "fill_px", "fill_qty", "side"))):
    for f in names:
        h.update(np.ascontiguousarray(a[f]).tobytes())  # field by field: the aligned dtype has padding bytes
print(len(c), h.hexdigest())
"""


def test_the_compiled_flow_equals_the_plain_python_flow():
    # the same code run by the interpreter (NUMBA_DISABLE_JIT=1) is the reference of the compiled kernels
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outs = []
    for jit_off in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=jit_off)
        r = subprocess.run([sys.executable, "-c", _DIGEST], cwd=root, env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.split())
    assert int(outs[0][0]) > 300
    assert outs[0] == outs[1]


def test_time_never_goes_back_and_long_gaps_are_skipped():
    v = SyntheticVenue.default(seed=1)
    v.advance(2 * S)
    n = len(v.poll())
    v.advance(1 * S)  # earlier: nothing happens
    assert v.poll() == [] and n > 0
    before = v.depth(SYM, 50)
    v.advance(10**18)  # the wall clock on a venue started at 0: skipped, the market stood still
    assert v.poll() == [] and v.depth(SYM, 50) == before and v.now_ns == 10**18
    v.advance(10**18 + S)
    events = v.poll()
    assert events and all(10**18 < e.ts_ns <= 10**18 + S for e in events)
    # simulate() runs whatever span it is asked for
    w = SyntheticVenue.default(seed=1, max_gap_s=1.0)
    assert len(w.simulate(5 * S)) > 0 and w.now_ns == 5 * S


def test_an_hour_of_market_costs_little_cpu():
    v = SyntheticVenue.default(seed=8)
    t0 = time.process_time()
    trades = v.simulate(3600 * S)
    cpu = time.process_time() - t0
    assert len(trades) > 3600 * 10
    assert cpu < 3.0, f"one hour of market took {cpu:.2f} s of CPU"


# -- users trade with the flow -----------------------------------------------------------------------------------------


def user_fills(events) -> list:
    return [e.fill for e in events if isinstance(e, ExecutionReport) and e.fill is not None and e.order.account == USER]


def test_a_limit_buy_at_the_best_bid_gets_filled():
    v = SyntheticVenue.default(seed=21)
    bid = v.depth(SYM, 1).bids[0][0]
    res = v.place(OrderRequest(USER, SYM, BUY, OrderType.LIMIT, 100, bid), 0)  # 0.001 BTC
    assert res.rejection is None and res.order.status == OrderStatus.NEW
    oid = res.order.order_id
    filled_at = None
    for k in range(1, 1201):  # up to 120 s
        v.advance(k * 100 * MS)
        o = v.order(USER, SYM, order_id=oid)
        if o.filled_lots > 0:
            filled_at = k / 10
            break
    assert filled_at is not None, "a bid at the touch was never hit in 2 minutes"
    fills = user_fills(v.poll())
    assert fills and all(f.is_maker and f.px_ticks == bid for f in fills)


def test_a_large_stale_order_is_filled_over_several_events():
    # the arbitrageur of a reference jump takes at most sweep_max_quote (60 000 USDT, 1 BTC; the makers' new quotes
    # at the same instant take a little more): 5 BTC at the best bid are partially filled first, and the client has
    # time to see it and cancel the rest
    v = SyntheticVenue.default(seed=7)
    bid = v.depth(SYM, 1).bids[0][0]
    oid = v.place(OrderRequest(USER, SYM, BUY, OrderType.LIMIT, 500_000, bid), 0).order.order_id
    t = 0
    while v.order(USER, SYM, order_id=oid).filled_lots == 0 and t < 120 * S:
        t += MS
        v.advance(t)
    o = v.order(USER, SYM, order_id=oid)
    assert o.status == OrderStatus.PARTIALLY_FILLED and 0 < o.filled_lots <= 200_000
    assert v.cancel(USER, SYM, t + MS, order_id=oid).order.status == OrderStatus.CANCELED


def test_a_market_order_fills_against_the_synthetic_book():
    v = SyntheticVenue.default(seed=22)
    v.advance(S)
    ask = v.depth(SYM, 1).asks[0][0]
    res = v.place(OrderRequest(USER, SYM, BUY, OrderType.MARKET, 1000), S)  # 0.01 BTC
    assert res.order.status == OrderStatus.FILLED and res.order.filled_lots == 1000
    assert res.fills and min(f.px_ticks for f in res.fills) == ask and not any(f.is_maker for f in res.fills)
    res = v.place(OrderRequest(USER, SYM, SELL, OrderType.MARKET, 500), S)
    assert res.order.status == OrderStatus.FILLED


def test_user_accounting_reconciles_with_the_fills():
    v = SyntheticVenue.default(seed=23)
    start = {a: free + locked for a, (free, locked) in v.balances(USER).items()}
    rng = np.random.default_rng(0)
    now = 0
    events = []
    for _ in range(300):
        now += int(rng.integers(50, 400)) * MS
        v.advance(now)
        bid, ask = v.depth(SYM, 1).bids[0][0], v.depth(SYM, 1).asks[0][0]
        side = BUY if rng.random() < 0.5 else SELL
        qty = int(rng.integers(10, 2000))
        u = rng.random()
        if u < 0.2:
            req = OrderRequest(USER, SYM, side, OrderType.MARKET, qty)
        elif u < 0.8:
            px = (bid if side > 0 else ask) - side * int(rng.integers(0, 3))
            req = OrderRequest(USER, SYM, side, OrderType.LIMIT, qty, px)
        else:
            req = OrderRequest(USER, SYM, side, OrderType.LIMIT, qty, ask if side > 0 else bid, TimeInForce.IOC)
        v.place(req, now)
        if rng.random() < 0.1:
            v.cancel_all(USER, SYM, now)
        events += v.poll()
    fills = user_fills(events)
    assert len(fills) > 50 and any(f.is_maker for f in fills) and not all(f.is_maker for f in fills)
    base = sum(f.qty_lots * f.side for f in fills)
    quote = sum(-f.px_ticks * f.qty_lots * f.side - f.commission for f in fills)
    for f in fills:
        rate = USER_FEES.maker_ppm if f.is_maker else USER_FEES.taker_ppm
        assert f.commission == commission_units(f.px_ticks, f.qty_lots, rate)
    bal = v.balances(USER)
    assert bal["BTC"][0] + bal["BTC"][1] == start["BTC"] + base
    assert bal["USDT"][0] + bal["USDT"][1] == start["USDT"] + quote
    # what is locked is exactly what the open orders hold
    open_ = v.open_orders(USER, SYM)
    lock_btc = sum(o.qty_lots - o.filled_lots for o in open_ if o.side < 0)
    lock_usdt = sum((o.qty_lots - o.filled_lots) * (o.px_ticks + commission_units(o.px_ticks, 1, 1000))
                    for o in open_ if o.side > 0)
    assert bal["BTC"][1] == lock_btc and bal["USDT"][1] == lock_usdt
    # every fill of the user is a public trade too
    prints = {e.trade_id for e in events if isinstance(e, TradePrint)}
    assert {f.trade_id for f in fills} <= prints


# -- served ------------------------------------------------------------------------------------------------------------


def test_the_server_streams_the_synthetic_market():
    websockets = pytest.importorskip("websockets")
    from workbench.venue.keys import new_api_key
    from workbench.venue.server import VenueServer

    async def scenario():
        srv = VenueServer(SyntheticVenue.default(), [new_api_key(USER)])
        await srv.start()
        try:
            url = srv.urls["stream"] + "/ws/btcusdt@depth@100ms"
            async with websockets.connect(url) as ws:
                updates = []
                deadline = time.monotonic() + 5.0
                while len(updates) < 5 and time.monotonic() < deadline:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 3.0))
                    if msg.get("e") == "depthUpdate":
                        updates.append(msg)
        finally:
            await srv.stop()
        return updates

    updates = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert len(updates) == 5
    for m in updates:
        assert m["s"] == "BTCUSDT" and m["U"] <= m["u"] and (m["b"] or m["a"])
    for prev, m in zip(updates, updates[1:]):
        assert m["U"] == prev["u"] + 1  # a gapless chain, as Binance's book sync requires


def test_a_recording_of_the_synthetic_market_replays_to_the_same_book():
    from workbench.book.book import L2Book
    from workbench.enums import K_DEPTH, K_TRADE

    v = SyntheticVenue.default(seed=5)
    ev = v.record(30.0)["BTCUSDT"]
    kinds = set(ev["kind"].tolist())
    assert {K_DEPTH, K_TRADE} <= kinds and (np.diff(ev["ts_exch_ns"]) >= 0).all()
    book = L2Book()
    book.apply(ev)
    t = book.top()
    assert (t.bid_px_ticks, t.bid_qty_lots, t.ask_px_ticks, t.ask_qty_lots) == v.top("BTCUSDT")
    depth = ev[ev["kind"] == K_DEPTH]
    ends = depth[(depth["flags"] & 1) != 0]
    assert len(np.unique(ends["id"])) == len(ends)  # one message per update id
