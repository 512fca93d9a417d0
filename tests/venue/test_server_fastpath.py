"""The server's fast paths say exactly what the plain paths say.

- Event rows of the matching engine (``poll_rows``, no object per event) against the api events (``poll``): the same
  frames, in the same order, on every kind of connection, with faults and aggregation.
- Depth messages rendered in one pass from columns against ``depth_update_json`` of each batch.
- Frames serialized by the writer against websockets' own serialization.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import numpy as np
import pytest
from websockets.frames import Frame, Opcode

from workbench.instrument import Instrument
from workbench.venue import nb
from workbench.venue import protocol as proto
from workbench.venue.api import LevelChange, OrderRequest, OrderType, SymbolSpec
from workbench.venue.keys import ApiKey
from workbench.venue.matching import MatchingEngine
from workbench.venue.server import ServerConfig, VenueServer, _Client, _Diff, _text_frames

SPECS = [SymbolSpec(Instrument("BTCUSDT", "0.01", "0.00001"), "BTC", "USDT", min_notional_ticks_lots=10**7),
         SymbolSpec(Instrument("ETHUSDT", "0.01", "0.00001"), "ETH", "USDT")]
KEYS = [ApiKey("a" * 64, "x" * 64, 1), ApiKey("b" * 64, "y" * 64, 2)]
STREAMS = {
    "all": "/stream?streams=" + "/".join(f"{s}@{k}" for s in ("btcusdt", "ethusdt")
                                         for k in ("depth@100ms", "depth", "trade", "bookTicker")),
    "raw": "/ws/btcusdt@depth@100ms",
    "raw1000": "/ws/ethusdt@depth",
}


class _Transport:
    def abort(self) -> None:
        pass


class _Conn:
    remote_address = ("127.0.0.1", 1)
    transport = _Transport()


class _Clock:
    def __init__(self) -> None:
        self.t = 1_780_000_000_000_000_000

    def __call__(self) -> int:
        return self.t


def _setup(every: bool, clock: _Clock):
    eng = MatchingEngine(SPECS, balances={a: {"BTC": 10**9, "ETH": 10**9, "USDT": 10**16} for a in (1, 2)},
                         unlimited=[0, 3])
    pcfg = proto.ProtocolConfig(orders_per_10s=10**9, orders_per_day=10**12, request_weight_per_minute=10**12)
    srv = VenueServer(eng, KEYS, config=ServerConfig(depth_every_batch=every), protocol_config=pcfg, wall=clock)
    clients = {}
    for name, target in STREAMS.items():
        c = clients[name] = _Client(_Conn(), 10**6)
        c.stream = proto.stream_session(target)
        srv._clients.add(c)
    for name in ("api1", "api2"):
        c = clients[name] = _Client(_Conn(), 10**6)
        c.api = srv.protocol.open_session(clock())
        srv._api_clients[c.api] = c
        srv._clients.add(c)
    return eng, srv, clients


def _signed(key: ApiKey, params: dict, ts_ms: int) -> dict:
    p = dict(params, apiKey=key.key, timestamp=ts_ms)
    q = "&".join(f"{k}={p[k]}" for k in sorted(p))
    p["signature"] = hmac.new(key.secret.encode(), q.encode(), hashlib.sha256).hexdigest()
    return p


def _flow(rng: random.Random, n: int, now: int) -> np.ndarray:
    r = np.random.default_rng(rng.randrange(1 << 30))
    cmds = np.zeros(n, nb.cmd_dt)
    cmds["op"] = np.where(r.random(n) < 0.6, nb.OP_PLACE, nb.OP_CANCEL_NTH)
    cmds["flags"] = nb.F_REL_PX
    cmds["side"] = np.where(r.random(n) < 0.5, 1, -1)
    cmds["type"] = 1
    cmds["tif"] = 1
    cmds["sym"] = r.integers(0, 2, n)
    cmds["px"] = -cmds["side"].astype(np.int64) * r.integers(-2, 20, n)  # some cross: trades among level changes
    cmds["qty"] = r.integers(1, 50, n) * 1000
    cmds["nth"] = r.integers(0, 1 << 30, n)
    cmds["ts_ns"] = now
    return cmds


def _user_request(rng: random.Random, rid: int, now: int) -> tuple[int, str]:
    k = rng.randrange(2)
    sym = rng.choice(["BTCUSDT", "ETHUSDT"])
    ts = now // 1_000_000
    r = rng.random()
    if r < 0.6:
        typ = rng.choice(["LIMIT", "LIMIT", "MARKET", "LIMIT_MAKER"])
        p = {"symbol": sym, "side": rng.choice(["BUY", "SELL"]), "type": typ,
             "quantity": f"{rng.randint(1, 300) / 1000:.3f}"}
        if typ != "MARKET":
            p["price"] = f"{rng.randint(59_950, 60_050) + rng.randint(0, 99) / 100:.2f}"
        if typ == "LIMIT":
            p["timeInForce"] = rng.choice(["GTC", "GTC", "IOC", "FOK"])
        msg = {"id": rid, "method": "order.place", "params": _signed(KEYS[k], p, ts)}
    elif r < 0.75:
        msg = {"id": rid, "method": "order.cancel",
               "params": _signed(KEYS[k], {"symbol": sym, "orderId": rng.randrange(1, 300)}, ts)}
    elif r < 0.82:
        msg = {"id": rid, "method": "openOrders.cancelAll", "params": _signed(KEYS[k], {"symbol": sym}, ts)}
    else:
        msg = {"id": rid, "method": "userDataStream.subscribe.signature", "params": _signed(KEYS[k], {}, ts)}
    return k, json.dumps(msg)


@pytest.mark.parametrize("every", [True, False])
@pytest.mark.parametrize("seed", [1, 2])
def test_engine_rows_and_api_events_make_the_same_frames(every, seed):
    rng = random.Random(seed)
    clock = _Clock()
    fast = _setup(every, clock)
    plain = _setup(every, clock)
    assert fast[1]._engine is not None
    plain[1]._engine = None  # as for a venue that is not a matching engine: api events
    seen: set[str] = set()
    for step in range(400):
        clock.t += rng.choice([1_000, 50_000, 3_000_000])
        now = clock.t
        op = rng.random()
        # subscriptions only in the second half: cancels before it happen with nobody subscribed
        if op < 0.4 and (step > 200 or rng.random() < 0.8):
            k, text = _user_request(rng, step, now)
            if step <= 200 and "subscribe" in text:
                continue
            for eng, srv, cl in (fast, plain):
                assert srv.protocol.handle_ws_api(cl[f"api{k + 1}"].api, text, now) is not None
        elif op < 0.6:
            req = OrderRequest(rng.choice([0, 3]), rng.choice(["BTCUSDT", "ETHUSDT"]), rng.choice([1, -1]),
                               rng.choice([OrderType.LIMIT, OrderType.MARKET]), rng.randint(1, 5) * 1000,
                               6_000_000 + rng.randint(-60, 60))
            for eng, _, _ in (fast, plain):
                eng.place(req, now)
        elif op < 0.8:
            cmds = _flow(rng, rng.randint(1, 80), now)
            for eng, _, _ in (fast, plain):
                eng.submit_batch(cmds.copy())
        elif op < 0.86:  # a user's orders canceled by code: the venue makes the cancel ids
            acct, sym, everything = rng.choice([1, 2]), rng.choice(["BTCUSDT", "ETHUSDT"]), rng.random() < 0.3
            oid = rng.randrange(1, 300)
            for eng, _, _ in (fast, plain):
                if everything:
                    eng.cancel_all(acct, sym, now)
                else:
                    eng.cancel(acct, sym, now, order_id=oid)
        elif op < 0.95:  # the aggregation loops, one pass
            index = rng.choice([0, 1])
            for _, srv, _ in (fast, plain):
                pending = srv._pending_100 if index == 0 else srv._pending_1000
                for sym, diff in list(pending.items()):
                    if diff:
                        pending[sym] = _Diff()
                        if not (every and index == 0):
                            srv._send_diff(sym, diff, index, now)
        else:
            k = rng.randint(1, 5)
            fast[1].faults.drop_depth += k
            plain[1].faults.drop_depth += k
        for _, srv, _ in (fast, plain):
            srv._poll_dispatch()
        for name in fast[2]:
            a, b = list(fast[2][name].outbox), list(plain[2][name].outbox)
            fast[2][name].outbox.clear()
            plain[2][name].outbox.clear()
            assert a == b, (step, name)
            seen.update(f.split('"e":"', 1)[1].split('"', 1)[0] for f in a if '"e":"' in f)
        assert fast[1].sent_depth_messages == plain[1].sent_depth_messages
        assert fast[1].faults.drop_depth == plain[1].faults.drop_depth
    assert {"depthUpdate", "trade", "executionReport"} <= seen


def test_depth_updates_in_one_pass_match_each_batch():
    ins = SPECS[0].instrument
    rng = random.Random(3)
    for _ in range(300):
        u = rng.randint(1, 10**6)
        changes = []
        for _ in range(rng.randint(1, 30)):
            u += rng.random() < 0.5
            changes.append(LevelChange("BTCUSDT", u, rng.choice([1, -1]), rng.randint(1, 10**7),
                                       rng.choice([0, rng.randint(1, 10**9)]), 0))
        runs: list[list[LevelChange]] = []
        for c in changes:
            if runs and runs[-1][-1].update_id == c.update_id:
                runs[-1].append(c)
            else:
                runs.append([c])
        now = rng.randint(0, 2**62)
        got = proto.depth_updates_json(ins, [c.update_id for c in changes], [c.side for c in changes],
                                       [c.px_ticks for c in changes], [c.qty_lots for c in changes], now)
        assert got == [proto.depth_update_json(ins, run, now) for run in runs]


def test_poll_rows_are_the_events_of_poll():
    def run(read):
        eng = MatchingEngine(SPECS, balances={1: {"BTC": 10**9, "ETH": 10**9, "USDT": 10**16}}, unlimited=[0])
        rng = random.Random(4)
        out = []
        for i in range(200):
            eng.place(OrderRequest(rng.choice([0, 1]), "BTCUSDT", rng.choice([1, -1]), OrderType.LIMIT,
                                   rng.randint(1, 9) * 1000, 6_000_000 + rng.randint(-5, 5)), i)
            if i % 3 == 0:
                out.extend(read(eng))
        return out + read(eng)

    assert run(lambda e: e.poll()) == run(lambda e: e.events_from_rows(e.poll_rows()))


@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536, 70_000])
def test_text_frames_are_websockets_frames(n):
    text = "é" * (n // 2) + "a" * (n % 2)
    want = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert _text_frames([text]) == want
    assert _text_frames([text, "x"]) == want + Frame(Opcode.TEXT, b"x").serialize(mask=False, extensions=[])
