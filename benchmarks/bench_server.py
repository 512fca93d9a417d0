"""The venue server over loopback: depth messages/s to one client, and order round trips (place -> ack).

    .venv/bin/python benchmarks/bench_server.py [--quick]

The server runs in a child process (as a user's venue would), the client in this one; both on 127.0.0.1.
Figures (targets from issue 3), each with a baseline measured in the same run:
- depth throughput: ``depthUpdate`` messages/s received by one client of ``<sym>@depth@100ms`` while the matching
  engine changes the book as fast as it can (one message per change, ``depth_every_batch``); baseline: the same
  client reading pre-rendered frames that a bare ``websockets`` server writes in runs of 256 per socket write (what
  this client can read at all: its own ceiling on this machine). Target >= 100 k/s.
- order round trip: signed ``order.place`` (LIMIT GTC away from the touch) -> response, one at a time, with a
  cancel every 100 orders; p50 and p99. Baseline: ``ping`` -> response on the same connection. Targets p50 <= 150 us,
  p99 <= 1 ms.

The machine's load average is printed first: on a small VM the figures move with whatever else runs (and an idle
machine pays CPU wake-ups on every round trip).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np
import orjson
import websockets

N_DEPTH_WARMUP = 20_000


def _engine():
    from workbench.instrument import Instrument
    from workbench.venue.api import OrderRequest, OrderType, SymbolSpec
    from workbench.venue.matching import MatchingEngine

    spec = SymbolSpec(Instrument("BTCUSDT", "0.01", "0.00001"), "BTC", "USDT")
    eng = MatchingEngine([spec], balances={1: {"BTC": 10**10, "USDT": 10**18}}, unlimited=[0, 2])
    now = time.time_ns()
    for i in range(20):
        eng.place(OrderRequest(0, "BTCUSDT", 1, OrderType.LIMIT, 100_000, 6_000_000 - i), now)
        eng.place(OrderRequest(0, "BTCUSDT", -1, OrderType.LIMIT, 100_000, 6_000_001 + i), now)
    eng.poll()
    return eng


class _Firehose:
    """A venue whose market changes the book as fast as the server takes it: relative-price limits and cancels."""

    def __init__(self, eng, batch: int):
        from workbench.venue import nb

        self.eng = eng
        self.symbols = eng.symbols
        cmds = np.zeros(batch, nb.cmd_dt)
        rng = np.random.default_rng(1)
        place = rng.random(batch) < 0.6
        cmds["op"] = np.where(place, nb.OP_PLACE, nb.OP_CANCEL_NTH)
        cmds["flags"] = nb.F_REL_PX
        cmds["side"] = np.where(rng.random(batch) < 0.5, 1, -1)
        cmds["type"] = 1
        cmds["tif"] = 1
        cmds["account"] = eng.account_index(0)
        # offsets behind the best of the order's own side: below the bid for buys, above the ask for sells
        cmds["px"] = -cmds["side"].astype(np.int64) * rng.integers(0, 20, batch)
        cmds["qty"] = rng.integers(1, 50, batch) * 1000
        cmds["nth"] = rng.integers(0, 1 << 30, batch)
        self.cmds = cmds

    def __getattr__(self, name):
        return getattr(self.eng, name)

    def advance(self, now_ns: int) -> None:
        self.cmds["ts_ns"] = now_ns
        self.eng.submit_batch(self.cmds)


def _serve(conn, mode: str) -> None:
    from workbench.venue.keys import ApiKey
    from workbench.venue.protocol import ProtocolConfig
    from workbench.venue.server import ServerConfig, VenueServer

    async def main():
        key = ApiKey("k" * 64, "s" * 64, 1)
        if mode == "raw":
            data = orjson.dumps({"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 1, "u": 1,
                                 "b": [["60000.00000000", "1.00000000"]], "a": []})
            run = (bytes((0x81, len(data))) + data) * 256  # 256 unmasked text frames (RFC 6455), one write

            async def handler(ws):
                try:
                    while True:
                        async with ws.send_context():  # websockets' own checks and flow control around the write
                            ws.transport.write(run)
                except websockets.ConnectionClosed:
                    pass

            async with websockets.serve(handler, "127.0.0.1", 0, compression=None) as srv:
                conn.send(next(iter(srv.sockets)).getsockname()[1])
                await asyncio.get_running_loop().run_in_executor(None, conn.recv)
            return
        venue = _Firehose(_engine(), 64) if mode == "depth" else _engine()
        cfg = ServerConfig(depth_every_batch=True, tick_ms=0.0 if mode == "depth" else 2.0)
        pcfg = ProtocolConfig(orders_per_10s=10**9, orders_per_day=10**12, request_weight_per_minute=10**12)
        async with VenueServer(venue, [key], config=cfg, protocol_config=pcfg) as srv:
            conn.send(srv.port)
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


def _start(mode: str):
    parent, child = mp.Pipe()
    p = mp.get_context("spawn").Process(target=_serve, args=(child, mode), daemon=True)
    p.start()
    port = parent.recv()
    return p, parent, port


def _stop(p, pipe) -> None:
    pipe.send("stop")
    p.join(10)
    if p.is_alive():
        p.terminate()


async def _read_rate(url: str, seconds: float) -> tuple[float, int]:
    async with websockets.connect(url, compression=None, max_queue=4096) as ws:
        for _ in range(N_DEPTH_WARMUP):
            orjson.loads(await ws.recv())
        n = 0
        t0 = time.perf_counter()
        while (dt := time.perf_counter() - t0) < seconds:
            for _ in range(1000):
                orjson.loads(await ws.recv())
            n += 1000
        return n / dt, n


def bench_depth(seconds: float) -> bool:
    p, pipe, port = _start("raw")
    try:
        base, _ = asyncio.run(_read_rate(f"ws://127.0.0.1:{port}/", seconds))
    finally:
        _stop(p, pipe)
    p, pipe, port = _start("depth")
    try:
        rate, n = asyncio.run(_read_rate(f"ws://127.0.0.1:{port}/ws/btcusdt@depth@100ms", seconds))
    finally:
        _stop(p, pipe)
    print(f"depth stream to one client: {rate / 1e3:.0f} k messages/s over {n:,} messages, parsed with orjson "
          f"(the same client reading pre-rendered frames: {base / 1e3:.0f} k/s, ratio {rate / base:.2f}; "
          f"target >= 100 k/s)")
    return rate >= 100e3


def _sign(secret: str, params: dict) -> dict:
    q = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = hmac.new(secret.encode(), q.encode(), hashlib.sha256).hexdigest()
    return params


async def _round_trips(url: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    async with websockets.connect(url, compression=None) as ws:
        ping = np.empty(n // 4)
        for i in range(len(ping)):
            t = time.perf_counter_ns()
            await ws.send(f'{{"id":{i},"method":"ping"}}')
            await ws.recv()
            ping[i] = time.perf_counter_ns() - t
        lat = np.empty(n)
        for i in range(n):
            params = _sign("s" * 64, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                      "price": f"{59000 - (i % 500) * 0.01:.2f}", "quantity": "0.01000",
                                      "newOrderRespType": "ACK", "apiKey": "k" * 64,
                                      "timestamp": int(time.time() * 1000)})
            msg = json.dumps({"id": i, "method": "order.place", "params": params})
            t = time.perf_counter_ns()
            await ws.send(msg)
            r = await ws.recv()
            lat[i] = time.perf_counter_ns() - t
            if i % 100 == 99:
                cancel = _sign("s" * 64, {"symbol": "BTCUSDT", "apiKey": "k" * 64,
                                          "timestamp": int(time.time() * 1000)})
                await ws.send(json.dumps({"id": -i, "method": "openOrders.cancelAll", "params": cancel}))
                await ws.recv()
            assert b'"status":200' in (r if isinstance(r, bytes) else r.encode()), r[:200]
        return lat, ping


def bench_round_trip(n: int) -> bool:
    p, pipe, port = _start("orders")
    try:
        lat, ping = asyncio.run(_round_trips(f"ws://127.0.0.1:{port}/ws-api/v3", n))
    finally:
        _stop(p, pipe)
    us = lambda a, q: np.percentile(a, q) / 1e3  # noqa: E731
    p50, p99 = us(lat[n // 10 :], 50), us(lat[n // 10 :], 99)
    print(f"order round trip (signed order.place -> ack, one client, {n:,} orders): p50 {p50:.0f} us, "
          f"p99 {p99:.0f} us (ping round trip: p50 {us(ping, 50):.0f} us, p99 {us(ping, 99):.0f} us; "
          f"ratio {p50 / us(ping, 50):.1f}x; targets p50 <= 150 us, p99 <= 1000 us)")
    return p50 <= 150 and p99 <= 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f} on {} CPUs".format(*os.getloadavg(), os.cpu_count()))
    ok1 = bench_depth(1.0 if args.quick else 3.0)
    ok2 = bench_round_trip(2000 if args.quick else 10_000)
    print(f"targets met: {ok1 and ok2}")
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
