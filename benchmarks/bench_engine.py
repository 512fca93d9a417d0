"""The live engine against the venue on loopback: feed ingest, tick-to-order, kill.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_engine.py [--quick]

- feed ingest: the feed client (``FeedClient``, books kept by Binance's procedure, its default transport: picows
  where installed) reading a venue whose matching engine changes the book as fast as the server can send (one
  ``depthUpdate`` per change), for 10 s; messages/s applied, and the lag of the last applied message (its ``E``
  against the wall) after 1 s and at the end: a lag that does not grow means no backlog builds up. Baselines in the
  same run: the same stream read and parsed with orjson by a bare picows client and by a bare websockets client
  (what this machine's client side can take at all), and the feed client on its websockets fallback (3 s).
  Target >= 100 k/s sustained.
- tick-to-order: an engine whose strategy answers every book update with an order (a post-only bid far from the
  touch, or the cancel of the last one): from the moment the first frame of the socket read that carried the update
  is taken off the socket (``FeedClient.recv_perf_ns``) to the moment the order's frame (signed, as JSON) is handed
  to the order connection's ``send_text`` (websocket framing and the write follow: their time is printed apart).
  Two markets, the venue in a child process: the synthetic market as served by default (about 10
  aggregated diffs/s: every tick finds the engine's code and data out of the CPU caches, which on this shared VM
  costs ~10x the warm time of the same code) and a busy one (the synthetic market with 20x liquidity, one
  ``depthUpdate`` per change: hundreds a second), the busy one again with a journal (each order written ahead to
  its intents file, its SQLite row after the frame). Each in two configurations: the engine's default (the loop
  sleeps in its poll between frames) and the low-latency one the targets are for (``busy_poll=True``: the loop
  never sleeps, one core at 100 %; ``keep_warm_us=200``: a dry tick of the path every 200 us while the market is
  quiet; on this VM the caches lose the path within ~0.5 ms, so a 1 ms timer period does not keep it). The venue's
  order limit is raised (a market maker's): Binance's default 50 orders / 10 s would halt the engine within a
  second on the busy market. Targets p50 <= 100 us, p99 <= 1 ms.
- kill: ``Engine.kill()`` with quotes resting -> the venue confirms no open order and a flat position; 20 kills.
  Target p99 <= 20 ms.

The load average is printed with each figure: on a small VM the figures move with whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_server as bs  # noqa: E402  (the venue child process and the firehose market)


def _load() -> str:
    return "load {:.2f}".format(os.getloadavg()[0])


async def _read_rate_picows(url: str, seconds: float) -> float:
    """Frames/s a bare picows client takes from ``url``, each parsed with orjson (after a warm-up)."""
    import orjson
    import picows

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    state = {"n": 0, "t0": 0.0, "warm": bs.N_DEPTH_WARMUP}

    class Listener(picows.WSListener):
        def on_ws_frame(self, transport, frame):
            if frame.msg_type != picows.WSMsgType.TEXT:
                return
            orjson.loads(frame.get_payload_as_bytes())
            if state["warm"]:
                state["warm"] -= 1
                if not state["warm"]:
                    state["t0"] = time.perf_counter()
                return
            state["n"] += 1
            if not state["n"] % 1000 and time.perf_counter() - state["t0"] >= seconds and not done.done():
                done.set_result(state["n"] / (time.perf_counter() - state["t0"]))

    transport, _ = await picows.ws_connect(Listener, url)
    try:
        return await asyncio.wait_for(done, seconds + 30)
    finally:
        transport.disconnect()


def _feed_rate(port: int, seconds: float, transport: str) -> tuple:
    import uvloop

    from workbench.instrument import Instrument
    from workbench.live.feed import FeedClient, FeedConfig

    cfg = FeedConfig(stream_url=f"ws://127.0.0.1:{port}", rest_url=f"http://127.0.0.1:{port}",
                     symbols=("BTCUSDT",), trades=False, transport=transport)
    ins = Instrument("BTCUSDT", "0.01", "0.00001")
    last_e = [0]

    async def main():
        feed = FeedClient(cfg, {"BTCUSDT": ins})
        orig_frames = feed.handle_frames

        def handle_frames(frames, recv_ns=None):
            # the event time (E, ms) of the run's last plain diff: in its book when handle_frames returns (the fused
            # path does not go through FeedClient._apply, which this probe wrapped before)
            orig_frames(frames, recv_ns)
            pre = feed._pre[: len(frames)]
            ms = pre[(pre[:, 0] == 3) & (pre[:, 5] >= 0), 5]
            if len(ms):
                last_e[0] = int(ms[-1])

        feed.handle_frames = handle_frames
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
        return (n1 - n0) / (t1 - t0), lag0, lag1, gaps, feed.stats["malformed"], feed.transport

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def bench_feed(seconds: float) -> bool:
    import uvloop

    def served(fn):
        p, pipe, port = bs._start("depth", uvloop_on=True)
        try:
            return fn(port)
        finally:
            bs._stop(p, pipe)

    load0 = _load()
    rate, lag0, lag1, gaps, bad, transport = served(lambda port: _feed_rate(port, seconds, "auto"))
    load1 = _load()
    ws_rate = served(lambda port: _feed_rate(port, min(seconds, 3.0), "websockets"))[0]
    url = "ws://127.0.0.1:{}/stream?streams=btcusdt@depth@100ms"
    base_ws = served(lambda port: asyncio.run(bs._read_rate(url.format(port), min(seconds, 3.0))))[0]
    base_pw = served(lambda port: uvloop.run(_read_rate_picows(url.format(port), min(seconds, 3.0))))
    print(f"feed ingest ({transport}): {rate / 1e3:.0f} k depth messages/s applied to the book over {seconds:.0f} s "
          f"({load0} before, {load1} after), lag of the last applied message {lag0:.0f} ms after 1 s and "
          f"{lag1:.0f} ms at the end, {gaps} gaps, {bad} malformed; target >= 100 k/s without backlog growth")
    print(f"  baselines on the same stream ({_load()}): bare picows client + orjson {base_pw / 1e3:.0f} k/s "
          f"(ratio {rate / base_pw:.2f}), bare websockets client + orjson {base_ws / 1e3:.0f} k/s (ratio "
          f"{rate / base_ws:.2f}); the feed client on its websockets fallback {ws_rate / 1e3:.0f} k/s")
    return rate >= 100e3 and lag1 <= lag0 + 100


def _served_synthetic():
    """The synthetic venue served from a thread of this process (for the kill benchmark, which checks the venue's
    own records)."""
    from workbench.venue.keys import new_api_key
    from workbench.venue.server import ThreadedVenue
    from workbench.venue.synthetic import SyntheticVenue

    venue = SyntheticVenue.default(seed=11)
    key = new_api_key(1)
    tv = ThreadedVenue(venue, [key]).start()
    return venue, tv.urls, key, tv.stop


def _serve_synthetic(conn, key: str, secret: str, busy: bool) -> None:
    from workbench.venue.keys import ApiKey
    from workbench.venue.protocol import ProtocolConfig
    from workbench.venue.server import ServerConfig, ThreadedVenue
    from workbench.venue.synthetic import SyntheticVenue

    venue = SyntheticVenue.default(seed=11, **({"liquidity": 20.0} if busy else {}))
    kw = {"config": ServerConfig(depth_every_batch=True)} if busy else {}
    # an order every other tick passes Binance's default 50 orders / 10 s within a second on the busy market (the
    # engine then halts on -1015 until the backoff ends): the account's limit raised, as a market maker's is
    limits = ProtocolConfig(orders_per_10s=100_000, orders_per_day=10_000_000)
    tv = ThreadedVenue(venue, [ApiKey(key, secret, 1)], protocol_config=limits, **kw).start()
    conn.send(tv.urls)
    conn.recv()
    tv.stop()


class _Stages:
    """Per-stage marks along the tick-to-order path (``--stages``): functions of the feed, the engine and the
    executor are wrapped on the running engine's objects, so nothing of this is in the engine's code (off: no cost).
    Each mark is ``perf_counter_ns`` after the named stage; a row of marks is kept per order sent."""

    ORDER = ("frames", "parse", "sync", "fused", "book", "engine", "decide", "guard", "record", "frame", "write")

    def __init__(self) -> None:
        self.cur: dict[str, int] = {}
        self.rows: list[dict[str, int]] = []

    def mark(self, name: str) -> None:
        self.cur.setdefault(name, time.perf_counter_ns())

    def wrap(self, fn, before: str | None = None, after: str | None = None, reset: bool = False):
        def wrapper(*a, **kw):
            if reset:
                self.cur = {}
            if before:
                self.mark(before)
            r = fn(*a, **kw)
            if after:
                self.mark(after)
            return r
        return wrapper

    def install(self, eng) -> None:
        import workbench.live.feed as feed_mod

        feed, ex = eng.feed, eng.executor
        # frames: the listener has collected the read's frames and hands them over
        feed.handle_frames = self.wrap(feed.handle_frames, before="frames", reset=True)
        # the feed's kernels: parse and sync (separate calls), or parse + sync + book apply + top in one (fused:
        # a run of one symbol's diffs; otherwise the books follow); wrapped where the feed module has them
        self._orig = {}
        for name, mark in (("preparse_frames_nb", "parse"), ("live_chain_nb", "sync"), ("feed_frames_nb", "fused")):
            if hasattr(feed_mod, name):
                self._orig[name] = fn = getattr(feed_mod, name)
                setattr(feed_mod, name, self.wrap(fn, after=mark))
        feed.on_book = self.wrap(feed.on_book, before="book")  # book.apply and top done
        eng.guard.check_order = self.wrap(eng.guard.check_order, before="decide", after="guard")
        ex.submit = self.wrap(ex.submit, before="record")
        ex.submit_cancel = self.wrap(ex.submit_cancel, before="decide")
        # signed and framed (the cancel's order-book step is before its template: "record" there)
        ex._templated = self.wrap(ex._templated, before="record", after="frame")
        ex._frame = self.wrap(ex._frame, before="record", after="frame")
        self._undo = feed_mod

    def uninstall(self) -> None:
        for name, fn in self._orig.items():
            setattr(self._undo, name, fn)

    def on_strategy(self) -> None:
        self.mark("engine")  # the engine's on_book work (view, guard.on_book, telemetry) before the strategy

    def on_write(self, t0: int, t_write: int) -> None:
        row = {k: v - t0 for k, v in self.cur.items()}
        row["write"] = t_write - t0
        self.rows.append(row)
        self.cur = {}

    def table(self, skip: int) -> str:
        rows = self.rows[skip:]
        out = ["  stage      p50 cum (us)  p50 step (us)   n"]
        prev = 0.0
        for k in self.ORDER:
            vals = [r[k] for r in rows if k in r]
            if not vals:
                continue
            cum = float(np.percentile(vals, 50)) / 1e3
            out.append(f"  {k:<10} {cum:>12.1f} {cum - prev:>14.1f} {len(vals):>5}")
            prev = cum
        return "\n".join(out)


def bench_tick_to_order(n: int, busy: bool, stages: bool = False, keep_warm_us: int = 0, journal: bool = False,
                        busy_poll: bool = False) -> bool:
    import multiprocessing as mp

    from workbench.live import Credentials, Engine, EngineConfig
    from workbench.risk import RiskConfig
    from workbench.strategy import Strategy
    from workbench.venue.keys import new_api_key

    key = new_api_key(1)
    tmp = tempfile.TemporaryDirectory(prefix="bench-t2o-")  # the journal, when there is one
    parent, child = mp.Pipe()
    p = mp.get_context("spawn").Process(target=_serve_synthetic, args=(child, key.key, key.secret, busy), daemon=True)
    p.start()
    urls = parent.recv()
    marks: list[int] = []
    st = _Stages() if stages else None
    armed = threading.Event()  # the strategy acts only once the measuring wrapper is in place
    eng = None

    class EveryTick(Strategy):
        name = "every_tick"
        act_on_book = True

        def on_book(self, env, symbol):
            if not armed.is_set():
                return
            # the first frame of the socket read that brought this update; the order's frame is written inside
            # env.limit / env.cancel, so the mark is set before and taken by the transport hook
            marks[:] = [eng.feed.recv_perf_ns]
            if st is not None:
                st.on_strategy()
            opened = env.open_orders()
            if not opened:
                env.limit(1, 100, env.book().best_bid_ticks() - 500, post_only=True)
            elif opened[0].state.name == "NEW":  # acknowledged, nothing in flight: a cancel goes out
                env.cancel(opened[0])
            marks.clear()

    cfg = EngineConfig(rest=urls["rest"], stream=urls["stream"], ws_api=urls["ws_api"],
                       credentials=Credentials(key.key, key.secret), symbols=("BTCUSDT",),
                       risk=RiskConfig(max_depth_frac=1.0), control=False, keep_warm_us=keep_warm_us,
                       busy_poll=busy_poll,
                       journal_path=str(Path(tmp.name) / "journal.sqlite") if journal else None)
    lat: list[int] = []
    sends: list[int] = []  # the send_text call's own time, per order measured
    dry = None  # dry ticks while measuring: (count, ns in them, ns elapsed)
    warm = None  # the baseline: p50 of the same path run back to back, caches warm
    load0 = _load()
    try:
        eng = Engine(EveryTick(), cfg).start()
        conn = eng.executor.connection
        orig_send_text = conn.send_text

        def send_text(frame):
            """The order's frame, signed and framed as JSON, handed to the connection's ``send_text``: the mark is
            taken just before the call, which frames and masks it as a websocket frame and writes it (picows: in C,
            to the socket; websockets: its Python protocol, then asyncio's transport). That call's own time is
            reported apart (``sends``)."""
            if not marks:  # not a frame of the strategy's decision (a later request)
                return orig_send_text(frame)
            t = time.perf_counter_ns()
            t0 = marks.pop()
            try:
                return orig_send_text(frame)
            finally:
                sends.append(time.perf_counter_ns() - t)
                lat.append(t - t0)
                if st is not None:
                    st.on_write(t0, t)

        conn.send_text = send_text
        if st is not None:
            eng._call(_on_loop(st.install, eng))
        armed.set()
        t0 = time.monotonic()
        while keep_warm_us and eng.warmer is None and time.monotonic() - t0 < 10:  # built on the engine's loop
            time.sleep(0.01)
        w0 = (eng.warmer.ticks, eng.warmer.busy_ns, time.perf_counter_ns()) if eng.warmer is not None else None
        while len(lat) < n and time.monotonic() - t0 < n / 4 + 30:
            time.sleep(0.05)
        if w0 is not None and eng.warmer is not None:  # the dry ticks' share of the time, while measuring
            w = eng.warmer
            dry = (w.ticks - w0[0], w.busy_ns - w0[1], time.perf_counter_ns() - w0[2])
        if lat:
            warm = eng._call(_warm_path_us(eng))
    finally:
        if eng is not None:
            eng.stop()
        if st is not None and hasattr(st, "_undo"):
            st.uninstall()
        parent.send("stop")
        p.join(10)
        tmp.cleanup()
    market = "busy market (20x liquidity, a depthUpdate per change)" if busy else "synthetic market (~10 diffs/s)"
    market += f", keep-warm every {keep_warm_us} us" if keep_warm_us else ", keep-warm off (the default)"
    market += ", busy-polled" if busy_poll else ""
    market += ", journal on (each order written ahead, its row after the frame)" if journal else ""
    if len(lat) < 20:
        print(f"tick-to-order, {market}: only {len(lat)} orders measured")
        return False
    a = np.array(lat[len(lat) // 10:]) / 1e3
    p50, p99 = np.percentile(a, 50), np.percentile(a, 99)
    print(f"tick-to-order, {market} (first frame of the read off the socket -> order frame to the transport, "
          f"{len(a):,} orders, {load0}): p50 {p50:.0f} us, p90 {np.percentile(a, 90):.0f} us, p99 {p99:.0f} us "
          f"(targets p50 <= 100 us, p99 <= 1000 us)")
    if st is not None:
        print(st.table(len(lat) // 10))
    if warm is not None:
        print(f"  baseline in the same run: the same path back to back (dry ticks on the engine's loop, caches warm) "
              f"p50 {warm:.0f} us a tick (ratio {p50 / warm:.1f}: a real tick also reads the socket, and finds the caches "
              f"emptied by whatever ran since)")
    if dry is not None and dry[0]:
        print(f"  dry ticks: {dry[0] / dry[2] * 1e9:.0f}/s of {dry[1] / dry[0] / 1e3:.0f} us each, busy "
              f"{100 * dry[1] / dry[2]:.0f} % of the time (a frame that lands during one waits for it: not in the "
              f"figures above, which start when the frame is read)")
    print(f"  then the {eng.executor.transport} connection's send_text (websocket framing, masking, the write): p50 "
          f"{np.percentile(np.array(sends[len(sends) // 10:]) / 1e3, 50):.1f} us")
    return p50 <= 100 and p99 <= 1000


async def _on_loop(fn, *args):
    fn(*args)


async def _warm_path_us(eng, n: int = 400) -> float:
    """p50 (us) of ``n`` dry ticks of ``eng``'s path run back to back on its loop (workbench.live.warm: the canned
    diff through the feed's kernels, the strategy's decision, the guard, the order book, signing and framing; the
    scratch venue's answers are in it too, so it is an upper bound of the path's warm cost)."""
    from workbench.live.warm import Warmer

    w = eng.warmer or Warmer(eng)
    ts = []
    for _ in range(n):
        t = time.perf_counter_ns()
        w.tick()
        ts.append(time.perf_counter_ns() - t)
    return float(np.percentile(np.array(ts[n // 4:]) / 1e3, 50))


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
    ap.add_argument("--only", choices=("feed", "t2o", "kill"), action="append",
                    help="run only these parts (repeatable); default all")
    ap.add_argument("--stages", action="store_true",
                    help="tick-to-order: also a per-stage p50 table (wraps the path's functions: adds a little)")
    args = ap.parse_args()
    parts = set(args.only or ("feed", "t2o", "kill"))
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f} on {} CPUs".format(*os.getloadavg(), os.cpu_count()))
    ok = True
    if "feed" in parts:
        ok &= bench_feed(3.0 if args.quick else 10.0)
    if "t2o" in parts:
        quiet, busy = (100, 300) if args.quick else (400, 1500)
        print("the engine as configured by default (no keep-warm, the loop sleeps in its poll):")
        bench_tick_to_order(quiet, busy=False, stages=args.stages)
        bench_tick_to_order(busy, busy=True, stages=args.stages)
        # a journal writes each order ahead of its frame (an intents file) and its SQLite row after it
        bench_tick_to_order(busy, busy=True, stages=args.stages, journal=True)
        print("low-latency configuration (the targets): busy_poll=True, keep_warm_us=200 (one core at 100 %):")
        low = {"busy_poll": True, "keep_warm_us": 200, "stages": args.stages}
        ok &= bench_tick_to_order(quiet, busy=False, **low)
        ok &= bench_tick_to_order(busy, busy=True, **low)
        ok &= bench_tick_to_order(busy, busy=True, journal=True, **low)
    if "kill" in parts:
        ok &= bench_kill(5 if args.quick else 20)
    print(f"targets met: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
