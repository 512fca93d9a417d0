"""ThreadedVenue: the venue server on its own loop in a daemon thread, started and stopped from plain code."""

from __future__ import annotations

import json
import threading
import urllib.request

from tests.venue.test_server import USER, make_engine
from workbench.venue.keys import new_api_key
from workbench.venue.server import ThreadedVenue


def test_serves_from_its_thread_runs_calls_on_its_loop_and_stops():
    with ThreadedVenue(make_engine(), [new_api_key(USER)]) as tv:
        with urllib.request.urlopen(tv.urls["rest"] + "/api/v3/depth?symbol=BTCUSDT&limit=1", timeout=10) as r:
            assert json.loads(r.read())["bids"][0][0] == "60000.00000000"
        assert tv.call(lambda: threading.current_thread().name) == "workbench-venue"
        assert tv.call(lambda: tv.server.disconnect_all()) == 0
    tv.stop()  # idempotent
    assert not [t for t in threading.enumerate() if t.name == "workbench-venue"]
