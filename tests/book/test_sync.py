"""BookSync: Binance's snapshot + diff procedure, on hand-made diffs (spot ``U``/``u`` chains, futures ``pu`` chains)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.book.sync import BookSync, Diff, SyncState


def spot(first: int, last: int) -> Diff:
    """A spot diff: its predecessor is U - 1; the payload names it."""
    return Diff(first, last, first - 1, payload=(first, last))


def fut(first: int, last: int, prev: int) -> Diff:
    """A futures diff with ``pu``."""
    return Diff(first, last, prev, payload=(first, last))


def feed(sync: BookSync, diffs) -> list[Diff]:
    out: list[Diff] = []
    for d in diffs:
        out.extend(sync.on_diff(d))
    return out


def ids(diffs) -> list[tuple[int, int]]:
    return [d.payload for d in diffs]


def counts(sync: BookSync) -> dict[str, int]:
    return {k: v for k, v in sync.stats.counts.items() if v}


# -- spot rule --------------------------------------------------------------------------------------------------------
def test_spot_buffered_diffs_dropped_then_first_straddles():
    s = BookSync()
    assert feed(s, [spot(1, 5), spot(6, 10), spot(11, 15)]) == []
    assert s.state == SyncState.AWAIT_SNAPSHOT and not s.in_sync
    apply, out = s.on_snapshot(7)  # 6 <= 8 <= 10: the second diff straddles
    assert apply is True
    assert ids(out) == [(6, 10), (11, 15)]
    assert s.in_sync and s.last_id == 15
    assert ids(feed(s, [spot(16, 20), spot(21, 21)])) == [(16, 20), (21, 21)]
    assert counts(s) == {"snapshots_applied": 1, "diffs_dropped": 1, "diffs_applied": 4}
    assert s.last_id == 21


@pytest.mark.parametrize(
    "L, applied, dropped",
    [
        (0, [(1, 5), (6, 10), (11, 15)], 0),  # L + 1 == first U: nothing dropped
        (5, [(6, 10), (11, 15)], 1),           # L == u of a diff: the next one starts at L + 1
        (9, [(6, 10), (11, 15)], 1),           # L + 1 == u
        (10, [(11, 15)], 2),
        (15, [], 3),                           # snapshot newer than every buffered diff
    ],
)
def test_spot_straddle_edges(L, applied, dropped):
    s = BookSync()
    feed(s, [spot(1, 5), spot(6, 10), spot(11, 15)])
    apply, out = s.on_snapshot(L)
    assert apply is True
    assert ids(out) == applied
    assert s.stats["diffs_dropped"] == dropped
    assert s.stats["diffs_applied"] == len(applied)
    assert s.stats["gaps"] == 0
    if applied:
        assert s.state == SyncState.LIVE and s.last_id == 15
    else:
        assert s.state == SyncState.AWAIT_FIRST and s.last_id == 15
        assert ids(s.on_diff(spot(16, 18))) == [(16, 18)]
        assert s.in_sync


def test_snapshot_before_any_diff():
    s = BookSync()
    assert s.on_snapshot(100) == (True, [])
    assert s.state == SyncState.AWAIT_FIRST and s.last_id == 100
    assert feed(s, [spot(90, 95), spot(96, 100)]) == []  # u <= L: before the snapshot
    assert ids(feed(s, [spot(101, 104), spot(105, 105)])) == [(101, 104), (105, 105)]
    assert counts(s) == {"snapshots_applied": 1, "diffs_dropped": 2, "diffs_applied": 2}


def test_spot_first_diff_not_straddling_is_a_gap():
    s = BookSync()
    feed(s, [spot(1, 5), spot(8, 10), spot(11, 12)])  # 6..7 missing inside the buffer
    apply, out = s.on_snapshot(6)
    assert apply is True and out == []
    assert s.state == SyncState.AWAIT_SNAPSHOT
    assert counts(s) == {"snapshots_applied": 1, "diffs_dropped": 1, "gaps": 1}
    # what follows the break waits for the next snapshot, in order
    assert ids(s._buffer) == [(8, 10), (11, 12)]
    apply, out = s.on_snapshot(9)
    assert apply is True and ids(out) == [(8, 10), (11, 12)]
    assert s.stats["resyncs"] == 1 and s.in_sync


def test_spot_live_chain_requires_U_equals_prev_u_plus_1():
    s = BookSync()
    s.on_snapshot(10)
    assert ids(feed(s, [spot(11, 20)])) == [(11, 20)]
    assert feed(s, [spot(22, 25)]) == []  # 21 missing
    assert s.stats["gaps"] == 1 and not s.in_sync


def test_overlapping_diff_in_live_is_a_gap():
    # rule 4 of the module: a diff with u after the book that does not continue the chain exactly is a gap
    s = BookSync()
    s.on_snapshot(10)
    feed(s, [spot(11, 20)])
    assert feed(s, [spot(15, 25)]) == []
    assert s.stats["gaps"] == 1 and s.stats["duplicates"] == 0 and not s.in_sync


# -- futures rule (pu) ------------------------------------------------------------------------------------------------
def test_futures_snapshot_strictly_between_two_diffs_is_a_valid_start():
    s = BookSync()
    chain = [fut(100, 110, 95), fut(120, 130, 110), fut(135, 140, 130)]
    feed(s, chain)
    apply, out = s.on_snapshot(115)  # 110 < 115 < 120: pu=110 <= 115 < u=130
    assert apply is True
    assert ids(out) == [(120, 130), (135, 140)]
    assert s.in_sync and s.last_id == 140
    assert ids(feed(s, [fut(150, 155, 140)])) == [(150, 155)]
    assert counts(s) == {"snapshots_applied": 1, "diffs_dropped": 1, "diffs_applied": 3}


def test_futures_snapshot_between_diffs_live_arrival():
    s = BookSync()
    s.on_snapshot(115)
    assert feed(s, [fut(100, 110, 95)]) == []
    assert ids(feed(s, [fut(120, 130, 110)])) == [(120, 130)]
    assert s.in_sync


def test_futures_first_remaining_diff_not_straddling_is_a_gap():
    s = BookSync()
    feed(s, [fut(100, 110, 95), fut(120, 130, 112)])  # pu=112 != 110: a diff is missing
    apply, out = s.on_snapshot(111)
    assert apply is True and out == []
    assert counts(s) == {"snapshots_applied": 1, "diffs_dropped": 1, "gaps": 1}
    assert s.state == SyncState.AWAIT_SNAPSHOT


def test_futures_live_gap_on_pu_mismatch():
    s = BookSync()
    s.on_snapshot(100)
    assert ids(feed(s, [fut(95, 105, 90), fut(110, 120, 105)])) == [(95, 105), (110, 120)]
    assert feed(s, [fut(130, 140, 125)]) == []  # pu=125, previous u=120
    assert counts(s) == {"snapshots_applied": 1, "diffs_applied": 2, "gaps": 1}
    assert not s.in_sync


# -- stale snapshots, duplicates, gaps, ignored snapshots ------------------------------------------------------------
def test_stale_snapshot_is_skipped_and_next_used():
    s = BookSync()
    feed(s, [spot(11, 15), spot(16, 20)])
    assert s.on_snapshot(9) == (False, [])  # 9 < 11 - 1: the diff 10 is lost
    assert s.state == SyncState.AWAIT_SNAPSHOT
    assert counts(s) == {"snapshots_stale": 1}
    feed(s, [spot(21, 22)])
    apply, out = s.on_snapshot(17)
    assert apply is True and ids(out) == [(16, 20), (21, 22)]
    assert counts(s) == {"snapshots_stale": 1, "snapshots_applied": 1, "diffs_dropped": 1, "diffs_applied": 2}
    assert s.stats["resyncs"] == 0  # the first sync is not a resync


def test_snapshot_exactly_before_first_buffered_diff_is_not_stale():
    s = BookSync()
    feed(s, [spot(11, 15)])
    apply, out = s.on_snapshot(10)
    assert apply is True and ids(out) == [(11, 15)]
    assert s.stats["snapshots_stale"] == 0


def test_duplicate_in_live_is_dropped_without_losing_sync():
    s = BookSync()
    s.on_snapshot(10)
    feed(s, [spot(11, 15), spot(16, 20)])
    assert s.on_diff(spot(16, 20)) == []  # repeated
    assert s.on_diff(spot(11, 15)) == []  # older
    assert s.in_sync and s.last_id == 20
    assert ids(s.on_diff(spot(21, 25))) == [(21, 25)]
    assert counts(s) == {"snapshots_applied": 1, "diffs_applied": 3, "duplicates": 2}


def test_gap_in_live_waits_for_new_snapshot_then_resyncs():
    s = BookSync()
    s.on_snapshot(10)
    feed(s, [spot(11, 20)])
    assert feed(s, [spot(26, 30), spot(31, 35), spot(36, 40)]) == []  # 21..25 lost
    assert s.state == SyncState.AWAIT_SNAPSHOT
    assert s.stats["gaps"] == 1 and s.stats["resyncs"] == 0
    assert s.on_snapshot(22) == (False, [])  # older than the gap diff (prev 25): stale
    assert s.stats["snapshots_stale"] == 1 and s.stats["resyncs"] == 0
    apply, out = s.on_snapshot(32)
    assert apply is True and ids(out) == [(31, 35), (36, 40)]
    assert s.in_sync and s.last_id == 40
    assert counts(s) == {
        "snapshots_applied": 2,
        "snapshots_stale": 1,
        "diffs_applied": 3,
        "gaps": 1,
        "resyncs": 1,
        "diffs_dropped": 1,
    }


def test_snapshots_while_in_sync_or_awaiting_first_are_ignored():
    s = BookSync()
    s.on_snapshot(10)
    assert s.on_snapshot(12) == (False, [])  # AWAIT_FIRST
    assert s.last_id == 10 and s.state == SyncState.AWAIT_FIRST
    feed(s, [spot(11, 15)])
    assert s.on_snapshot(13) == (False, [])
    assert s.on_snapshot(100) == (False, [])
    assert s.in_sync and s.last_id == 15
    assert ids(s.on_diff(spot(16, 16))) == [(16, 16)]
    assert counts(s) == {"snapshots_applied": 1, "snapshots_ignored": 3, "diffs_applied": 2}


def test_resync_crossed():
    s = BookSync()
    s.on_snapshot(10)
    feed(s, [spot(11, 15)])
    s.resync("crossed")
    assert s.state == SyncState.AWAIT_SNAPSHOT and not s.in_sync
    assert feed(s, [spot(16, 20), spot(21, 25)]) == []  # buffered, not applied
    apply, out = s.on_snapshot(20)
    assert apply is True and ids(out) == [(21, 25)]
    assert counts(s) == {
        "snapshots_applied": 2,
        "diffs_applied": 2,
        "resync_crossed": 1,
        "resyncs": 1,
        "diffs_dropped": 1,
    }


def test_resync_while_buffering_counts_the_buffer_as_dropped():
    s = BookSync()
    feed(s, [spot(1, 2), spot(3, 4)])
    s.resync("crossed")
    assert counts(s) == {"resync_crossed": 1, "dropped_unsynced": 2}
    assert len(s._buffer) == 0


def test_buffer_overflow_drops_oldest():
    s = BookSync(max_buffer=3)
    feed(s, [spot(i, i) for i in range(1, 6)])
    assert s.stats["buffer_overflow"] == 2
    assert ids(s._buffer) == [(3, 3), (4, 4), (5, 5)]
    assert s.on_snapshot(1) == (False, [])  # diff 2 was dropped: stale
    apply, out = s.on_snapshot(2)
    assert apply is True and ids(out) == [(3, 3), (4, 4), (5, 5)]
    assert counts(s) == {"buffer_overflow": 2, "snapshots_stale": 1, "snapshots_applied": 1, "diffs_applied": 3}


def test_finish_counts_buffered_diffs_never_applied():
    s = BookSync()
    feed(s, [spot(1, 1), spot(2, 3), spot(4, 4), spot(5, 9)])
    s.finish()
    assert counts(s) == {"dropped_unsynced": 4}
    assert len(s._buffer) == 0
    s.finish()
    assert s.stats["dropped_unsynced"] == 4


def test_finish_after_gap_counts_gap_diff_and_followers():
    s = BookSync()
    s.on_snapshot(0)
    feed(s, [spot(1, 5), spot(7, 9), spot(10, 10)])
    s.finish()
    assert counts(s) == {"snapshots_applied": 1, "diffs_applied": 1, "gaps": 1, "dropped_unsynced": 2}


def test_finish_in_sync_counts_nothing():
    s = BookSync()
    s.on_snapshot(0)
    feed(s, [spot(1, 5)])
    s.finish()
    assert s.stats["dropped_unsynced"] == 0 and s.in_sync


# -- properties -------------------------------------------------------------------------------------------------------
@st.composite
def chains(draw):
    """A valid chain of spot (contiguous ids) or futures (ids jump, pu = previous u) diffs, a snapshot id L at or
    after the first diff's predecessor, and how many diffs arrive before the snapshot."""
    futures = draw(st.booleans())
    n = draw(st.integers(2, 25))
    prev = draw(st.integers(0, 10**12))
    diffs = []
    for k in range(n):
        first = prev + (draw(st.integers(1, 7)) if futures else 1)
        last = first + draw(st.integers(0, 6))
        diffs.append(Diff(first, last, prev if futures else first - 1, payload=k))
        prev = last
    L = draw(st.integers(diffs[0].prev_id, diffs[-1].last_id))
    return diffs, L


def run(diffs, L, p):
    s = BookSync()
    applied = feed(s, diffs[:p])
    assert applied == []
    apply, out = s.on_snapshot(L)
    applied += out
    applied += feed(s, diffs[p:])
    s.finish()
    return s, apply, [d.payload for d in applied]


@settings(max_examples=300, deadline=None)
@given(chains(), st.data())
def test_property_valid_chain_applies_everything_after_snapshot_once(chain, data):
    diffs, L = chain
    p = data.draw(st.integers(0, len(diffs)), label="diffs before the snapshot")
    s, apply, applied = run(diffs, L, p)
    expected = [d.payload for d in diffs if d.last_id > L]
    assert apply is True
    assert applied == expected
    assert s.stats["diffs_applied"] == len(expected)
    assert s.stats["diffs_dropped"] == len(diffs) - len(expected)
    for name in ("gaps", "duplicates", "dropped_unsynced", "snapshots_stale", "resyncs"):
        assert s.stats[name] == 0, name
    assert s.in_sync == bool(expected)
    assert s.last_id == diffs[-1].last_id


@settings(max_examples=300, deadline=None)
@given(chains(), st.data())
def test_property_one_missing_diff_is_exactly_one_gap(chain, data):
    diffs, L = chain
    after = [k for k, d in enumerate(diffs[:-1]) if d.last_id > L]  # a diff the book needs, with a follower
    if not after:
        return
    r = data.draw(st.sampled_from(after), label="removed")
    stream = diffs[:r] + diffs[r + 1 :]
    p = data.draw(st.integers(0, len(stream)), label="diffs before the snapshot")
    s, apply, applied = run(stream, L, p)
    stale = p > 0 and stream[0].prev_id > L  # only when the first diff is the one removed
    assert s.stats["dropped_unsynced"] == (len(stream) if stale else len(diffs) - 1 - r)
    if stale:
        assert apply is False and applied == []
        assert s.stats["snapshots_stale"] == 1 and s.stats["gaps"] == 0
        return
    assert apply is True
    assert s.stats["gaps"] == 1
    assert applied == [d.payload for d in diffs[:r] if d.last_id > L]
    assert not s.in_sync and s.state == SyncState.AWAIT_SNAPSHOT
    assert s.stats["duplicates"] == 0 and s.stats["snapshots_stale"] == 0
