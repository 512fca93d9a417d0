"""Matching engine throughput through the batch kernel, with its ratio to the plain-Python reference engine.

    .venv/bin/python benchmarks/bench_venue.py [--quick]

The order flow (one symbol, five accounts: two unlimited liquidity providers and three funded accounts that get
execution reports): 60 % limit orders of the first four, priced relative to the best of their own side (at it or a
geometric number of ticks behind, 5 % one tick better), 30 % ``CANCEL_NTH`` (a random open order of the account),
10 % market orders of 1-30 lots from the fifth. Self-trade prevention, balance checks, locks, commissions and all
event rows are on. Commands are generated up front and submitted in batches of 100 k with ``publish=False`` (the
rows are returned, not queued as api objects). Target (issue 3): >= 2 M order operations/s after warm-up.
Baseline: the reference engine of ``tests/venue/test_matching_reference.py`` on the first commands of the stream.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package holds the reference engine

from tests.venue.test_matching_reference import ReferenceEngine  # noqa: E402
from workbench.instrument import Instrument  # noqa: E402
from workbench.venue import nb  # noqa: E402
from workbench.venue.api import FeeSchedule, SymbolSpec  # noqa: E402
from workbench.venue.matching import MatchingEngine  # noqa: E402

SPEC = SymbolSpec(Instrument("BTCUSDT", "0.01", "0.00001"), "BTC", "USDT", 1, 1_000_000, 0)
FEES = FeeSchedule(maker_ppm=-50, taker_ppm=700)  # the side-by-side benchmark's fees: -0.5 bp maker, 7 bp taker
REF_PX = 1_000_000
BIG = 10**15
UNLIMITED = (0, 1)
TAKER = 4  # market orders come from an account of their own: from a maker, STP would often expire them


def order_flow(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = np.zeros(n, nb.cmd_dt)
    u = rng.random(n)
    market = u >= 0.9
    c["op"] = np.where((u >= 0.6) & (u < 0.9), nb.OP_CANCEL_NTH, nb.OP_PLACE)
    side = np.where(rng.random(n) < 0.5, 1, -1)
    c["side"] = side
    c["type"] = np.where(market, 2, 1)
    c["tif"] = 1
    c["flags"] = np.where(market, 0, nb.F_REL_PX)
    behind = rng.geometric(0.3, n) - 1
    better = rng.random(n) < 0.05
    c["px"] = np.where(market, 0, np.where(better, side, -side * behind))
    c["qty"] = np.where(market, rng.integers(1, 31, n), rng.integers(1, 11, n))
    c["account"] = np.where(market, TAKER, rng.integers(0, 4, n))
    c["nth"] = rng.integers(0, 1 << 40, n)
    c["ts_ns"] = np.arange(n, dtype=np.int64) * 1_000
    return c


def new_engine() -> MatchingEngine:
    return MatchingEngine([SPEC], fees=FEES, balances={a: {"BTC": BIG, "USDT": BIG} for a in range(5)},
                          unlimited=UNLIMITED, ref_px_ticks={"BTCUSDT": REF_PX}, initial_orders=1 << 16)


def new_reference() -> ReferenceEngine:
    sym = {"base": 0, "quote": 1, "min_qty": SPEC.min_qty_lots, "max_qty": SPEC.max_qty_lots,
           "min_notional": 0, "ref": REF_PX}
    accounts = [{"maker": FEES.maker_ppm, "taker": FEES.taker_ppm, "unlimited": a in UNLIMITED,
                 "balances": {0: BIG, 1: BIG}} for a in range(5)]
    return ReferenceEngine([sym], accounts, 2)


def run_kernel(cmds: np.ndarray, batch: int) -> tuple[float, dict]:
    eng = new_engine()
    warm = 20_000
    eng.submit_batch(cmds[:warm], publish=False)  # load the compiled kernel, grow the arrays
    rows = fills = 0
    t = time.perf_counter()
    for lo in range(warm, len(cmds), batch):
        res, out = eng.submit_batch(cmds[lo : lo + batch], publish=False)
        rows += len(out)
        fills += int(np.count_nonzero(out["kind"] == nb.EV_TRADE))
    dt = time.perf_counter() - t
    n = len(cmds) - warm
    info = {"rows": rows / n, "fills": fills / n, "open": sum(len(eng.open_orders(a)) for a in range(4)),
            "levels": len(eng.depth("BTCUSDT", 1 << 20).bids) + len(eng.depth("BTCUSDT", 1 << 20).asks)}
    return n / dt, info


def run_reference(cmds: np.ndarray) -> float:
    ref = new_reference()
    t = time.perf_counter()
    ref.run(cmds)
    return len(cmds) / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 M commands instead of 5 M, a smaller baseline")
    args = ap.parse_args()
    n = 1_000_000 if args.quick else 5_000_000
    cmds = order_flow(n)
    rate, info = max((run_kernel(cmds, 100_000) for _ in range(1 if args.quick else 3)), key=lambda x: x[0])
    m = 20_000 if args.quick else 50_000
    base = run_reference(cmds[:m])
    print(f"matching engine: {rate / 1e6:.2f} M order ops/s on {n / 1e6:.0f} M commands, batches of 100 k "
          f"(python reference: {base / 1e6:.3f} M/s on the first {m:,}, ratio {rate / base:.0f}x; target >= 2 M/s)")
    print(f"  mix 60 % relative limits / 30 % cancel-nth / 10 % market; per command {info['fills']:.2f} fills, "
          f"{info['rows']:.2f} event rows; at the end {info['open']:,} open orders on {info['levels']:,} levels")
    met = rate >= 2e6
    print(f"targets met: {met}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
