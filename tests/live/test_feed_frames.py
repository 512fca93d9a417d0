"""The feed's frame path (numba pre-parser + chain kernel, runs of frames) against its general path (orjson and
Python, ``fast_parse=False``): same books, counters, trades and statuses on the same frames, malformed ones
included (counted, never fatal). Sans-I/O: frames and snapshots are handed to the client directly."""

from __future__ import annotations

import json

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.book.nb import live_chain_nb
from workbench.data.binance import FRAME_WIDTH, preparse_frames_nb
from workbench.instrument import Instrument
from workbench.live.feed import FeedClient, FeedConfig

INS = {"BTCUSDT": Instrument("BTCUSDT", "0.01", "0.00001"), "ETHUSDT": Instrument("ETHUSDT", "0.05", "0.001")}


def client(fast: bool, symbols=("BTCUSDT", "ETHUSDT")):
    cfg = FeedConfig(stream_url="ws://127.0.0.1:9", rest_url="http://127.0.0.1:9", symbols=symbols, fast_parse=fast)
    log = {"status": [], "trades": [], "books": [], "fetches": []}
    feed = FeedClient(cfg, {s: INS[s] for s in symbols},
                      on_status=lambda s, what, detail: log["status"].append((s, what)),
                      on_trade=lambda t: log["trades"].append(t),
                      on_book=lambda s: log["books"].append((s, feed.top(s))))
    feed._fetch_snapshot = lambda symbol, st_: log["fetches"].append(symbol)  # no I/O: the test hands snapshots
    return feed, log


def state(feed, log):
    books = {}
    for s, st_ in feed.symbols.items():
        books[s] = ([a.tolist() for a in st_.book.side_levels(1)], [a.tolist() for a in st_.book.side_levels(-1)],
                    st_.last_update_id, st_.sync.in_sync, st_.sync.last_id, dict(st_.sync.stats.counts))
    stats = {k: v for k, v in feed.stats.items() if k != "batches"}
    return books, stats, log["status"], log["trades"], log["fetches"]


def diff(sym, first, last, bids, asks, *, pu=None, e=1_700_000_000_000, **extra):
    d = {"e": "depthUpdate", "E": e, "s": sym, "U": first, "u": last}
    if pu is not None:
        d["pu"] = pu
    d.update(b=bids, a=asks, **extra)
    return d


def frame(d, stream="btcusdt@depth@100ms", style=0):
    msg = {"stream": stream, "data": d}
    if style == 1:  # blanks: valid JSON the kernel leaves to the general way
        return json.dumps(msg).encode()
    return orjson.dumps(msg)


def snapshot(uid, bids, asks):
    return orjson.dumps({"lastUpdateId": uid, "bids": bids, "asks": asks})


def px(ticks, ins="BTCUSDT"):
    return INS[ins].ticks_to_str(ticks)


def qty(lots, ins="BTCUSDT"):
    return INS[ins].lots_to_str(lots)


# -- generated streams ---------------------------------------------------------------------------------------------
# A level's texts: plain ones (most), and odd ones: exponents, signs, too fine, not numbers, more digits than int64.
odd_px = st.sampled_from(["6e4", "-60000.00", "60000.001", "abc", "", "1" * 25, "60000.00 ", "+60000.00", 5])
odd_qty = st.sampled_from(["1e-3", "-0.5", "0.000001", "x", "9" * 30, None, "0.5\\u0030"])


@st.composite
def level(draw, sym):
    ins = "BTCUSDT" if sym == "BTCUSDT" else "ETHUSDT"
    p = draw(st.integers(5_999_900, 6_000_100)) if ins == "BTCUSDT" else draw(st.integers(59_900, 60_100))
    q = draw(st.integers(0, 3) | st.integers(0, 10**6))
    lv = [px(p, ins), qty(q, ins)]
    if draw(st.integers(0, 30)) == 0:
        lv[draw(st.integers(0, 1))] = draw(odd_px) if draw(st.booleans()) else draw(odd_qty)
    return lv


@st.composite
def stream(draw):
    """(snapshot uids, frames and snapshot markers in order, run splits)."""
    items = []
    last = {"BTCUSDT": 100, "ETHUSDT": 500}
    for sym, uid in last.items():
        items.append(("snap", sym, uid))
    for _ in range(draw(st.integers(1, 60))):
        what = draw(st.integers(0, 20))
        sym = draw(st.sampled_from(["BTCUSDT", "ETHUSDT"]))
        low = sym.lower()
        if what <= 13:  # a diff continuing the chain (sometimes a gap, a duplicate, a futures-style pu)
            first = last[sym] + 1
            jump = draw(st.sampled_from([0] * 8 + [1, -3]))
            first += jump
            n_up = draw(st.integers(0, 3))
            last_id = first + n_up
            bids = draw(st.lists(level(sym), max_size=6))
            asks = draw(st.lists(level(sym), max_size=6))
            kw = {}
            if draw(st.integers(0, 10)) == 0:
                kw["pu"] = last[sym]
            if draw(st.integers(0, 15)) == 0:
                kw["T"] = 1_700_000_000_123
            d = diff(sym, first, last_id, bids, asks, **kw)
            if draw(st.integers(0, 25)) == 0:
                bad = draw(st.sampled_from(["noE", "noS", "Ustr", "UgtU", "other", "noA", "Efloat"]))
                if bad == "noE":
                    del d["E"]
                elif bad == "noS":
                    del d["s"]
                elif bad == "Ustr":
                    d["U"] = str(d["U"])
                elif bad == "UgtU":
                    d["U"], d["u"] = d["u"] + 1, d["U"]
                elif bad == "other":
                    d["s"] = "XRPUSDT"
                elif bad == "noA":
                    del d["a"]
                else:
                    d["E"] = 1.5
            items.append(("frame", frame(d, f"{low}@depth@100ms", style=int(draw(st.integers(0, 12)) == 0))))
            last[sym] = max(last[sym], last_id)
        elif what <= 16:  # a trade
            t = {"e": "trade", "E": 1_700_000_000_000, "s": sym, "t": draw(st.integers(1, 10**6)),
                 "p": px(6_000_000) if sym == "BTCUSDT" else px(60_000, "ETHUSDT"),
                 "q": qty(draw(st.integers(0, 5)), sym), "T": 1_700_000_000_001, "m": draw(st.booleans()), "M": True}
            if draw(st.integers(0, 8)) == 0:
                t["p"] = draw(odd_px)
            items.append(("frame", frame(t, f"{low}@trade")))
        elif what == 17:  # garbage and other messages
            items.append(("frame", draw(st.sampled_from([b"not json", b"{}", b'{"result":null,"id":1}', b"[1,2]",
                                                         b'{"stream":"x","data":{"e":"kline"}}', b"\xff\xfe"]))))
        elif what == 18:  # a new snapshot (answers a fetch; ignored while in sync)
            items.append(("snap", sym, last[sym] + draw(st.integers(-2, 0))))
        else:  # a diff far away (the window moves)
            first = last[sym] + 1
            p = 6_000_000 + draw(st.integers(-10**6, 10**6)) if sym == "BTCUSDT" else 60_000
            d = diff(sym, first, first, [[px(p - 1, sym), qty(1, sym)]], [[px(p + 1, sym), qty(1, sym)]])
            items.append(("frame", frame(d, f"{low}@depth@100ms")))
            last[sym] = first
    cuts = draw(st.lists(st.integers(1, 8), min_size=len(items), max_size=len(items)))
    return items, cuts


def feed_all(feed, items, cuts, book_rows):
    """Frames in runs of the given sizes (a snapshot ends a run)."""
    run: list = []
    i = 0
    for (what, *rest), cut in zip(items, cuts):
        if what == "frame":
            run.append(rest[0])
            if len(run) >= cut:
                feed.handle_frames(run, 1)
                run = []
        else:
            if run:
                feed.handle_frames(run, 1)
                run = []
            sym, uid = rest
            feed.handle_snapshot(sym, snapshot(uid, book_rows[sym][0], book_rows[sym][1]))
        i += 1
    if run:
        feed.handle_frames(run, 1)


BOOK = {"BTCUSDT": ([[px(5_999_990 - k), qty(5 + k)] for k in range(10)],
                    [[px(6_000_010 + k), qty(7 + k)] for k in range(10)]),
        "ETHUSDT": ([[px(59_990 - k, "ETHUSDT"), qty(5, "ETHUSDT")] for k in range(5)],
                    [[px(60_010 + k, "ETHUSDT"), qty(5, "ETHUSDT")] for k in range(5)])}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream())
def test_the_frame_path_equals_the_general_path(s):
    items, cuts = s
    got = []
    for fast in (True, False):
        feed, log = client(fast)
        feed_all(feed, items, cuts, BOOK)
        got.append(state(feed, log))
    assert got[0] == got[1]


def test_a_plain_run_goes_through_the_kernels_and_the_book_once():
    feed, log = client(True, ("BTCUSDT",))
    feed.handle_snapshot("BTCUSDT", snapshot(100, *BOOK["BTCUSDT"]))
    frames = [frame(diff("BTCUSDT", 101 + k, 101 + k, [[px(5_999_995), qty(k + 1)]], [])) for k in range(50)]
    n0 = feed.stats["batches"]
    feed.handle_frames(frames, 123)
    assert feed.stats["batches"] == n0 + 1 and feed.stats["diffs_applied"] == 50
    assert feed.book("BTCUSDT").top().bid_px_ticks == 5_999_995 and feed.top("BTCUSDT").bid_qty_lots == 50
    assert feed.symbols["BTCUSDT"].sync.last_id == 150 and log["books"][-1][1] == feed.book("BTCUSDT").top()
    # a duplicate and a gap: counted as the sync machine counts them
    feed.handle_frames([frames[-1], frame(diff("BTCUSDT", 160, 161, [], [[px(6_000_020), "0"]]))], 124)
    assert feed.symbols["BTCUSDT"].sync.stats["duplicates"] == 1 and feed.stats["gaps"] == 1
    assert not feed.in_sync("BTCUSDT") and log["fetches"] == ["BTCUSDT"]


def test_preparse_frames_reads_several_symbols_and_leaves_the_rest():
    syms = [b"BTCUSDT", b"ETHUSDT"]
    u8 = np.frombuffer(b"".join(syms), np.uint8)
    ends_s = np.cumsum([len(s) for s in syms]).astype(np.int64)
    scales = np.array([INS["BTCUSDT"].scales, INS["ETHUSDT"].scales], np.int64)
    frames = [frame(diff("ETHUSDT", 5, 6, [[px(60_000, "ETHUSDT"), qty(2, "ETHUSDT")]], [])),
              frame(diff("BTCUSDT", 7, 7, [], [[px(6_000_001), qty(3)], [px(6_000_002), "0"]]), style=1),
              frame(diff("BTCUSDT", 8, 8, [], [[px(6_000_001), qty(3)]], pu=7)),
              frame(diff("XRPUSDT", 9, 9, [], [[px(6_000_001), qty(3)]]))]
    buf = np.frombuffer(b"".join(frames), np.uint8)
    ends = np.cumsum([len(f) for f in frames]).astype(np.int64)
    pre = np.zeros((4, FRAME_WIDTH), np.int64)
    rows = np.zeros((8, 8), np.int64)
    assert preparse_frames_nb(buf, ends, 42, u8, ends_s, scales, pre, rows) == 2
    assert pre[:, 0].tolist() == [3, 0, 3, 0]  # blanks and another symbol: the general way
    assert pre[0, 8] == 1 and pre[2, 8] == 0 and pre[2, 4] == 7  # ETHUSDT is symbol 1; pu kept
    assert rows[0, 3] == 60_000 and rows[0, 4] == 2 and rows[0, 1] == 42  # ticks of 0.05, lots of 0.001
    assert rows[1, 3] == 6_000_001 and rows[1, 4] == 3 and rows[1, 5] == 8
    # too small a rows buffer: -1, and the frame that did not fit is left to the general way
    assert preparse_frames_nb(buf, ends, 42, u8, ends_s, scales, pre, rows[:1]) == -1 and pre[2, 0] == 0


def test_live_chain_stops_where_python_must_decide():
    pre = np.zeros((5, FRAME_WIDTH), np.int64)
    # kind, ts, U, u, pu, ms, n_bid, n, symbol
    pre[0] = [3, 0, 11, 12, 11 - 1 - 1, 1, 1, 2, 0]  # pu=9 != 10: but pu < 0 means spot; here futures-style
    pre[0, 4] = -1
    pre[1] = [3, 0, 13, 13, -1, 1, 1, 1, 0]
    pre[2] = [3, 0, 12, 13, -1, 1, 0, 3, 0]  # duplicate
    pre[3] = [3, 0, 15, 15, -1, 1, 0, 1, 0]  # gap
    pre[4] = [2, 0, 0, 0, 0, 0, 0, 0, 0]
    live = np.array([1], np.int64)
    last = np.array([10], np.int64)
    runs = np.zeros((1, 2), np.int64)
    counts = np.zeros((1, 2), np.int64)
    j, at = live_chain_nb(pre, 0, 5, 0, live, last, runs, counts)
    assert (j, at) == (3, 6) and last[0] == 13 and runs.tolist() == [[0, 3]] and counts.tolist() == [[2, 1]]
    live[0] = 0
    assert live_chain_nb(pre, 3, 5, 6, live, last, runs, counts) == (3, 6)
