"""Latency models: constant and seeded sampled draws, and feed latencies measured in the real Binance captures."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.enums import F_BATCH_END, K_BBO, K_DEPTH, K_TRADE
from workbench.exceptions import ConfigError
from workbench.types import empty_events
from workbench.venue.latency import ConstantLatency, DelayLine, LatencyModel, SampledLatency, feed_latency_samples

MS = 1_000_000


def test_constant():
    c = ConstantLatency(1 * MS)
    assert c.draw_ns() == MS
    assert np.array_equal(c.draw_many_ns(3), [MS, MS, MS])
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ConfigError):
            ConstantLatency(bad)


def test_sampled_is_seeded_and_draws_the_samples():
    samples = np.array([1, 2, 3, 10, 100], np.int64) * MS
    a, b, c = (SampledLatency(samples, seed=s) for s in (1, 1, 2))
    da, db, dc = a.draw_many_ns(20_000), b.draw_many_ns(20_000), c.draw_many_ns(20_000)
    assert np.array_equal(da, db) and not np.array_equal(da, dc)
    assert set(np.unique(da).tolist()) == set(samples.tolist())
    # draws with replacement: each sample a fifth of the time, the mean that of the samples
    freq = np.array([np.mean(da == s) for s in samples])
    assert np.all(np.abs(freq - 0.2) < 4 * np.sqrt(0.2 * 0.8 / len(da)))
    assert abs(da.mean() - samples.mean()) < 4 * samples.std() / np.sqrt(len(da))
    assert a.quantile_ns(0.5) == 3 * MS
    assert isinstance(SampledLatency(samples, seed=3).draw_ns(), int)
    with pytest.raises(ConfigError):
        SampledLatency(np.array([-1, 5]))
    with pytest.raises(ConfigError):
        SampledLatency(np.array([], np.int64))
    with pytest.raises(ConfigError):
        SampledLatency(np.array([0.5, 1.0]))


def test_latency_model_bundle():
    m = LatencyModel.constant(feed_ns=2 * MS, order_entry_ns=MS)
    assert (m.feed_ns(), m.order_entry_ns(), m.response_ns(), m.round_trip_ns()) == (2 * MS, MS, MS, 2 * MS)
    s = LatencyModel(SampledLatency([5, 6], seed=0), ConstantLatency(7), ConstantLatency(8))
    assert s.feed_ns() in (5, 6) and s.round_trip_ns() == 15


def test_feed_samples_one_per_message_minus_the_fastest():
    ev = empty_events(6)
    ev["kind"] = [K_DEPTH, K_DEPTH, K_TRADE, K_BBO, K_DEPTH, K_TRADE]
    ev["flags"] = [0, F_BATCH_END, F_BATCH_END, F_BATCH_END, F_BATCH_END, F_BATCH_END]
    ev["ts_exch_ns"] = [100, 100, 200, 300, 400, 500]
    # local clock 1000 ns behind, latencies 30, 10, (bookTicker: estimated time, left out), 50, 20
    ev["ts_local_ns"] = [-870, -870, -790, 0, -550, -480]
    assert feed_latency_samples(ev).tolist() == [20, 0, 40, 10]
    assert feed_latency_samples([ev[:3], ev[3:]]).tolist() == [20, 0, 40, 10]  # chunks
    assert feed_latency_samples(ev, kinds=(K_TRADE,)).tolist() == [0, 10]
    q = feed_latency_samples(ev, baseline_quantile=0.5)  # baseline 20 (lower median): values under it clip to 0
    assert q.tolist() == [10, 0, 30, 0]
    assert len(feed_latency_samples(empty_events(0))) == 0
    with pytest.raises(ConfigError):
        feed_latency_samples(ev, baseline_quantile=1.0)


@pytest.mark.data
@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_feed_latency_of_the_real_captures(shared_data, market):
    from workbench.data import BinanceCapture

    path = shared_data / f"binance/{market}/btcusdt_20240808.gz"
    reader = BinanceCapture(path)
    chunks = list(reader)
    ev = np.concatenate(chunks)
    raw = (ev["ts_local_ns"] - ev["ts_exch_ns"])[np.isin(ev["kind"], [K_DEPTH, K_TRADE])]
    assert raw.max() < -1_000 * MS  # the local clock runs behind: raw differences are not latencies
    lat = feed_latency_samples(chunks)
    n_msgs = reader.stats["diffs_applied"] + reader.stats["trades"]
    assert len(lat) == n_msgs and lat.min() == 0
    med, p99 = np.percentile(lat, [50, 99])
    assert 0.5 * MS < med < 50 * MS and med < p99 < 500 * MS  # a few ms above the fastest message, a fat tail
    draws = SampledLatency(lat, seed=42).draw_many_ns(50_000)
    assert abs(np.median(draws) - med) < 0.5 * MS


def test_delay_line_keeps_order_when_a_later_message_draws_a_shorter_delay():
    line = DelayLine()
    assert line.next_due_ns() is None and line.pop_due(10**18) == []
    assert line.put(500, "a") == 500
    assert line.put(100, "b") == 500  # drew a shorter delay, but cannot overtake "a"
    assert line.put(700, "c") == 700
    assert line.next_due_ns() == 500 and len(line) == 3
    assert line.pop_due(499) == []
    assert line.pop_due(500) == ["a", "b"]
    assert line.pop_due(10**18) == ["c"] and len(line) == 0
    line.put(800, "d")
    line.clear()
    assert line.next_due_ns() is None
