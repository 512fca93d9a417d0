"""The feed client against the simulated venue over loopback: in sync with the venue's book, and each fault
survived (a dropped diff, a stale snapshot, a disconnect, malformed input), the book correct afterwards.

Each test starts its own venue on 127.0.0.1 and a free port and stops it; waits are bounded."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from workbench.live.feed import FeedClient, FeedConfig
from workbench.venue.keys import new_api_key
from workbench.venue.server import ServerConfig, VenueServer
from workbench.venue.synthetic import SyntheticVenue

TIMEOUT = 20.0


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


async def until(pred, timeout=TIMEOUT, what=""):
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def top_levels(book, n=5):
    lv = book.levels(n)
    return [(int(p), int(q)) for p, q in zip(lv[0], lv[1]) if q], [(int(p), int(q)) for p, q in zip(lv[2], lv[3]) if q]


async def matches_venue(venue, feed, sym="BTCUSDT", tries=200):
    """The client's book equals the venue's at the same update id (the venue moves on: compare when ids agree)."""
    for _ in range(tries):
        snap = venue.depth(sym, 5)
        if feed.symbols[sym].last_update_id == snap.last_update_id and feed.in_sync(sym):
            bids, asks = top_levels(feed.book(sym))
            return bids == [tuple(x) for x in snap.bids] and asks == [tuple(x) for x in snap.asks]
        await asyncio.sleep(0.005)
    return False


async def start(**srv):
    venue = SyntheticVenue.default(seed=4)
    server = VenueServer(venue, [new_api_key(1)], config=ServerConfig(**srv))
    await server.start()
    return venue, server


@contextlib.asynccontextmanager
async def running(feed, server):
    """The feed's run() as a task for the body; feed, task and venue server stopped after it, whatever happens."""
    task = asyncio.create_task(feed.run())
    try:
        await until(lambda: feed.in_sync("BTCUSDT"), what="first sync")
        yield
    finally:
        await feed.stop()
        await asyncio.wait_for(task, 10)
        await server.stop()


TRANSPORT = ["auto"]


@pytest.fixture(autouse=True, params=["picows", "websockets"])
def transport(request):
    """Each loopback test with the fast transport and with the fallback."""
    if request.param == "picows":
        pytest.importorskip("picows")
    TRANSPORT[0] = request.param
    yield request.param
    TRANSPORT[0] = "auto"


def feed_for(server, venue, **kw):
    cfg = FeedConfig(stream_url=server.urls["stream"], rest_url=server.urls["rest"], symbols=("BTCUSDT",),
                     reconnect_min_s=0.05, transport=TRANSPORT[0], **kw)
    events = []
    feed = FeedClient(cfg, {"BTCUSDT": venue.symbols["BTCUSDT"].instrument},
                      on_status=lambda s, what, detail: events.append(what))
    return feed, events


def test_the_book_follows_the_venue_and_trades_arrive():
    async def scenario():
        venue, server = await start()
        feed, events = feed_for(server, venue)
        async with running(feed, server):
            await until(lambda: feed.stats["trades"] > 0 and feed.stats["diffs_applied"] > 20, what="traffic")
            assert await matches_venue(venue, feed)
            assert feed.stats["malformed"] == 0 and feed.stats["gaps"] == 0 and "in_sync" in events
            assert feed.stale_symbols() == []

    run(scenario())


def test_a_dropped_diff_is_a_gap_then_a_resync_from_a_new_snapshot():
    async def scenario():
        venue, server = await start()
        feed, events = feed_for(server, venue)
        async with running(feed, server):
            server.faults.drop_depth = 1
            await until(lambda: feed.stats["gaps"] >= 1, what="the gap")
            await until(lambda: feed.in_sync("BTCUSDT") and feed.stats["snapshots_applied"] >= 2, what="resync")
            assert "gap" in events and await matches_venue(venue, feed)

    run(scenario())


def test_a_stale_snapshot_is_skipped_and_fetched_again():
    async def scenario():
        venue, server = await start()
        feed, events = feed_for(server, venue)
        async with running(feed, server):
            await asyncio.sleep(0.5)  # the venue moves on: its first snapshot is now old
            server.faults.stale_snapshot = 1
            server.faults.drop_depth = 1
            await until(lambda: feed.stats["stale_snapshots"] >= 1, what="a stale snapshot")
            await until(lambda: feed.in_sync("BTCUSDT"), what="resync")
            assert await matches_venue(venue, feed)

    run(scenario())


def test_a_disconnect_is_survived_with_a_reconnect_and_a_resync():
    async def scenario():
        venue, server = await start()
        feed, events = feed_for(server, venue)
        async with running(feed, server):
            assert server.disconnect_all() == 1
            await until(lambda: feed.stats["reconnects"] >= 1, what="the reconnect")
            await until(lambda: feed.in_sync("BTCUSDT"), what="resync")
            assert "disconnected" in events and "reconnected" in events
            assert await matches_venue(venue, feed)

    run(scenario())


def test_a_venue_that_goes_away_is_retried_with_backoff_then_given_up():
    async def scenario():
        venue, server = await start()
        feed, events = feed_for(server, venue, max_reconnects=2)
        task = asyncio.create_task(feed.run())
        await until(lambda: feed.in_sync("BTCUSDT"), what="first sync")
        await server.stop()
        await asyncio.wait_for(task, 20)  # two retries against a closed port, then run() returns
        assert feed.stats["disconnects"] >= 3 and not feed.in_sync("BTCUSDT")

    run(scenario())


@pytest.mark.parametrize("frame", [
    b"not json", b'{"data": {"e": "depthUpdate"}}', b'{"data": {"e": "trade", "s": "BTCUSDT", "p": "1.001"}}',
    b'{"data": {"e": "depthUpdate", "s": "BTCUSDT", "E": 1, "U": 5, "u": 6, "b": [["60000.001", "1"]], "a": []}}',
])
def test_malformed_frames_are_counted_never_fatal(frame):
    from workbench.instrument import Instrument

    cfg = FeedConfig(stream_url="ws://127.0.0.1:9", rest_url="http://127.0.0.1:9", symbols=("BTCUSDT",))
    feed = FeedClient(cfg, {"BTCUSDT": Instrument("BTCUSDT", "0.01", "0.00001")})
    feed.handle_message(frame)
    assert feed.stats["malformed"] == 1
