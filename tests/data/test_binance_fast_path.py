"""The byte-level fast path of the Binance reader gives exactly what the general (orjson) path gives.

On the real captures, and on random captures with broken numbers, odd JSON layouts, wrong symbols, gaps and
truncation: the same events, counters, problem lines, final book and sync state.
"""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest

from workbench.data.binance import BinanceCapture
from workbench.instrument import Instrument

INS = Instrument("BTCUSDT", "0.01", "0.00001")
ODD = ["12345678901234567890", "-99999999999999999999.5", "0", "0.", ".5", "-1.0", "+1.00", "1e5", "NaN", " 1.0", "1_0.0", "12345678901234567890.0", "123.456789",
       "00012.34000", "1.", "", ".", "1..2", "-0.00000000", "0.00000001", "99999999999.99999999"]


def both(paths, instrument=INS, **kw):
    out = []
    for fast in (True, False):
        r = BinanceCapture(paths, instrument=instrument, fast=fast, **kw)
        chunks = list(r)
        ev = np.concatenate(chunks) if chunks else np.zeros(0)
        out.append((r, ev, [len(c) for c in chunks]))
    return out


def assert_same(paths, **kw):
    (a, ea, ca), (b, eb, cb) = both(paths, **kw)
    assert np.array_equal(ea, eb)
    assert ca == cb
    assert a.stats.counts == b.stats.counts
    assert a.stats.problems == b.stats.problems
    assert (a.sync.state, a.sync.last_id) == (b.sync.state, b.sync.last_id)
    for side in (1, -1):
        assert all(np.array_equal(x, y) for x, y in zip(a.book.side_levels(side), b.book.side_levels(side)))


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_real_captures(shared_data, market):
    path = shared_data / "binance" / market / "btcusdt_20240808.gz"
    (a, ea, _), (b, eb, _) = both([path], instrument=None, chunk_rows=4096)
    assert len(ea) > 100_000 and np.array_equal(ea, eb)
    assert a.stats.counts == b.stats.counts and a.stats["gaps"] == 0


def _num(rng, digits, lo, hi):
    if rng.random() < 0.08:
        return rng.choice(ODD)
    s = str(rng.randint(lo, hi)).rjust(digits + 1, "0")
    s = s[:-digits] + "." + s[-digits:] if digits else s
    return s + "0" * rng.choice([0, 0, 3, 6]) if rng.random() < 0.97 else s + "3"


def _capture(rng: random.Random) -> list[str]:
    lines = []
    ts, uid = 1_723_161_253_937_085_768, 1000
    snap = {"lastUpdateId": uid, "bids": [[_num(rng, 2, 6_000_000 - k, 6_000_000 - k), "1.00000"] for k in range(5)],
            "asks": [[_num(rng, 2, 6_000_001 + k, 6_000_001 + k), "1.00000"] for k in range(5)]}
    for i in range(rng.randint(20, 120)):
        ts += rng.randint(1, 10**8)
        r = rng.random()
        sym = "BTCUSDT" if rng.random() < 0.97 else "ETHUSDT"
        if i == 3 or r < 0.03:
            lines.append(f"{ts} {json.dumps(snap, separators=(',', ':'))}")
            continue
        if r < 0.55:
            U = uid + 1 if rng.random() < 0.95 else uid + rng.randint(2, 5)  # an occasional gap
            uid = U + rng.randint(0, 3)
            levels = lambda n: [[_num(rng, 2, 5_999_990, 6_000_010), _num(rng, 5, 0, 300_000)] for _ in range(n)]  # noqa: E731
            d = {"e": "depthUpdate", "E": ts // 10**6, "s": sym, "U": U, "u": uid, "b": levels(rng.randint(0, 4)),
                 "a": levels(rng.randint(0, 4))}
            body = {"stream": "btcusdt@depth@100ms", "data": d}
        elif r < 0.8:
            body = {"stream": "btcusdt@bookTicker", "data": {"u": uid, "s": sym, "b": _num(rng, 2, 5_999_990, 6_000_000),
                    "B": _num(rng, 5, 0, 10**6), "a": _num(rng, 2, 6_000_001, 6_000_010), "A": _num(rng, 5, 0, 10**6)}}
        else:
            body = {"stream": "btcusdt@trade", "data": {"e": "trade", "E": ts // 10**6, "s": sym, "t": i,
                    "p": _num(rng, 2, 5_999_990, 6_000_010), "q": _num(rng, 5, 1, 10**5), "T": ts // 10**6,
                    "m": rng.random() < 0.5, "M": True}}
        text = json.dumps(body, separators=(",", ":")) if rng.random() < 0.9 else json.dumps(body)
        if rng.random() < 0.03:
            text = text[: rng.randint(1, len(text))]  # broken JSON
        lines.append(f"{ts} {text}")
    return lines


@pytest.mark.parametrize("seed", range(40))
def test_random_broken_captures(tmp_path, seed):
    rng = random.Random(seed)
    data = ("\n".join(_capture(rng)) + "\n").encode()
    path = tmp_path / "c.gz"
    raw = gzip.compress(data)
    path.write_bytes(raw if seed % 5 else raw[: len(raw) * 2 // 3])  # every fifth one truncated
    assert_same([path], chunk_rows=rng.choice([1, 7, 4096]))


@pytest.mark.parametrize("fast", [True, False])
def test_numbers_beyond_int64_are_malformed_not_a_crash(tmp_path, fast):
    ok = '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":%d,"p":"%s","q":"0.00100","T":1,"m":true}}'
    lines = [f"1723161253937085768 {ok % (1, '60000.00')}", f"1723161253937085769 {ok % (2, '123456789012345678901.00')}",
             f"1723161253937085770 {ok % (99999999999999999999, '60000.00')}", f"1723161253937085771 {ok % (3, '60000.01')}"]
    path = tmp_path / "c.txt"
    path.write_text("\n".join(lines) + "\n")
    r = BinanceCapture(path, instrument=INS, fast=fast)
    ev = r.events()
    assert ev["id"].tolist() == [1, 3] and r.stats["malformed"] == 2
    assert [p.split(":")[1] for p in r.stats.problems] == ["2", "3"]
