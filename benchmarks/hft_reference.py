"""The hftbacktest half of the side-by-side backtest benchmark (DESIGN, "The side-by-side backtest benchmark").

    .venv/bin/python benchmarks/hft_reference.py [--copies 10] [--variant A|B|both] [--depth roivec|hashmap|both]
        [--inflight-holds]

Needs the ``bench`` extra (``pip install -e .[bench]``: hftbacktest) and the shared recordings; without the
recordings it prints why it skips and exits 0.

Data. The Binance USD-M BTCUSDT capture ``binance/usdm/btcusdt_20240808.gz`` (REST snapshot, ``depth@0ms`` diffs,
``bookTicker``, ``trade``; receive stamps in ns, 19 digits) is synchronized as Binance documents it before
hftbacktest sees it: the replay starts at the first diff with ``u >= lastUpdateId`` (it must have
``U <= lastUpdateId``; it may have arrived before the snapshot line, as a buffered diff), diffs with
``u < lastUpdateId`` and every line that arrived before that first diff are dropped, every later diff must chain
(``pu`` = previous ``u``), and the REST snapshot is the initial book. The kept ``depthUpdate`` and ``trade`` lines
are written to a temporary ``.gz`` and converted by hftbacktest's own converter
(``hftbacktest.data.utils.binancefutures.convert``; it shifts every local stamp by the most negative
``local - exchange`` difference, so the fastest row has zero feed latency, and splits rows whose exchange order
differs from their arrival order into an EXCH row and a LOCAL row). The snapshot line alone is converted the same
way and turned into hftbacktest's initial-snapshot array by ``create_last_snapshot``. Both are cached under
``$TMPDIR/workbench-hft-reference/<name>-<size>-<mtime_ns>-hbt<version>/`` (never in the repository).

Strategy (k = 1 tick, q = 0.01 BTC, at most N = 10 lots of q either way), in numba, on hftbacktest's local view:
each decision reads the local best bid/ask and position; targets are best bid - k and best ask + k ticks; a side is
on while one more fill keeps |position| <= N q; an acknowledged order (status NEW, no request in flight) sitting
exactly at its side's target is kept (one per side), every other acknowledged order with no request in flight is
cancelled, and a post-only (GTX) limit of q at the target is sent for each side that is on and has no order kept.
Taken literally, an order still in flight is not "kept", so a side may get a second order while its first is in
flight: variant A never decides with requests in flight (2 ms round trip, 100 ms apart), variant B does (counted
as ``sent_while_same_side_in_flight``); as the limit only looks at the filled position, stacked orders can take
|position| past N (``max_abs_position_lots_at_decisions``), and beyond N + 1 lots the side rule, read literally
(|position +/- q| <= N q), turns both sides off for good: on this capture variant B freezes at 12 lots after 48
fills. ``inflight_holds=True`` (``--inflight-holds``) is the alternative reading: a side with a new order in
flight gets no other order (then |position| stays within N here).
Filled, cancelled and rejected orders are cleared after each decision.
Variant A decides every 100 ms of the backtest clock (``hbt.elapse(100_000_000)`` returning 0; the clock starts at
the data's first event, here the first kept diff's exchange time). Variant B decides after each batch of feed rows
sharing one (shifted) arrival stamp (``hbt.wait_next_feed(False, timeout)`` returning 2). hftbacktest never
decides after the data's last event: ``elapse`` returns 1 (end) rather than 0 when nothing is left after its
target, and ``wait_next_feed`` returns 1 rather than 2 after the last batch, so variant B makes one decision fewer
than there are arrival batches. Counts are deterministic (same every copy).

Venue: constant 1 ms order latency each way, ``no_partial_fill_exchange``, ``power_prob_queue_model(3)``, maker
fee -0.5 bp, taker fee 7 bp (``trading_value_fee_model``), tick 0.1, lot 0.001, linear asset. Market depth:
``ROIVectorMarketDepthBacktest`` with ROI = the snapshot's touch -/+ 10 % by default (the capture also holds far
levels from 560 to 621,368.7 USDT, ignored there), or ``HashMapMarketDepthBacktest`` (every level); on this
capture both give the same decisions, fills and P&L.

Timing: after one warm-up copy (numba compilation), ``copies`` consecutive copies of the day, each a fresh
hftbacktest instance on the same in-memory arrays starting from the snapshot (book reset at each copy, and so are
position, orders and balance). ``seconds`` covers building each instance, its run and closing it;
``run_seconds`` only the strategy loops. Events = rows of the converted data x copies (hftbacktest runs each row
through its exchange side, its local side or both, as the row's EXCH/LOCAL flags say; a row the converter split
because exchange and arrival order differ counts twice).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from numba import njit

try:  # the bench extra
    import hftbacktest
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest, ROIVectorMarketDepthBacktest
    from hftbacktest.data.utils import binancefutures
    from hftbacktest.data.utils.snapshot import create_last_snapshot
    from hftbacktest.order import BUY, EXPIRED, GTX, LIMIT, NEW, NONE

    HFT_VERSION: str | None = hftbacktest.__version__
except ImportError:  # pragma: no cover - reported by run_hftbacktest / main
    HFT_VERSION = None
    BUY, EXPIRED, GTX, LIMIT, NEW, NONE = 1, 2, 1, 0, 1, 0

try:
    from workbench.data.paths import shared_data_root
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from workbench.data.paths import shared_data_root

__all__ = [
    "CAPTURE", "TICK_SIZE", "LOT_SIZE", "K_TICKS", "Q", "N_MAX", "DECIDE_EVERY_NS", "LATENCY_NS", "MAKER_FEE",
    "TAKER_FEE", "QUEUE_POWER", "capture_path", "converted_data", "run_hftbacktest",
]

CAPTURE = "binance/usdm/btcusdt_20240808.gz"
TICK_SIZE = 0.1            # USD-M BTCUSDT
LOT_SIZE = 0.001
K_TICKS = 1                # quote k ticks behind the touch
Q = 0.01                   # order size, BTC
N_MAX = 10                 # at most N lots of Q either way
DECIDE_EVERY_NS = 100_000_000
LATENCY_NS = 1_000_000     # order entry and response latency, each way
MAKER_FEE = -0.00005       # -0.5 bp (a rebate)
TAKER_FEE = 0.0007         # 7 bp
QUEUE_POWER = 3.0
ROI_SPAN = 0.10            # depth="roivec": its vectors cover the snapshot's best bid/ask -/+ 10 %
WAIT_TIMEOUT_NS = 3_600_000_000_000   # variant B: wait_next_feed timeout (longer than the whole capture)

_INVALID_MIN = -(2**63)    # hftbacktest's best_bid_tick / best_ask_tick of an empty side
_INVALID_MAX = 2**63 - 1

# counters returned by the strategy kernels
C_DECISIONS, C_SENT, C_CANCELS, C_NO_BOOK, C_EXPIRED, C_SENT_INFLIGHT, C_MAX_ABS_POS = 0, 1, 2, 3, 4, 5, 6
N_COUNTERS = 7


# --------------------------------------------------------------------------------------------------- data ----------
def capture_path() -> Path | None:
    """The USD-M capture, or None when the shared recordings are not there."""
    root = shared_data_root()
    if root is None:
        return None
    p = Path(root) / CAPTURE
    return p if p.is_file() else None


def _cache_dir(src: Path) -> Path:
    st = src.stat()
    key = f"{src.name.split('.')[0]}-{st.st_size}-{st.st_mtime_ns}-hbt{HFT_VERSION}"
    return Path(tempfile.gettempdir()) / "workbench-hft-reference" / key


def _synchronize(src: Path) -> tuple[bytes, list[bytes], dict]:
    """(snapshot line, kept depthUpdate/trade lines in arrival order, facts), by Binance's USD-M rules."""
    with gzip.open(src, "rb") as f:
        lines = f.read().splitlines()
    msgs = []
    snap_i = None
    for i, line in enumerate(lines):
        if not line.strip():
            msgs.append(None)
            continue
        m = orjson.loads(line.split(b" ", 1)[1])
        msgs.append(m)
        if snap_i is None and "stream" not in m and "lastUpdateId" in m:
            snap_i = i
    if snap_i is None:
        raise ValueError(f"{src}: no REST snapshot line")
    last_id = msgs[snap_i]["lastUpdateId"]
    start = None
    for i, m in enumerate(msgs):
        if m is not None and "data" in m and m["data"].get("e") == "depthUpdate" and m["data"]["u"] >= last_id:
            start = i
            break
    if start is None:
        raise ValueError(f"{src}: no diff reaches the snapshot's lastUpdateId {last_id}")
    first = msgs[start]["data"]
    if first["U"] > last_id:
        raise ValueError(f"{src}: gap between the snapshot ({last_id}) and the first diff (U={first['U']})")
    kept: list[bytes] = []
    stale = 0
    n_diffs = n_trades = n_levels = 0
    prev_u = None
    for i in range(start, len(lines)):
        m = msgs[i]
        if m is None or i == snap_i or "data" not in m:
            continue
        d = m["data"]
        e = d.get("e")
        if e == "depthUpdate":
            if d["u"] < last_id:
                stale += 1
                continue
            if prev_u is not None and d["pu"] != prev_u:
                raise ValueError(f"{src}: diff chain broken at line {i + 1} (pu={d['pu']}, previous u={prev_u})")
            prev_u = d["u"]
            n_diffs += 1
            n_levels += len(d["b"]) + len(d["a"])
            kept.append(lines[i])
        elif e == "trade" and d.get("X", "MARKET") == "MARKET":
            n_trades += 1
            kept.append(lines[i])
    dropped_before = sum(
        1 for m in msgs[:start] if m is not None and "data" in m and m["data"].get("e") in ("depthUpdate", "trade"))
    facts = {
        "last_update_id": last_id, "snapshot_line": snap_i + 1, "first_kept_line": start + 1,
        "first_diff_U": first["U"], "first_diff_u": first["u"], "diffs_kept": n_diffs, "trades_kept": n_trades,
        "level_rows_kept": n_levels, "stale_diffs_after_start": stale,
        "diff_and_trade_lines_dropped_before_start": dropped_before,
        "snapshot_levels": [len(msgs[snap_i]["bids"]), len(msgs[snap_i]["asks"])],
    }
    return lines[snap_i], kept, facts


def _write_gz(path: Path, lines: list[bytes]) -> None:
    tmp = path.with_suffix(".part")
    with gzip.open(tmp, "wb", compresslevel=1) as f:
        for line in lines:
            f.write(line)
            f.write(b"\n")
    os.replace(tmp, path)


def _convert(path: Path, rows_hint: int) -> np.ndarray:
    # the converter prints its progress (partly from numba, straight to fd 1): keep our stdout clean
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            data = binancefutures.convert(str(path), output_filename=None, combined_stream=True,
                                          buffer_size=rows_hint + 16)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    return data


def converted_data() -> tuple[list[str], np.ndarray]:
    """([path of the converted feed, ``.npz`` with key ``data``], initial snapshot as an hftbacktest event array).

    The feed is the synchronized capture through hftbacktest's own converter; the snapshot is the REST snapshot
    through the same converter and ``create_last_snapshot``. Cached per input size+mtime (and hftbacktest version)
    under the system temp dir. Facts about the synchronization are in ``sync.json`` beside the feed.
    Raises FileNotFoundError without the recordings, ImportError without hftbacktest.
    """
    if HFT_VERSION is None:
        raise ImportError("hftbacktest is not installed: pip install -e .[bench]")
    src = capture_path()
    if src is None:
        raise FileNotFoundError(f"{CAPTURE} not found under the shared data root ({shared_data_root()})")
    cache = _cache_dir(src)
    feed, snap, meta = cache / "feed.npz", cache / "snapshot.npz", cache / "sync.json"
    if not (feed.is_file() and snap.is_file() and meta.is_file()):
        cache.mkdir(parents=True, exist_ok=True)
        snap_line, kept, facts = _synchronize(src)
        raw_first_local = int(kept[0][:19])
        _write_gz(cache / "synced.gz", kept)
        _write_gz(cache / "snapshot_line.gz", [snap_line])
        data = _convert(cache / "synced.gz", facts["level_rows_kept"] + facts["trades_kept"])
        snap_rows = _convert(cache / "snapshot_line.gz", sum(facts["snapshot_levels"]) + 2)
        snapshot = create_last_snapshot([snap_rows], tick_size=TICK_SIZE, lot_size=LOT_SIZE)
        ev = data["ev"].astype(np.int64)
        exch = (ev & hftbacktest.EXCH_EVENT) != 0
        local = (ev & hftbacktest.LOCAL_EVENT) != 0
        facts.update({
            "rows": int(len(data)), "rows_exch_and_local": int((exch & local).sum()),
            "rows_exch_only": int((exch & ~local).sum()), "rows_local_only": int((local & ~exch).sum()),
            "local_batches": int(len(np.unique(data["local_ts"][local]))),
            "local_shift_ns": int(data["local_ts"][local].min()) - raw_first_local,
            "first_event_ns": int(min(data["exch_ts"][exch].min(), data["local_ts"][local].min())),
            "last_event_ns": int(max(data["exch_ts"][exch].max(), data["local_ts"][local].max())),
            "snapshot_rows": int(len(snapshot)),
            "hftbacktest": HFT_VERSION, "source": str(src),
        })
        for path, arr in ((feed, data), (snap, snapshot)):
            tmp = path.with_name(path.stem + ".part.npz")
            np.savez(tmp, data=arr)
            os.replace(tmp, path)
        meta.write_text(json.dumps(facts, indent=1))
        for p in (cache / "synced.gz", cache / "snapshot_line.gz"):
            p.unlink(missing_ok=True)
    return [str(feed)], np.load(snap)["data"]


def sync_facts() -> dict:
    """What the synchronization kept and dropped (after :func:`converted_data` has run)."""
    src = capture_path()
    return json.loads((_cache_dir(src) / "sync.json").read_text()) if src else {}


# --------------------------------------------------------------------------------------------------- strategy ------
@njit
def _decide(hbt, k_ticks, q, n_max, inflight_holds, next_id, counters):
    """One decision on the local view; returns the next free order id. ``inflight_holds``: a side with a new-order
    request in flight gets no other order (not the DESIGN's literal rule; see the module docstring)."""
    counters[C_DECISIONS] += 1
    depth = hbt.depth(0)
    bid_tick = depth.best_bid_tick
    ask_tick = depth.best_ask_tick
    tick = depth.tick_size
    n_pos = int(round(hbt.position(0) / q))
    if abs(n_pos) > counters[C_MAX_ABS_POS]:
        counters[C_MAX_ABS_POS] = abs(n_pos)
    bid_valid = bid_tick != _INVALID_MIN and bid_tick != _INVALID_MAX
    ask_valid = ask_tick != _INVALID_MAX and ask_tick != _INVALID_MIN
    if not (bid_valid and ask_valid):
        counters[C_NO_BOOK] += 1
    bid_on = bid_valid and abs(n_pos + 1) <= n_max  # one more fill keeps |position| <= N (literally: beyond
    ask_on = ask_valid and abs(n_pos - 1) <= n_max  # N + 1 lots, even the side that would reduce it is off)
    bid_target = bid_tick - k_ticks
    ask_target = ask_tick + k_ticks

    bid_kept = False
    ask_kept = False
    bid_inflight = False  # a new-order request of that side still in flight
    ask_inflight = False
    values = hbt.orders(0).values()
    while values.has_next():
        order = values.get()
        if order.status == EXPIRED:
            counters[C_EXPIRED] += 1  # a post-only order the venue rejected (seen once: cleared below)
        if order.req == NEW:
            if order.side == BUY:
                bid_inflight = True
            else:
                ask_inflight = True
        if order.status != NEW or order.req != NONE:
            continue  # not acknowledged yet, or a request in flight, or done: leave it alone
        if order.side == BUY:
            if bid_on and not bid_kept and order.price_tick == bid_target:
                bid_kept = True
                continue
        else:
            if ask_on and not ask_kept and order.price_tick == ask_target:
                ask_kept = True
                continue
        hbt.cancel(0, order.order_id, False)
        counters[C_CANCELS] += 1
    if bid_on and not bid_kept and not (inflight_holds and bid_inflight):
        hbt.submit_buy_order(0, next_id, bid_target * tick, q, GTX, LIMIT, False)
        next_id += 1
        counters[C_SENT] += 1
        if bid_inflight:
            counters[C_SENT_INFLIGHT] += 1
    if ask_on and not ask_kept and not (inflight_holds and ask_inflight):
        hbt.submit_sell_order(0, next_id, ask_target * tick, q, GTX, LIMIT, False)
        next_id += 1
        counters[C_SENT] += 1
        if ask_inflight:
            counters[C_SENT_INFLIGHT] += 1
    hbt.clear_inactive_orders(0)  # drop filled / cancelled / expired orders: keeps the next walk short
    return next_id


@njit
def _finish(hbt, out):
    """out = [position, balance, fee, num_trades, trading_volume, mid, best_bid_tick, best_ask_tick]."""
    sv = hbt.state_values(0)
    depth = hbt.depth(0)
    out[0] = sv.position
    out[1] = sv.balance
    out[2] = sv.fee
    out[3] = sv.num_trades
    out[4] = sv.trading_volume
    out[5] = (depth.best_bid + depth.best_ask) / 2.0
    out[6] = depth.best_bid_tick
    out[7] = depth.best_ask_tick


@njit
def _run_a(hbt, interval_ns, k_ticks, q, n_max, inflight_holds, counters, out):
    next_id = 1
    while hbt.elapse(interval_ns) == 0:
        next_id = _decide(hbt, k_ticks, q, n_max, inflight_holds, next_id, counters)
    _finish(hbt, out)


@njit
def _run_b(hbt, timeout_ns, k_ticks, q, n_max, inflight_holds, counters, out):
    next_id = 1
    while True:
        r = hbt.wait_next_feed(False, timeout_ns)
        if r == 2:
            next_id = _decide(hbt, k_ticks, q, n_max, inflight_holds, next_id, counters)
        elif r != 0:
            break  # 1: end of data (anything else: an error code)
    _finish(hbt, out)


# --------------------------------------------------------------------------------------------------- runs ----------
_DATA_CACHE: dict = {}


def _arrays() -> tuple[np.ndarray, np.ndarray]:
    if "feed" not in _DATA_CACHE:
        paths, snapshot = converted_data()
        _DATA_CACHE["feed"] = np.ascontiguousarray(np.load(paths[0])["data"])
        _DATA_CACHE["snapshot"] = np.ascontiguousarray(snapshot)
    return _DATA_CACHE["feed"], _DATA_CACHE["snapshot"]


def _roi(snapshot: np.ndarray) -> tuple[float, float]:
    """ROI of depth="roivec": best bid - 10 % .. best ask + 10 % of the snapshot, on whole ticks (levels outside
    are ignored by hftbacktest's ROI book; the capture's far levels go from 560 to 621,368.7 USDT)."""
    bids = snapshot["px"][(snapshot["ev"] & hftbacktest.BUY_EVENT) != 0]
    asks = snapshot["px"][(snapshot["ev"] & hftbacktest.SELL_EVENT) != 0]
    lb = np.floor(bids.max() * (1 - ROI_SPAN) / TICK_SIZE) * TICK_SIZE
    ub = np.ceil(asks.min() * (1 + ROI_SPAN) / TICK_SIZE) * TICK_SIZE
    return float(lb), float(ub)


def _backtest(feed: np.ndarray, snapshot: np.ndarray, depth: str):
    asset = (
        BacktestAsset()
        .data([feed])                    # in-memory array: hftbacktest reads it through its pointer (keep it alive)
        .initial_snapshot(snapshot)
        .linear_asset(1.0)
        .constant_order_latency(LATENCY_NS, LATENCY_NS)
        .power_prob_queue_model(QUEUE_POWER)
        .no_partial_fill_exchange()
        .trading_value_fee_model(MAKER_FEE, TAKER_FEE)
        .tick_size(TICK_SIZE)
        .lot_size(LOT_SIZE)
        .last_trades_capacity(0)
    )
    if depth == "hashmap":
        return HashMapMarketDepthBacktest([asset])
    if depth == "roivec":
        lb, ub = _roi(snapshot)
        asset.roi_lb(lb).roi_ub(ub)
        return ROIVectorMarketDepthBacktest([asset])
    raise ValueError(f"depth must be 'hashmap' or 'roivec', got {depth!r}")


def _one_copy(variant: str, feed: np.ndarray, snapshot: np.ndarray, depth: str, inflight_holds: bool = False
              ) -> tuple[np.ndarray, np.ndarray, float]:
    """(counters, end state, seconds inside the strategy loop) of one copy on a fresh hftbacktest instance."""
    hbt = _backtest(feed, snapshot, depth)
    counters = np.zeros(N_COUNTERS, np.int64)
    out = np.zeros(8, np.float64)
    t0 = time.perf_counter()
    if variant == "A":
        _run_a(hbt, DECIDE_EVERY_NS, K_TICKS, Q, N_MAX, inflight_holds, counters, out)
    else:
        _run_b(hbt, WAIT_TIMEOUT_NS, K_TICKS, Q, N_MAX, inflight_holds, counters, out)
    run_s = time.perf_counter() - t0
    hbt.close()
    return counters, out, run_s


def run_hftbacktest(variant: str, copies: int = 10, depth: str = "roivec", inflight_holds: bool = False) -> dict:
    """Run ``variant`` ("A": every 100 ms; "B": after every feed batch) on ``copies`` consecutive copies of the day,
    after one warm-up copy; returns the figures (per-copy results are those of the first timed copy, and
    ``deterministic`` says whether every copy gave the same counts, fills, position and equity).

    ``seconds`` is the wall time of all copies including building and closing each hftbacktest instance;
    ``run_seconds`` only the strategy loops. ``depth``: "roivec" (``ROIVectorMarketDepthBacktest``, the fast
    one, ROI = snapshot touch -/+ 10 %) or "hashmap" (``HashMapMarketDepthBacktest``, every level kept).
    ``inflight_holds=True``: a side whose new order is still in flight gets no second one (off: DESIGN's rule read
    literally, the default)."""
    variant = variant.upper()
    if variant not in ("A", "B"):
        raise ValueError(f"variant must be 'A' or 'B', got {variant!r}")
    if HFT_VERSION is None:
        raise ImportError("hftbacktest is not installed: pip install -e .[bench]")
    feed, snapshot = _arrays()

    t0 = time.perf_counter()
    _one_copy(variant, feed, snapshot, depth, inflight_holds)  # warm-up: numba compiles for this backtest type
    warmup_s = time.perf_counter() - t0

    results = []
    t0 = time.perf_counter()
    for _ in range(copies):
        results.append(_one_copy(variant, feed, snapshot, depth, inflight_holds))
    seconds = time.perf_counter() - t0

    counters, out, _ = results[0]
    run_seconds = sum(r[2] for r in results)
    deterministic = all(np.array_equal(c, counters) and np.array_equal(o, out) for c, o, _ in results)
    position, balance, fee, num_trades, volume, mid = out[:6]
    events = len(feed) * copies
    return {
        "engine": "hftbacktest",
        "version": HFT_VERSION,
        "variant": variant,
        "depth": depth,
        "inflight_holds": bool(inflight_holds),
        "copies": copies,
        "rows_per_copy": int(len(feed)),
        "events": int(events),
        "seconds": seconds,
        "events_per_s": events / seconds,
        "run_seconds": run_seconds,
        "run_events_per_s": events / run_seconds,
        "warmup_seconds": warmup_s,
        "decisions": int(counters[C_DECISIONS]),
        "orders_sent": int(counters[C_SENT]),
        "cancels_sent": int(counters[C_CANCELS]),
        "sent_while_same_side_in_flight": int(counters[C_SENT_INFLIGHT]),
        "post_only_rejected": int(counters[C_EXPIRED]),
        "max_abs_position_lots_at_decisions": int(counters[C_MAX_ABS_POS]),
        "decisions_without_book": int(counters[C_NO_BOOK]),
        "fills": int(num_trades),
        "traded_btc": float(volume),
        "final_position": float(position),
        "balance": float(balance),
        "fees": float(fee),
        "final_mid": float(mid),
        "equity": float(balance + position * mid - fee),
        "deterministic": bool(deterministic),
    }


# --------------------------------------------------------------------------------------------------- main ----------
def _fmt(r: dict) -> str:
    return (
        f"variant {r['variant']} ({r['depth']}{', in-flight holds' if r['inflight_holds'] else ''}): "
        f"{r['events']:,} events ({r['rows_per_copy']:,} rows x {r['copies']})"
        f" in {r['seconds']:.3f} s = {r['events_per_s'] / 1e6:.2f} M events/s; strategy loops only "
        f"{r['run_seconds']:.3f} s = {r['run_events_per_s'] / 1e6:.2f} M/s (warm-up copy incl. compile "
        f"{r['warmup_seconds']:.2f} s)\n"
        f"    per copy: {r['decisions']:,} decisions, {r['orders_sent']:,} orders sent "
        f"({r['sent_while_same_side_in_flight']:,} while one of that side was in flight), "
        f"{r['cancels_sent']:,} cancels, {r['post_only_rejected']:,} post-only rejects, {r['fills']:,} fills "
        f"({r['traded_btc']:.3f} BTC), max |position| {r['max_abs_position_lots_at_decisions']} lots, "
        f"final position {r['final_position']:+.3f} BTC, fees {r['fees']:+.4f} USDT, "
        f"equity {r['equity']:+.4f} USDT (at mid {r['final_mid']:.2f}); copies identical: {r['deterministic']}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--variant", choices=["A", "B", "both"], default="both")
    ap.add_argument("--depth", choices=["roivec", "hashmap", "both"], default="both")
    ap.add_argument("--inflight-holds", action="store_true",
                    help="also run variant B with a side's in-flight new order holding back another one")
    args = ap.parse_args(argv)
    if capture_path() is None:
        print(f"SKIP: the shared recordings are absent ({CAPTURE} not found under {shared_data_root()}); "
              "nothing to benchmark")
        return 0
    if HFT_VERSION is None:
        print("SKIP: hftbacktest is not installed (pip install -e .[bench])")
        return 0
    try:
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        load = "n/a"
    print(f"hftbacktest {HFT_VERSION}, numpy {np.__version__}; uptime: {load}")
    t0 = time.perf_counter()
    paths, snapshot = converted_data()
    facts = sync_facts()
    print(f"data: {paths[0]} ({time.perf_counter() - t0:.2f} s incl. conversion if not cached)")
    print(f"    sync: lastUpdateId {facts['last_update_id']}, first kept diff U={facts['first_diff_U']} "
          f"u={facts['first_diff_u']} (line {facts['first_kept_line']}, snapshot line {facts['snapshot_line']}), "
          f"{facts['diffs_kept']} diffs / {facts['trades_kept']} trades kept, "
          f"{facts['diff_and_trade_lines_dropped_before_start']} diff/trade lines dropped before the start")
    print(f"    converted: {facts['rows']:,} rows ({facts['rows_exch_and_local']:,} EXCH|LOCAL, "
          f"{facts['rows_exch_only']:,} EXCH only, {facts['rows_local_only']:,} LOCAL only), "
          f"{facts['local_batches']:,} local arrival batches, local stamps shifted by {facts['local_shift_ns']:,} ns; "
          f"snapshot {facts['snapshot_rows']} levels")
    for depth in (["roivec", "hashmap"] if args.depth == "both" else [args.depth]):
        for v in (["A", "B"] if args.variant == "both" else [args.variant]):
            print(_fmt(run_hftbacktest(v, args.copies, depth)))
    if args.inflight_holds and args.variant in ("B", "both"):
        print(_fmt(run_hftbacktest("B", args.copies, "roivec" if args.depth == "both" else args.depth, True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
