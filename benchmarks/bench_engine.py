"""The live engine against the venue on loopback: feed ingest, tick-to-order, kill.

    .venv/bin/python benchmarks/bench_engine.py [--quick]

- feed ingest: the feed client (``FeedClient``, books kept by Binance's procedure) reading a venue whose matching
  engine changes the book as fast as the server can send (one ``depthUpdate`` per change), for 10 s; messages/s
  applied, and the lag of the last applied message (its ``E`` against the wall) after 1 s and at the end: a lag
  that does not grow means no backlog builds up. Baseline: the same frames read and parsed by a bare websockets
  client (what this machine's client side can take at all). Target >= 100 k/s sustained.
- tick-to-order: an engine whose strategy answers every book update with an order (a post-only bid far from the
  touch, or the cancel of the last one), on the synthetic market: from the moment the feed frame is taken off the
  socket to the moment the order's frame is handed to the socket. Targets p50 <= 100 us, p99 <= 1 ms.
- kill: ``Engine.kill()`` with quotes resting -> the venue confirms no open order and a flat position; 20 kills.
  Target p99 <= 20 ms.

The venue runs in a child process (as ``workbench venue`` would); the load average is printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_server as bs  # noqa: E402  (the venue child process and the firehose market)


def bench_feed(seconds: float) -> bool:
    import uvloop

    from workbench.instrument import Instrument
    from workbench.live.feed import FeedClient, FeedConfig

    p, pipe, port = bs._start("depth", uvloop_on=True)
    try:
        cfg = FeedConfig(stream_url=f"ws://127.0.0.1:{port}", rest_url=f"http://127.0.0.1:{port}",
                         symbols=("BTCUSDT",), trades=False)
        ins = Instrument("BTCUSDT", "0.01", "0.00001")
        last_e = [0]

        async def main():
            feed = FeedClient(cfg, {"BTCUSDT": ins})
            orig = feed._on_diff

            def on_diff(d):
                last_e[0] = d["E"]
                orig(d)

            feed._on_diff = on_diff
            task = asyncio.create_task(feed.run())
            while not feed.in_sync("BTCUSDT"):
                await asyncio.sleep(0.01)
            await asyncio.sleep(1.0)
            n0, t0 = feed.stats["diffs_applied"], time.perf_counter()
            lag0 = time.time() * 1000 - last_e[0]
            await asyncio.sleep(seconds)
            n1, t1 = feed.stats["diffs_applied"], time.perf_counter()
            lag1 = time.time() * 1000 - last_e[0]
            gaps = feed.stats["gaps"]
            await feed.stop()
            await asyncio.wait_for(task, 10)
            return (n1 - n0) / (t1 - t0), lag0, lag1, gaps, feed.stats["malformed"]

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rate, lag0, lag1, gaps, bad = runner.run(main())
    finally:
        bs._stop(p, pipe)
    p, pipe, port = bs._start("depth", uvloop_on=True)
    try:
        base, _ = asyncio.run(bs._read_rate(f"ws://127.0.0.1:{port}/ws/btcusdt@depth@100ms", min(seconds, 3.0)))
    finally:
        bs._stop(p, pipe)
    print(f"feed ingest: {rate / 1e3:.0f} k depth messages/s applied to the book over {seconds:.0f} s, lag of the "
          f"last applied message {lag0:.0f} ms after 1 s and {lag1:.0f} ms at the end, {gaps} gaps, {bad} malformed "
          f"(a bare websockets client parsing the same stream: {base / 1e3:.0f} k/s, ratio {rate / base:.2f}; "
          f"target >= 100 k/s without backlog growth)")
    return rate >= 100e3 and lag1 <= lag0 + 100


def _served_synthetic():
    """The synthetic venue served from a thread of this process (a child process would do as well)."""
    from workbench.venue.keys import new_api_key
    from workbench.venue.server import ThreadedVenue
    from workbench.venue.synthetic import SyntheticVenue

    venue = SyntheticVenue.default(seed=11)
    key = new_api_key(1)
    tv = ThreadedVenue(venue, [key]).start()
    return venue, tv.urls, key, tv.stop


def bench_tick_to_order(n: int) -> bool:
    from workbench.live import Credentials, Engine, EngineConfig
    from workbench.risk import RiskConfig
    from workbench.strategy import Strategy

    venue, urls, key, stop_venue = _served_synthetic()
    recv_ns = [0]
    marks: list[int] = []
    armed = threading.Event()  # the strategy acts only once the measuring wrappers are in place

    class EveryTick(Strategy):
        name = "every_tick"
        act_on_book = True

        def on_book(self, env, symbol):
            if not armed.is_set():
                return
            opened = env.open_orders()
            if not opened:
                if env.limit(1, 100, env.book().best_bid_ticks() - 500, post_only=True) is not None:
                    marks.append(recv_ns[0])
            elif opened[0].state.name == "NEW":  # acknowledged, nothing in flight: a cancel goes out
                if env.cancel(opened[0]):
                    marks.append(recv_ns[0])

    cfg = EngineConfig(rest=urls["rest"], stream=urls["stream"], ws_api=urls["ws_api"],
                       credentials=Credentials(key.key, key.secret), symbols=("BTCUSDT",),
                       risk=RiskConfig(max_depth_frac=1.0), control=False)
    eng = Engine(EveryTick(), cfg).start()
    lat: list[int] = []
    try:
        feed, ex = eng.feed, eng.executor
        orig_handle = feed.handle_message

        def handle(text):
            recv_ns[0] = time.perf_counter_ns()
            orig_handle(text)

        feed.handle_message = handle
        ws = ex._ws
        orig_send = ws.send

        async def send(msg, *a, **kw):
            if marks:
                lat.append(time.perf_counter_ns() - marks.pop(0))
            return await orig_send(msg, *a, **kw)

        ws.send = send
        armed.set()
        t0 = time.monotonic()
        while len(lat) < n and time.monotonic() - t0 < n / 5 + 30:  # about 10 book updates/s on this market
            time.sleep(0.05)
    finally:
        eng.stop()
        stop_venue()
    if len(lat) < 20:
        print(f"tick-to-order: only {len(lat)} orders measured")
        return False
    a = np.array(lat[len(lat) // 10:]) / 1e3
    p50, p99 = np.percentile(a, 50), np.percentile(a, 99)
    print(f"tick-to-order (depth frame off the socket -> order frame to the socket, {len(a):,} orders on the "
          f"synthetic market): p50 {p50:.0f} us, p99 {p99:.0f} us (targets p50 <= 100 us, p99 <= 1000 us)")
    return p50 <= 100 and p99 <= 1000


def bench_kill(n: int) -> bool:
    from workbench.live import Credentials, Engine, EngineConfig
    from workbench.risk import RiskConfig
    from workbench.strategy import MarketMaker

    venue, urls, key, stop_venue = _served_synthetic()
    cfg = EngineConfig(rest=urls["rest"], stream=urls["stream"], ws_api=urls["ws_api"],
                       credentials=Credentials(key.key, key.secret), symbols=("BTCUSDT",),
                       risk=RiskConfig(max_depth_frac=1.0), control=False)
    eng = Engine(MarketMaker(half_spread_ticks=0, order_qty=0.001, max_position=3, decide_every_ms=20), cfg).start()
    times, ok = [], 0

    async def rearm():
        eng.guard.resume(time.time_ns(), source="user")  # a human lifts the halt (the benchmark, here)

    try:
        for _ in range(n):
            t0 = time.monotonic()
            while not eng.orders.open_orders() and time.monotonic() - t0 < 10:
                time.sleep(0.005)
            t = time.perf_counter()
            ok += bool(eng.kill("benchmark"))
            times.append(time.perf_counter() - t)
            assert venue.open_orders(1) == []
            eng._call(rearm())
    finally:
        eng.stop()
        stop_venue()
    ms = np.array(times) * 1e3
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    print(f"kill (command -> the venue confirms no open order and flat, {n} kills with quotes resting, {ok} "
          f"confirmed): p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 <= 20 ms)")
    return ok == n and p99 <= 20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f} on {} CPUs".format(*os.getloadavg(), os.cpu_count()))
    ok1 = bench_feed(3.0 if args.quick else 10.0)
    ok2 = bench_tick_to_order(100 if args.quick else 400)
    ok3 = bench_kill(5 if args.quick else 20)
    print(f"targets met: {ok1 and ok2 and ok3}")
    return 0 if ok1 and ok2 and ok3 else 1


if __name__ == "__main__":
    sys.exit(main())
