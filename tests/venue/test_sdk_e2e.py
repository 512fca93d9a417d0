"""Issue 3's must-show: the official Binance Spot SDK, unchanged but for its base URLs, trades the simulated venue.

Depth snapshot over REST, the diff stream kept in sync with Binance's rules, a LIMIT order placed over the
WebSocket API, seen in ``openOrders.status``, partially filled by the synthetic market's own flow, cancelled, and
an ``executionReport`` received on the user-data stream for each step.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

pytest.importorskip("binance_sdk_spot", reason="the official SDK (binance-sdk-spot) is a test dependency")

from binance_common.configuration import (  # noqa: E402
    ConfigurationRestAPI,
    ConfigurationWebSocketAPI,
    ConfigurationWebSocketStreams,
)
from binance_sdk_spot.spot import Spot  # noqa: E402
from binance_sdk_spot.websocket_api.models import (  # noqa: E402
    OrderPlaceSideEnum,
    OrderPlaceTimeInForceEnum,
    OrderPlaceTypeEnum,
)

from workbench.book.sync import BookSync, Diff  # noqa: E402
from workbench.venue.keys import new_api_key  # noqa: E402
from workbench.venue.server import VenueServer  # noqa: E402
from workbench.venue.synthetic import USER, SyntheticVenue  # noqa: E402

WAIT_S = 60.0  # wall-clock bound for the synthetic flow to fill part of the order


def _field(obj, *names):
    """A field of an SDK model or of a plain dict, by any of its spellings."""
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    raise AttributeError(names)


def test_official_sdk_trades_the_synthetic_venue():
    async def scenario():
        venue = SyntheticVenue.default(seed=7)
        key = new_api_key(USER)
        async with VenueServer(venue, [key]) as srv:
            urls = srv.urls
            client = Spot(
                config_rest_api=ConfigurationRestAPI(api_key=key.key, api_secret=key.secret, base_path=urls["rest"]),
                config_ws_api=ConfigurationWebSocketAPI(api_key=key.key, api_secret=key.secret,
                                                        stream_url=urls["ws_api"]),
                config_ws_streams=ConfigurationWebSocketStreams(stream_url=urls["stream"]),
            )
            loop = asyncio.get_running_loop()

            # -- the diff stream, kept in sync with Binance's procedure against the REST snapshot
            sync = BookSync()
            book: dict[tuple[int, Decimal], Decimal] = {}

            def apply(bids, asks):
                for side, levels in ((1, bids), (-1, asks)):
                    for p, q in levels:
                        p, q = Decimal(p), Decimal(q)
                        if q == 0:
                            book.pop((side, p), None)
                        else:
                            book[(side, p)] = q

            def on_depth(msg):
                U, u = _field(msg, "U"), _field(msg, "u")
                for d in sync.on_diff(Diff(U, u, U - 1, msg)):
                    apply(_field(d.payload, "b"), _field(d.payload, "a"))

            streams = await client.websocket_streams.create_connection()
            depth_stream = await streams.diff_book_depth(symbol="btcusdt", update_speed="100ms")
            depth_stream.on("message", on_depth)
            await asyncio.sleep(0.3)
            snap = (await loop.run_in_executor(None, lambda: client.rest_api.depth(symbol="BTCUSDT", limit=5000))).data()
            applied, buffered = sync.on_snapshot(snap.last_update_id)
            assert applied
            apply(snap.bids, snap.asks)
            for d in buffered:
                apply(_field(d.payload, "b"), _field(d.payload, "a"))

            # -- the WebSocket API: user data first, then the order
            api = await client.websocket_api.create_connection()
            reports: list = []
            ud = await api.user_data_stream_subscribe_signature()
            ud.stream.on("message", lambda ev: reports.append(getattr(ev, "actual_instance", ev)))

            def exec_reports():
                # the SDK parses each event into its model class (ExecutionReport has no "e" field left)
                return [(_field(ev, "x"), _field(ev, "X")) for ev in reports if type(ev).__name__ == "ExecutionReport"]

            bid, ask = venue.top("BTCUSDT")[0], venue.top("BTCUSDT")[2]
            tick = Decimal("0.01")
            px = Decimal(bid) * tick + (tick if ask - bid >= 2 else 0)  # alone at the best bid when there is room
            resp = await api.order_place(symbol="BTCUSDT", side=OrderPlaceSideEnum.BUY, type=OrderPlaceTypeEnum.LIMIT,
                                         time_in_force=OrderPlaceTimeInForceEnum.GTC, price=float(px), quantity=5.0,
                                         new_client_order_id="sdk-e2e")
            placed = resp.data().result
            order_id = placed.order_id
            assert placed.status == "NEW"

            opened = (await api.open_orders_status(symbol="BTCUSDT")).data().result
            assert [o.client_order_id for o in opened] == ["sdk-e2e"]

            deadline = time.monotonic() + WAIT_S
            while ("TRADE", "PARTIALLY_FILLED") not in exec_reports() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert ("TRADE", "PARTIALLY_FILLED") in exec_reports(), exec_reports()

            cancelled = (await api.order_cancel(symbol="BTCUSDT", order_id=order_id)).data().result
            assert cancelled.status == "CANCELED"
            deadline = time.monotonic() + 10
            while ("CANCELED", "CANCELED") not in exec_reports() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            got = exec_reports()
            assert got[0] == ("NEW", "NEW") and got[-1] == ("CANCELED", "CANCELED")
            assert all(r == ("TRADE", "PARTIALLY_FILLED") for r in got[1:-1]) and len(got) >= 3

            # -- the local book followed every diff and equals the venue's
            await asyncio.sleep(0.3)
            want = venue.depth("BTCUSDT", 100_000)
            uid = want.last_update_id
            deadline = time.monotonic() + 5
            while sync.last_id < uid and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert sync.in_sync and sync.stats["gaps"] == 0
            ins = venue.symbols["BTCUSDT"].instrument
            mine = {(s, p) for (s, p) in book}
            theirs = {(1, Decimal(ins.ticks_to_str(p))) for p, _ in want.bids} | {
                (-1, Decimal(ins.ticks_to_str(p))) for p, _ in want.asks}
            if sync.last_id == uid:
                assert mine == theirs

            await depth_stream.unsubscribe()
            await streams.close_connection(close_session=True)
            await api.close_connection(close_session=True)

    asyncio.run(asyncio.wait_for(scenario(), WAIT_S + 60))
