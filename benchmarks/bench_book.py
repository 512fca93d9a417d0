"""Book and replay throughput, each printed with its ratio to a baseline measured in the same run.

    .venv/bin/python benchmarks/bench_book.py [--quick]

Figures (targets from issue 2):
- L2 book: level updates/s on a 10 M synthetic stream (target >= 50 M/s); baseline: a plain-Python dict book.
- LOBSTER replay after parsing: messages/s of the AMZN level-1 file through the book, recording the level-1 row
  after every message as ``workbench book --format lobster`` does (target >= 20 M/s); baseline: a dict book.
- Binance capture replay end to end (gzip, JSON, exact decimals, sync, book, checks): lines/s; baseline: gzip and
  orjson alone over the same lines (the floor of any reader in Python).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time

import numpy as np
import orjson

from workbench.book.book import L2Book
from workbench.data.binance import BinanceCapture
from workbench.data.lobster import iter_lobster_messages
from workbench.data.lobster_book import level1_rows
from workbench.data.paths import shared_data_root
from workbench.enums import F_BATCH_END, K_DEPTH, K_ORDER_ADD
from workbench.types import event_dt

DATA = shared_data_root()


def synthetic_depth(n: int, seed: int = 7) -> np.ndarray:
    """Absolute level updates around a random-walk mid: distance from the touch geometric (most activity at the
    top), a quarter of them deletes, a batch end every 8 rows."""
    rng = np.random.default_rng(seed)
    mid = 1_000_000 + np.cumsum(rng.integers(-1, 2, n) * (rng.random(n) < 0.05))
    side = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    dist = rng.geometric(0.15, n)
    ev = np.zeros(n, event_dt)
    ev["kind"] = K_DEPTH
    ev["side"] = side
    ev["px_ticks"] = np.where(side > 0, mid - dist + 1, mid + dist)
    ev["qty_lots"] = np.where(rng.random(n) < 0.25, 0, rng.integers(1, 1000, n))
    ev["flags"][7::8] = F_BATCH_END
    return ev


def dict_book_replay(kind, side, px, qty, flags, record: bool) -> int:
    """Baseline: the same semantics with two dicts and max/min on demand (what one writes first in Python)."""
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    rows = 0
    for k, s, p, q, f in zip(kind.tolist(), side.tolist(), px.tolist(), qty.tolist(), flags.tolist()):
        book = bids if s > 0 else asks
        if k == K_DEPTH:
            new = q
        elif k == K_ORDER_ADD:
            new = book.get(p, 0) + q
        elif 5 < k < 9:
            new = max(book.get(p, 0) - q, 0)
        else:
            new = None
        if new is not None and s != 0:
            if new:
                book[p] = new
            else:
                book.pop(p, None)
        if record and f & F_BATCH_END:
            _ = (max(bids) if bids else None, min(asks) if asks else None)
            rows += 1
    return rows


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_book(n: int) -> bool:
    ev = synthetic_depth(n)
    L2Book().apply(ev[:10_000])  # compile / load the cache
    t = best_of(lambda: L2Book().apply(ev), 3)
    m = min(n, 300_000)
    cols = [ev[c][:m] for c in ("kind", "side", "px_ticks", "qty_lots", "flags")]
    tb = best_of(lambda: dict_book_replay(*cols, record=False), 1) * (n / m)
    rate = n / t
    print(f"L2 book: {rate / 1e6:.1f} M level updates/s on {n / 1e6:.0f} M synthetic updates "
          f"(dict book: {n / tb / 1e6:.2f} M/s, ratio {tb / t:.0f}x; target >= 50 M/s)")
    return rate >= 50e6


def bench_lobster() -> bool | None:
    path = DATA / "lobster" / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
    if not path.exists():
        print(f"LOBSTER replay: skipped, {path} not found")
        return None
    t0 = time.perf_counter()
    ev = np.concatenate(list(iter_lobster_messages(path)))
    t_parse = time.perf_counter() - t0
    level1_rows(L2Book(), ev)  # compile
    reps = 20
    t = best_of(lambda: level1_rows(L2Book(), ev), reps)
    cols = [ev[c] for c in ("kind", "side", "px_ticks", "qty_lots", "flags")]
    tb = best_of(lambda: dict_book_replay(*cols, record=True), 1)
    rate = len(ev) / t
    print(f"LOBSTER replay after parsing: {rate / 1e6:.1f} M messages/s ({len(ev):,} AMZN messages, level-1 row "
          f"recorded after each; dict book: {len(ev) / tb / 1e6:.2f} M/s, ratio {tb / t:.0f}x; target >= 20 M/s); "
          f"parsing: {len(ev) / t_parse / 1e6:.2f} M messages/s")
    return rate >= 20e6


def bench_binance() -> None:
    files = sorted((DATA / "binance" / "spot").glob("btcusdt_*.gz"))
    if not files:
        print(f"Binance replay: skipped, no capture in {DATA / 'binance' / 'spot'}")
        return

    def parse_only() -> int:
        n = 0
        for f in files:
            with gzip.open(f, "rb") as fh:
                for line in fh:
                    orjson.loads(line[line.index(b" ") + 1 :])
                    n += 1
        return n

    n_lines = parse_only()
    tb = best_of(parse_only, 2)
    holder = {}

    def replay() -> None:
        r = BinanceCapture(files)
        holder["events"] = sum(len(c) for c in r)
        holder["stats"] = r.stats

    replay()
    t = best_of(replay, 2)
    st = holder["stats"]
    print(f"Binance capture replay end to end: {n_lines / t / 1e3:.0f} k messages/s, {holder['events'] / t / 1e6:.2f} M "
          f"events/s ({n_lines:,} lines of spot BTCUSDT 0808+0809, {st['diffs_applied']:,} diffs applied, "
          f"{st['bbo_matched']}/{st['bbo_checked']} bookTicker matches; gzip + orjson alone: "
          f"{n_lines / tb / 1e3:.0f} k lines/s, ratio {tb / t:.2f}x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 M synthetic updates instead of 10 M")
    args = ap.parse_args()
    ok = bench_book(1_000_000 if args.quick else 10_000_000)
    ok_lob = bench_lobster()
    bench_binance()
    met = ok and ok_lob is not False
    print(f"targets met: {met}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
