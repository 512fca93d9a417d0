"""A served replay keeps Binance's diff chain: a client syncing by the documented rules (``U == previous u + 1``)
stays in sync over a recording whose diffs each span several update ids, as real Binance diffs do.

Regression: the replay published each level change with its diff's ``u`` only, so the server sent ``U = u`` and a
client saw a gap at every diff (resync after resync, never trading) on the real BTCUSDT capture.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from workbench.enums import ASK, BID, F_BATCH_END, K_DEPTH, K_SNAPSHOT
from workbench.instrument import Instrument
from workbench.live.feed import FeedClient, FeedConfig
from workbench.types import empty_events
from workbench.venue.api import SymbolSpec
from workbench.venue.keys import new_api_key
from workbench.venue.replay import ReplayVenue
from workbench.venue.server import ServerConfig, VenueClock, VenueServer

MS = 1_000_000
T0 = 1_723_161_600_000 * MS
INS = Instrument("TEST", "0.01", "1")


def _recording(n: int) -> np.ndarray:
    """A snapshot (lastUpdateId 100), then ``n`` diffs 20 ms apart, each of two levels, spanning 5 update ids."""
    ev = empty_events(4 + 2 * n)
    ev["ts_exch_ns"] = ev["ts_local_ns"] = T0
    ev["kind"][:4] = K_SNAPSHOT
    ev["side"][:4] = [BID, BID, ASK, ASK]
    ev["px_ticks"][:4] = [100, 99, 102, 103]
    ev["qty_lots"][:4] = 10
    ev["id"][:4] = ev["first_id"][:4] = 100
    ev["flags"][3] = F_BATCH_END
    d = ev[4:]
    k = np.repeat(np.arange(n), 2)
    d["ts_exch_ns"] = d["ts_local_ns"] = T0 + (k + 1) * 20 * MS
    d["kind"] = K_DEPTH
    d["side"] = np.tile([BID, ASK], n)
    d["px_ticks"] = np.tile([100, 104], n)
    d["qty_lots"] = k % 7 + 1
    d["first_id"] = 101 + 5 * k          # U
    d["id"] = 105 + 5 * k                # u: the chain U == previous u + 1 holds
    d["prev_id"] = -1
    d["flags"][1::2] = F_BATCH_END
    return ev


@pytest.mark.parametrize("every_batch", [True, False], ids=["every-diff", "aggregated-100ms"])
def test_a_binance_rule_client_stays_in_sync_with_a_served_replay(every_batch):
    async def scenario():
        venue = ReplayVenue([_recording(75)], SymbolSpec(INS, "BASE", "QUOTE"))
        async with VenueServer(venue, [new_api_key(1)], clock=VenueClock(start_ns=T0, speed=1.0),
                               config=ServerConfig(depth_every_batch=every_batch, ping_interval_s=None)) as srv:
            feed = FeedClient(FeedConfig(stream_url=srv.urls["stream"], rest_url=srv.urls["rest"],
                                         symbols=("TEST",), trades=False), {"TEST": INS})
            task = asyncio.create_task(feed.run())
            try:
                async with asyncio.timeout(15):
                    while not venue.exhausted or feed.symbols["TEST"].last_update_id < venue.last_update_id:
                        await asyncio.sleep(0.01)
                in_sync = feed.in_sync("TEST")
            finally:
                await feed.stop()
                await asyncio.wait_for(task, 5)
            return feed, venue, in_sync

    feed, venue, in_sync = asyncio.run(scenario())
    assert in_sync and feed.stats["gaps"] == 0 and feed.stats["snapshots"] == 1, dict(feed.stats)
    assert feed.stats["diffs_applied"] > 10
    lv = feed.book("TEST").levels(3)
    snap = venue.depth("TEST", 3)
    for r, levels in ((0, snap.bids), (2, snap.asks)):  # the local book is the venue's
        assert [(p, q) for p, q in zip(lv[r].tolist(), lv[r + 1].tolist()) if q] == levels
