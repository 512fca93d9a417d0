"""BinanceCapture: the real spot and USD-M captures end to end, faults injected into a copy of the first lines of the
real spot capture (checked against a clean replay of the same lines), and files that are not captures at all."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pytest

from workbench.book.book import L2Book
from workbench.book.sync import SyncState
from workbench.data.binance import BinanceCapture
from workbench.enums import F_BATCH_END, F_CLEAR, F_GAP, F_RESYNC, K_DEPTH, K_SNAPSHOT, K_TRADE
from workbench.exceptions import DataError, UnrecognisedFormatError
from workbench.types import event_dt

SPOT_0808 = "binance/spot/btcusdt_20240808.gz"
SPOT_0809 = "binance/spot/btcusdt_20240809.gz"
USDM_0808 = "binance/usdm/btcusdt_20240808.gz"

N_LINES = 3000  # lines of the real spot capture the fault tests start from
N_LEVELS = 20   # levels a side compared after every diff
F = 60          # the fault hits the F-th depth diff (0-based, in line order)
K = F + 3       # the resync snapshot is the clean book after diff K, inserted right after diff K's line


# -- helpers ----------------------------------------------------------------------------------------------------------
def read_lines(path: Path, n: int | None = None) -> list[bytes]:
    out = []
    with gzip.open(path, "rb") as f:
        for line in f:
            if n is not None and len(out) >= n:
                break
            out.append(line)
    return out


def write(path: Path, lines: list[bytes]) -> Path:
    data = b"".join(lines)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def capture(path, **kw) -> tuple[BinanceCapture, np.ndarray]:
    reader = BinanceCapture(path, **kw)
    return reader, reader.events()


def diff_ends(ev: np.ndarray) -> np.ndarray:
    """Mask of the last row of each emitted diff."""
    return (ev["kind"] == K_DEPTH) & ((ev["flags"] & F_BATCH_END) != 0)


def applied_ids(ev: np.ndarray) -> list[int]:
    return ev["id"][diff_ends(ev)].tolist()


def per_diff_levels(ev: np.ndarray) -> dict[int, np.ndarray]:
    """u -> top N_LEVELS levels of a fresh book replaying ``ev``, just after the diff with that u."""
    rec = L2Book().replay(ev, n_levels=N_LEVELS)
    rows = ev[rec.event_ix]
    m = (rows["kind"] == K_DEPTH) & ((rows["flags"] & F_BATCH_END) != 0)
    return dict(zip(rows["id"][m].tolist(), rec.levels[m]))


def gap_rows(ev: np.ndarray) -> np.ndarray:
    return ev[(ev["flags"] & F_GAP) != 0]


def edit_data(line: bytes, fn: Callable[[dict], None]) -> bytes:
    ts, _, js = line.partition(b" ")
    obj = orjson.loads(js)
    fn(obj["data"])
    return ts + b" " + orjson.dumps(obj) + b"\n"


def build(lines, *, drop=(), replace=None, insert_after=None) -> tuple[list[bytes], dict[int, int]]:
    """Copy ``lines`` without ``drop``, with ``replace`` {index: line} and ``insert_after`` {index: [lines]}.
    Returns the lines and {original index: 1-based line number in the copy}."""
    out, where = [], {}
    for i, line in enumerate(lines):
        if i not in drop:
            where[i] = len(out) + 1
            out.append((replace or {}).get(i, line))
        out.extend((insert_after or {}).get(i, []))
    return out, where


def book_dump(reader: BinanceCapture) -> tuple[np.ndarray, ...]:
    return (*reader.book.side_levels(1), *reader.book.side_levels(-1))


@dataclass
class Clean:
    lines: list[bytes]
    depth: list[int]              # line index of each depth diff
    ids: list[tuple[int, int]]    # (U, u) of each depth diff
    snap_line: int                # line index of the REST snapshot
    L: int                        # its lastUpdateId
    reader: BinanceCapture
    events: np.ndarray
    applied: list[int]            # u of the diffs applied, in order
    levels: dict[int, np.ndarray]
    resync_snapshot: bytes        # synthetic snapshot: the clean book after diff K, lastUpdateId = u of diff K

    def u(self, k: int) -> int:
        return self.ids[k][1]


def synthetic_snapshot(lines: list[bytes], upto: int, folder: Path) -> tuple[bytes, int]:
    """Snapshot line of the book a clean reader holds after ``lines[:upto + 1]`` (ending with a diff)."""
    reader, _ = capture(write(folder / f"upto_{upto}.txt", lines[: upto + 1]))
    assert reader.sync.in_sync
    inst, last = reader.instrument, reader.sync.last_id
    bids, asks = reader.book.side_levels(1), reader.book.side_levels(-1)
    snap = {
        "lastUpdateId": last,
        "bids": [[inst.ticks_to_str(p), inst.lots_to_str(q)] for p, q in zip(*bids)],
        "asks": [[inst.ticks_to_str(p), inst.lots_to_str(q)] for p, q in zip(*asks)],
    }
    ts = int(lines[upto].partition(b" ")[0]) + 1
    return str(ts).encode() + b" " + orjson.dumps(snap) + b"\n", last


@pytest.fixture(scope="module")
def spot_lines(shared_data) -> list[bytes]:
    return read_lines(shared_data / SPOT_0808, N_LINES)


@pytest.fixture(scope="module")
def clean(spot_lines, tmp_path_factory) -> Clean:
    folder = tmp_path_factory.mktemp("binance_clean")
    depth, ids, snap_line, L = [], [], None, None
    for i, line in enumerate(spot_lines):
        obj = orjson.loads(line.partition(b" ")[2])
        if obj.get("data", {}).get("e") == "depthUpdate":
            depth.append(i)
            ids.append((obj["data"]["U"], obj["data"]["u"]))
        elif "lastUpdateId" in obj:
            snap_line, L = i, obj["lastUpdateId"]
    assert snap_line is not None and len(depth) > K + 100
    reader, ev = capture(write(folder / "clean.gz", spot_lines))
    snap, last = synthetic_snapshot(spot_lines, depth[K], folder)
    assert last == ids[K][1]
    return Clean(
        lines=spot_lines,
        depth=depth,
        ids=ids,
        snap_line=snap_line,
        L=L,
        reader=reader,
        events=ev,
        applied=applied_ids(ev),
        levels=per_diff_levels(ev),
        resync_snapshot=snap,
    )


def assert_matches_clean(clean: Clean, reader: BinanceCapture, ev: np.ndarray, *, resync_L: int, skip=()):
    """Every diff emitted leaves the book as in the clean replay; after ``resync_L`` exactly the clean diffs are
    emitted; the reader's whole book ends equal to the clean one."""
    got = per_diff_levels(ev)
    for u, lv in got.items():
        if u not in skip:
            np.testing.assert_array_equal(lv, clean.levels[u], err_msg=f"book after diff u={u}")
    after = [u for u in applied_ids(ev) if u > resync_L]
    expected = [u for u in clean.applied if u > resync_L]
    assert after == expected
    assert len(after) > 100
    for a, b in zip(book_dump(reader), book_dump(clean.reader), strict=True):
        np.testing.assert_array_equal(a, b)
    assert reader.sync.in_sync


def run_fault(clean: Clean, tmp_path: Path, *, name="fault.gz", resync=True, **edits):
    insert = dict(edits.pop("insert_after", {}))
    if resync:
        insert.setdefault(clean.depth[K], []).append(clean.resync_snapshot)
    lines, where = build(clean.lines, insert_after=insert, **edits)
    reader, ev = capture(write(tmp_path / name, lines))
    return reader, ev, where


def assert_resynced_once(clean: Clean, ev: np.ndarray) -> None:
    """Exactly one RESYNC row: the first row of the synthetic snapshot."""
    rs = ev[(ev["flags"] & F_RESYNC) != 0]
    assert len(rs) == 1
    assert rs["kind"][0] == K_SNAPSHOT and rs["flags"][0] & F_CLEAR and rs["id"][0] == clean.u(K)


# -- the clean reference itself ---------------------------------------------------------------------------------------
@pytest.mark.data
def test_clean_prefix(clean):
    st = clean.reader.stats
    assert st["diffs"] == len(clean.ids)
    n_before = sum(1 for _, u in clean.ids if u <= clean.L)
    assert n_before == 2
    assert st["diffs_dropped"] == n_before
    assert st["diffs_applied"] == len(clean.ids) - n_before == len(clean.applied)
    assert clean.applied == [u for _, u in clean.ids if u > clean.L]
    for name in ("gaps", "malformed", "crossed", "duplicates", "resyncs", "dropped_unsynced", "truncated"):
        assert st[name] == 0, name
    assert st.problems == []
    assert st["bbo_checked"] > 200 and st["bbo_matched"] == st["bbo_checked"]
    assert len(gap_rows(clean.events)) == 0


@pytest.mark.data
def test_chunks_end_at_message_boundaries(clean, tmp_path):
    reader = BinanceCapture(write(tmp_path / "c.gz", clean.lines), chunk_rows=100)
    chunks = list(reader)
    assert len(chunks) > 20
    assert all(len(c) >= 100 for c in chunks[:-1])
    assert all(c["flags"][-1] & F_BATCH_END for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), clean.events)
    assert reader.stats["events"] == len(clean.events)


# -- diffs before the snapshot (the normal start) ---------------------------------------------------------------------
@pytest.mark.data
def test_diffs_before_snapshot_dropped_first_applied_straddles(clean):
    ev = clean.events
    assert clean.reader.stats["diffs_dropped"] == 2
    snap = ev[ev["kind"] == K_SNAPSHOT]
    assert (snap["id"] == clean.L).all() and snap["flags"][0] & F_CLEAR and not snap["flags"][0] & F_RESYNC
    first = ev[ev["kind"] == K_DEPTH][0]
    assert first["first_id"] <= clean.L + 1 <= first["id"]
    assert (first["first_id"], first["id"]) == clean.ids[2]
    # the snapshot rows come before any diff
    assert np.flatnonzero(ev["kind"] == K_SNAPSHOT).max() < np.flatnonzero(ev["kind"] == K_DEPTH).min()


@pytest.mark.data
def test_late_snapshot_applies_buffered_diffs(clean, tmp_path):
    # the snapshot arrives after diff 12: diffs 2..12 wait in the buffer and are applied when it comes
    lines, _ = build(
        clean.lines, drop={clean.snap_line}, insert_after={clean.depth[12]: [clean.lines[clean.snap_line]]}
    )
    reader, ev = capture(write(tmp_path / "late.gz", lines))
    st = reader.stats
    assert (st["diffs_dropped"], st["diffs_applied"], st["gaps"]) == (2, len(clean.applied), 0)
    assert applied_ids(ev) == clean.applied
    assert_matches_clean(clean, reader, ev, resync_L=clean.L)


@pytest.mark.data
def test_stale_snapshot_skipped_next_one_used(clean, tmp_path):
    # diffs 0..2 lost and the real snapshot arrives after diffs 3 and 4: it is older than the first buffered diff
    lines, _ = build(
        clean.lines,
        drop={clean.depth[0], clean.depth[1], clean.depth[2], clean.snap_line},
        insert_after={clean.depth[4]: [clean.lines[clean.snap_line]], clean.depth[K]: [clean.resync_snapshot]},
    )
    reader, ev = capture(write(tmp_path / "stale.gz", lines))
    st = reader.stats
    assert (st["snapshots"], st["snapshots_stale"], st["snapshots_applied"]) == (2, 1, 1)
    assert st["resyncs"] == 0 and st["gaps"] == 0
    assert st["diffs_dropped"] == K - 2  # diffs 3..K
    assert (ev["kind"] == K_SNAPSHOT).sum() > 0 and (ev[ev["kind"] == K_SNAPSHOT]["id"] == clean.u(K)).all()
    assert_matches_clean(clean, reader, ev, resync_L=clean.u(K))


# -- lost diffs: malformed lines and chain gaps, then a resync snapshot ----------------------------------------------
def _cut_json(line: bytes) -> bytes:
    return line[: len(line) // 2] + b"\n"


def _data_edit(fn):
    return lambda line: edit_data(line, fn)


def _set_qty(side: str, qty: str):
    def fn(d):
        d[side][0][1] = qty

    return fn


MALFORMED_DIFFS = {
    "broken_json": (_cut_json, "JSONDecodeError"),
    "missing_u": (_data_edit(lambda d: d.pop("u")), "KeyError: 'u'"),
    "missing_b": (_data_edit(lambda d: d.pop("b")), "KeyError: 'b'"),
    "negative_qty": (_data_edit(_set_qty("b", "-1.50000000")), "negative quantity '-1.50000000'"),
    "nan_qty": (_data_edit(_set_qty("a", "NaN")), "not a decimal number: 'NaN'"),
}


def assert_lost_diff_f(clean: Clean, reader: BinanceCapture, ev: np.ndarray) -> None:
    """Diff F never reached the sync: gap at F+1, F+1..K buffered then dropped by the snapshot at u(K)."""
    st = reader.stats
    assert st["gaps"] == 1
    assert st["resyncs"] == 1
    assert (st["snapshots"], st["snapshots_applied"]) == (2, 2)
    assert st["diffs_dropped"] == 2 + (K - F)
    assert st["diffs_applied"] == len(clean.applied) - (K - F + 1)
    assert st["dropped_unsynced"] == 0 and st["duplicates"] == 0 and st["crossed"] == 0
    lost = {clean.u(k) for k in range(F, K + 1)}
    assert applied_ids(ev) == [u for u in clean.applied if u not in lost]
    assert_resynced_once(clean, ev)
    assert_matches_clean(clean, reader, ev, resync_L=clean.u(K))


@pytest.mark.data
@pytest.mark.parametrize("fault", sorted(MALFORMED_DIFFS))
@pytest.mark.parametrize("name", ["fault.gz", "fault.txt"])
def test_malformed_diff(clean, tmp_path, fault, name):
    spoil, why = MALFORMED_DIFFS[fault]
    i = clean.depth[F]
    line = clean.lines[i]
    d = orjson.loads(line.partition(b" ")[2])["data"]
    assert d["b"] and d["a"]  # the edits touch both sides
    reader, ev, where = run_fault(clean, tmp_path, name=name, replace={i: spoil(line)})
    st = reader.stats
    assert st["malformed"] == 1
    assert st["diffs"] == len(clean.ids) - 1
    # the bad line, then the gap it leaves at the next diff
    assert len(st.problems) == 2
    assert st.problems[0].startswith(f"{name}:{where[i]}: malformed: ")
    assert why in st.problems[0]
    assert st.problems[1].startswith(f"{name}:{where[clean.depth[F + 1]]}: out of sync: gap")
    assert_lost_diff_f(clean, reader, ev)


@pytest.mark.data
def test_broken_json_on_trade_line(clean, tmp_path):
    i = next(j for j in range(clean.depth[F], N_LINES) if b"@trade" in clean.lines[j])
    reader, ev, where = run_fault(clean, tmp_path, resync=False, replace={i: _cut_json(clean.lines[i])})
    st = reader.stats
    assert st["malformed"] == 1 and st.problems[0].startswith(f"fault.gz:{i + 1}: malformed: JSONDecodeError")
    assert st["trades"] == clean.reader.stats["trades"] - 1 == np.count_nonzero(ev["kind"] == K_TRADE)
    assert st["gaps"] == 0 and applied_ids(ev) == clean.applied
    assert_matches_clean(clean, reader, ev, resync_L=clean.L)


@pytest.mark.data
def test_chain_gap_then_resync(clean, tmp_path):
    reader, ev, _ = run_fault(clean, tmp_path, drop={clean.depth[F]})
    st = reader.stats
    assert st["malformed"] == 0 and st["diffs"] == len(clean.ids) - 1
    assert_lost_diff_f(clean, reader, ev)


@pytest.mark.data
def test_chain_gap_without_snapshot_ends_out_of_sync(clean, tmp_path):
    reader, ev, _ = run_fault(clean, tmp_path, resync=False, drop={clean.depth[F]})
    st = reader.stats
    assert not reader.sync.in_sync and reader.sync.state == SyncState.AWAIT_SNAPSHOT
    assert st["gaps"] == 1 and st["resyncs"] == 0
    assert st["diffs_applied"] == F - 2
    assert st["dropped_unsynced"] == len(clean.ids) - 1 - F  # diffs F+1.. to the end
    assert applied_ids(ev) == [u for u in clean.applied if u < clean.u(F)]
    assert st["trades"] == clean.reader.stats["trades"]  # trades still flow


@pytest.mark.data
def test_chain_gap_emits_clear_gap_row(clean, tmp_path):
    reader, ev, _ = run_fault(clean, tmp_path, resync=False, drop={clean.depth[F]})
    g = gap_rows(ev)
    assert len(g) == 1
    assert g["kind"][0] == K_DEPTH and g["side"][0] == 0 and g["flags"][0] & F_CLEAR
    # downstream, the book replayed from the events is forgotten, like the reader's own
    book = L2Book()
    book.replay(ev)
    assert book.top().bid_px_ticks is None and book.top().ask_px_ticks is None
    assert reader.book.top().bid_px_ticks is None


# -- duplicates -------------------------------------------------------------------------------------------------------
@pytest.mark.data
@pytest.mark.parametrize("after", [0, 1], ids=["right_after", "after_next_diff"])
def test_duplicate_diff(clean, tmp_path, after):
    i = clean.depth[F]
    reader, ev, _ = run_fault(clean, tmp_path, resync=False, insert_after={clean.depth[F + after]: [clean.lines[i]]})
    st = reader.stats
    assert st["duplicates"] == 1
    assert st["diffs"] == len(clean.ids) + 1
    assert st["diffs_applied"] == len(clean.applied)
    for name in ("gaps", "resyncs", "malformed", "crossed", "dropped_unsynced"):
        assert st[name] == 0, name
    assert applied_ids(ev) == clean.applied
    assert_matches_clean(clean, reader, ev, resync_L=clean.L)


# -- crossed book -----------------------------------------------------------------------------------------------------
def _add_high_bid(d):
    d["b"].append(["70000.00000000", "1.00000000"])  # far above the best ask (about 61800)


@pytest.mark.data
def test_crossed_update_then_resync(clean, tmp_path):
    i = clean.depth[F]
    reader, ev, _ = run_fault(clean, tmp_path, replace={i: edit_data(clean.lines[i], _add_high_bid)})
    st = reader.stats
    assert st["crossed"] == 1 and st["resync_crossed"] == 1 and st["resyncs"] == 1
    assert st["gaps"] == 0 and st["malformed"] == 0
    assert st["diffs_applied"] == len(clean.applied) - (K - F)
    assert st["diffs_dropped"] == 2 + (K - F)
    g = gap_rows(ev)
    assert len(g) == 1
    assert g["kind"][0] == K_DEPTH and g["side"][0] == 0 and g["flags"][0] == F_CLEAR | F_GAP
    assert g["id"][0] == clean.u(F)
    # the crossed diff was emitted (then the GAP row); nothing more for the book until the resync snapshot
    gi = np.flatnonzero((ev["flags"] & F_GAP) != 0)[0]
    assert ev["id"][gi - 1] == clean.u(F) and ev["kind"][gi - 1] == K_DEPTH
    between = ev[gi + 1 :]
    nxt = np.flatnonzero(between["kind"] == K_SNAPSHOT)[0]
    assert not (between["kind"][:nxt] == K_DEPTH).any()
    book = L2Book()
    book.replay(ev)
    assert book.n_crossed == 1
    lost = {clean.u(k) for k in range(F + 1, K + 1)}
    assert applied_ids(ev) == [u for u in clean.applied if u not in lost]
    assert_resynced_once(clean, ev)
    assert_matches_clean(clean, reader, ev, resync_L=clean.u(K), skip={clean.u(F)})


@pytest.mark.data
def test_crossed_buffered_diff_stops_the_batch(clean, tmp_path):
    # the snapshot arrives after diff 12, so diffs 2..12 are applied from the buffer; diff 5 crosses the book
    i = clean.depth[5]
    lines, _ = build(
        clean.lines,
        drop={clean.snap_line},
        replace={i: edit_data(clean.lines[i], _add_high_bid)},
        insert_after={clean.depth[12]: [clean.lines[clean.snap_line]]},
    )
    reader, ev = capture(write(tmp_path / "x.gz", lines))
    assert reader.stats["crossed"] == 1 and not reader.sync.in_sync
    gi = np.flatnonzero((ev["flags"] & F_GAP) != 0)
    assert len(gi) == 1
    assert not (ev["kind"][gi[0] + 1 :] == K_DEPTH).any()  # no later snapshot: nothing for the book
    assert reader.stats["diffs_applied"] == 4  # diffs 2..5
    assert reader.book.top().bid_px_ticks is None  # the reader forgot its book


@pytest.mark.data
@pytest.mark.parametrize("fault", ["gap", "crossed"])
def test_sync_faults_are_located_in_problems(clean, tmp_path, fault):
    i = clean.depth[F]
    if fault == "gap":
        reader, _, where = run_fault(clean, tmp_path, drop={i})
        line = where[clean.depth[F + 1]]
    else:
        reader, _, where = run_fault(clean, tmp_path, replace={i: edit_data(clean.lines[i], _add_high_bid)})
        line = where[i]
    assert any(p.startswith(f"fault.gz:{line}: ") for p in reader.stats.problems), reader.stats.problems


# -- truncated files --------------------------------------------------------------------------------------------------
@pytest.mark.data
def test_truncated_gzip(clean, tmp_path):
    data = gzip.compress(b"".join(clean.lines), mtime=0)
    cut = data[: len(data) // 2]
    path = tmp_path / "cut.gz"
    path.write_bytes(cut)
    n_complete = zlib.decompressobj(31).decompress(cut).count(b"\n")
    assert 0 < n_complete < N_LINES
    reader, ev = capture(path)
    st = reader.stats
    assert st["truncated"] == 1 and st["malformed"] == 0
    assert st["lines"] == n_complete
    assert len(st.problems) == 1 and st.problems[0].startswith(f"cut.gz:{n_complete + 1}: truncated: EOFError")
    n_diffs = sum(1 for j in clean.depth if j < n_complete)
    assert st["diffs"] == n_diffs and st["diffs_applied"] == n_diffs - 2
    assert applied_ids(ev) == clean.applied[: n_diffs - 2]
    got = per_diff_levels(ev)
    for u, lv in got.items():
        np.testing.assert_array_equal(lv, clean.levels[u])
    assert reader.sync.in_sync and st["gaps"] == 0


@pytest.mark.data
def test_truncated_plain_text_last_line(clean, tmp_path):
    i = clean.depth[F]
    lines = clean.lines[:i] + [clean.lines[i][:40]]  # cut in the middle of a diff, no newline
    reader, ev = capture(write(tmp_path / "cut.txt", lines))
    st = reader.stats
    assert st["malformed"] == 1 and st["truncated"] == 0
    assert st.problems[0].startswith(f"cut.txt:{i + 1}: malformed: ")
    assert applied_ids(ev) == [u for u in clean.applied if u < clean.u(F)]


# -- format errors ----------------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope_20240808.gz"):
        BinanceCapture(tmp_path / "nope_20240808.gz")


def test_no_paths():
    with pytest.raises(DataError, match="no capture file"):
        BinanceCapture([])


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.gz", b""),
        ("empty_gzip.gz", gzip.compress(b"", mtime=0)),
        ("blank.txt", b"\n\n  \n"),
        ("quotes.csv", b"local_ts,price,qty\n1723161253937085768,61837.63,0.5\n"),
        ("noise.bin", np.random.default_rng(7).bytes(4096)),
        ("noise.gz", b"\x1f\x8b" + np.random.default_rng(8).bytes(4096)),
        ("list.txt", b"1723161253937085768 [1,2]\n"),
    ],
)
def test_not_a_capture(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(UnrecognisedFormatError, match=name.replace(".", r"\.")):
        BinanceCapture(p)


def test_bad_second_file_is_named(tmp_path):
    good = tmp_path / "good.txt"
    good.write_bytes(b'1 {"lastUpdateId": 5, "bids": [["1.00", "1"]], "asks": [["2.00", "1"]]}\n')
    bad = tmp_path / "second.csv"
    bad.write_bytes(b"a,b\n1,2\n")
    with pytest.raises(UnrecognisedFormatError, match="second.csv"):
        BinanceCapture([good, bad])


def test_empty_stream_events(tmp_path):
    p = tmp_path / "snap_only.txt"
    p.write_bytes(b'1 {"lastUpdateId": 5, "bids": [["1.00", "1"]], "asks": [["2.00", "1"]]}\n')
    reader, ev = capture(p)
    assert ev.dtype == event_dt and len(ev) == 2
    assert reader.stats["snapshots_applied"] == 1 and reader.sync.state == SyncState.AWAIT_FIRST


# -- the real captures, whole -----------------------------------------------------------------------------------------
def _whole(paths) -> tuple[BinanceCapture, np.ndarray, L2Book]:
    reader, ev = capture(paths)
    book = L2Book()
    book.replay(ev)
    return reader, ev, book


@pytest.fixture(scope="module")
def spot_stream(shared_data):
    return _whole([shared_data / SPOT_0808, shared_data / SPOT_0809])


@pytest.fixture(scope="module")
def usdm_stream(shared_data):
    return _whole(shared_data / USDM_0808)


def _assert_clean_stream(reader: BinanceCapture, ev: np.ndarray, book: L2Book) -> None:
    st = reader.stats
    for name in ("gaps", "crossed", "malformed", "truncated", "duplicates", "resyncs", "dropped_unsynced"):
        assert st[name] == 0, f"{name}: {st.summary()}"
    assert st.problems == []
    assert st["bbo_checked"] > 6000
    assert st["bbo_matched"] / st["bbo_checked"] >= 0.999
    assert st["diffs_applied"] > 6000
    assert st["diffs_applied"] == st["diffs"] - st["diffs_dropped"]
    assert st["snapshots_applied"] == 1
    assert book.n_crossed == 0
    assert len(gap_rows(ev)) == 0
    assert reader.sync.in_sync
    assert st["trades"] == np.count_nonzero(ev["kind"] == K_TRADE) > 10_000
    assert st["events"] == len(ev)
    # the reader's own book and a book rebuilt from its events agree
    np.testing.assert_array_equal(book.levels(50), reader.book.levels(50))


@pytest.mark.data
def test_real_spot_two_files_one_stream(spot_stream):
    reader, ev, book = spot_stream
    _assert_clean_stream(reader, ev, book)
    assert reader.market == "spot"
    # the README's numbers: 6,491 of 6,493 tickers match
    assert (reader.stats["bbo_checked"], reader.stats["bbo_matched"]) == (6493, 6491)
    snap = ev[ev["kind"] == K_SNAPSHOT]
    L = int(snap["id"][0])
    first = ev[diff_ends(ev)][0]
    assert first["first_id"] <= L + 1 <= first["id"]
    # the 0809 diffs continue the chain: ids of the applied diffs are contiguous
    d = ev[diff_ends(ev)]
    assert (d["first_id"][1:] == d["id"][:-1] + 1).all()


@pytest.mark.data
def test_real_usdm(usdm_stream):
    reader, ev, book = usdm_stream
    _assert_clean_stream(reader, ev, book)
    assert reader.market == "usdm"
    L = int(ev[ev["kind"] == K_SNAPSHOT]["id"][0])
    d = ev[diff_ends(ev)]
    assert d["prev_id"][0] <= L < d["id"][0]  # futures rule: pu <= L < u
    assert (d["prev_id"][1:] == d["id"][:-1]).all()  # pu chain


@pytest.mark.data
def test_real_spot_second_file_alone(shared_data):
    reader, ev = capture(shared_data / SPOT_0809)
    st = reader.stats
    assert st["diffs"] > 3000
    assert st["diffs_applied"] == 0 and st["snapshots"] == 0
    assert st["dropped_unsynced"] == st["diffs"]
    assert not reader.sync.in_sync
    assert not np.isin(ev["kind"], [K_DEPTH, K_SNAPSHOT]).any()
    assert st["trades"] == np.count_nonzero(ev["kind"] == K_TRADE) > 10_000
    assert st["malformed"] == 0 and st.problems == []
