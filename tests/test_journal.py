"""The journal: durable, idempotent fills; order states; positions derived from fills; schema; WAL readers; crash."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.exceptions import ConfigError, DataError
from workbench.journal import SCHEMA_VERSION, Journal
from workbench.risk.guard import GuardState, RiskEvent, RiskGuard
from workbench.strategy.orders import OrderBook, OrderState
from workbench.strategy.params import ParamChange
from workbench.venue.api import OrderType, TimeInForce


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "j.db", run_id="run1") as j:
        yield j


def fill(j: Journal, trade_id: int, side: int = 1, px: int = 100, qty: int = 2, fee: int = 1, sym: str = "BTCUSDT",
         coid: str = "wb1") -> bool:
    return j.record_fill(ts_ns=1_000 + trade_id, symbol=sym, trade_id=trade_id, side=side, px_ticks=px, qty_lots=qty,
                         fee_units=fee, is_maker=True, client_order_id=coid, order_id=7)


# ---------------------------------------------------------------------------------------------------- fills

def test_a_replayed_fill_is_not_counted_twice(journal):
    assert fill(journal, 1) is True
    assert fill(journal, 1) is False            # the same report again
    assert fill(journal, 1, px=999) is False    # same (symbol, trade_id): still the first one that counts
    assert fill(journal, 1, sym="ETHUSDT") is True  # trade ids are per symbol
    assert journal.positions() == {"BTCUSDT": (2, -200, 1), "ETHUSDT": (2, -200, 1)}
    assert len(journal.fills_frame()) == 2


def test_money_is_integers_only(journal):
    with pytest.raises(TypeError):
        fill(journal, 1, px=100.5)
    with pytest.raises(sqlite3.IntegrityError):  # the schema's own checks
        fill(journal, 2, side=0)
    assert journal.positions() == {}
    f = journal.fills_frame()
    assert f.empty and list(f.columns[:4]) == ["seq", "run_id", "ts_ns", "symbol"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from([1, -1]), st.integers(1, 10**9),
                          st.integers(1, 10**6), st.integers(-10**6, 10**6), st.integers(0, 40)), max_size=60))
def test_positions_are_the_exact_sum_of_fills(tmp_path_factory, fills):
    path = tmp_path_factory.mktemp("pos") / "j.db"
    want: dict[str, list[int]] = {}
    guard = RiskGuard()
    seen = set()
    with Journal(path) as j:
        for sym, side, px, qty, fee, tid in fills:
            new = j.record_fill(ts_ns=1, symbol=sym, trade_id=tid, side=side, px_ticks=px, qty_lots=qty,
                                fee_units=fee)
            assert new == ((sym, tid) not in seen)
            if new:
                seen.add((sym, tid))
                p = want.setdefault(sym, [0, 0, 0])
                p[0] += side * qty
                p[1] -= side * px * qty
                p[2] += fee
                guard.on_fill(1, sym, side, px, qty)
        assert j.positions() == {s: tuple(v) for s, v in want.items()}
        entry = j.avg_entry_ticks()
    # the average entry the guard would restore is the one it computed from the same fills
    assert entry == {s: Fraction(guard._syms[s].num, guard._syms[s].den) for s, v in want.items() if v[0]}


# --------------------------------------------------------------------------------------------------- orders

def test_order_state_progression_is_stored(journal):
    book = OrderBook("run1-")
    o = book.submit("BTCUSDT", 1, OrderType.LIMIT, 5, 100, TimeInForce.GTC, 10, tag="bid")
    journal.record_order(o, "sent")
    journal.record_order(book.apply(o.client_order_id, OrderState.NEW, 20, order_id=42), "ack")
    journal.record_order(book.apply(o.client_order_id, OrderState.PARTIALLY_FILLED, 30, filled_lots=2,
                                    quote_filled=200, fee_units=-1), "report")

    (back,) = journal.open_orders()
    assert back == o  # every field, the history included
    assert back.history == [(10, OrderState.PENDING_NEW), (20, OrderState.NEW), (30, OrderState.PARTIALLY_FILLED)]
    assert back.type is OrderType.LIMIT and back.tif is TimeInForce.GTC and back.state is OrderState.PARTIALLY_FILLED

    journal.record_order(book.apply(o.client_order_id, OrderState.CANCELED, 40), "reconcile")
    assert journal.open_orders() == []
    ev = journal.frame("order_events")
    assert ev[["ts_ns", "state", "filled_lots", "source"]].values.tolist() == [
        [10, 0, 0, "sent"], [20, 1, 0, "ack"], [30, 2, 2, "report"], [40, 4, 2, "reconcile"]]
    row = journal.orders_frame().iloc[0]
    assert (row.state, row.filled_lots, row.order_id, row.fee_units, row.run_id) == (4, 2, 42, -1, "run1")
    with pytest.raises(ConfigError):
        journal.record_order(o, "guess")


def test_open_orders_survive_reopening_and_keep_their_run(tmp_path):
    book = OrderBook("a")
    with Journal(tmp_path / "j.db", run_id="first") as j:
        for i in range(3):
            j.record_order(book.submit("X", -1, OrderType.LIMIT_MAKER, 1, 100 + i, TimeInForce.GTC, i), "sent")
        j.record_order(book.apply("a2", OrderState.REJECTED, 5, reason="would take"), "report")
    with Journal(tmp_path / "j.db", run_id="second") as j:
        assert [o.client_order_id for o in j.open_orders()] == ["a1", "a3"]
        j.record_order(book.apply("a1", OrderState.NEW, 6, order_id=9), "reconcile")
        o = j.orders_frame().set_index("client_order_id")
        assert o.loc["a1", "run_id"] == "first" and o.loc["a2", "reason"] == "would take"


def test_risk_events_and_param_changes(journal):
    journal.record_risk_event(RiskEvent(5, "kill", GuardState.ACTIVE, GuardState.HALTED, "button", 1.0, 0.0))
    journal.record_param_change(ParamChange(6, "half_spread_ticks", 2, 3))
    journal.record_param_change(ParamChange(7, "mode", "a", "b", "restore"))
    r = journal.frame("risk_events").iloc[0]
    assert (r.ts_ns, r.rule, r.state_from, r.state_to, r.reason, r.run_id) == (5, "kill", 0, 2, "button", "run1")
    p = journal.frame("param_changes")
    assert p[["ts_ns", "name", "old", "new", "source"]].values.tolist() == [
        [6, "half_spread_ticks", "2", "3", "user"], [7, "mode", '"a"', '"b"', "restore"]]
    with pytest.raises(ConfigError):
        journal.frame("sqlite_master")


def test_no_secret_is_stored(tmp_path):
    path = tmp_path / "j.db"
    with Journal(path, run_id="r") as j:
        j.record_run(started_ns=1, strategy="market_maker", params={"half_spread_ticks": 2},
                     venue_url="wss://alice:hunter2pw@testnet.example:9443/ws/LISTENKEYXYZ?apiKey=SECRETKEYABC"
                               "&signature=SIGDEF#frag")
        with pytest.raises(ConfigError, match="api_key"):
            j.record_run(started_ns=2, params={"api_key": "SECRETKEYABC"})
        assert j.frame("runs").venue_url.tolist() == ["wss://testnet.example:9443"]
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the database, its WAL and shm files
    for secret in (b"hunter2pw", b"alice", b"LISTENKEYXYZ", b"SECRETKEYABC", b"SIGDEF"):
        assert secret not in raw


# --------------------------------------------------------------------------------------------------- schema

def test_schema_is_versioned_and_a_newer_one_refused(tmp_path):
    path = tmp_path / "j.db"
    Journal(path).close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="newer"):
        Journal(path)


def test_other_files_are_refused(tmp_path):
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="not a workbench journal"):
        Journal(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database, not at all" * 100)
    with pytest.raises(DataError):
        Journal(junk)


# ------------------------------------------------------------------------------------------ concurrent reads

def test_a_reader_is_not_blocked_by_an_open_write(journal):
    fill(journal, 1)
    journal._con.execute("BEGIN IMMEDIATE")  # a write transaction in progress, as during a commit
    journal._con.execute("INSERT INTO fills (run_id, ts_ns, symbol, trade_id, client_order_id, order_id, side, "
                         "px_ticks, qty_lots, fee_units, is_maker) VALUES ('x', 0, 'BTCUSDT', 2, '', 0, 1, 1, 1, 0, 0)")
    reader = sqlite3.connect(journal.path, timeout=0)  # timeout 0: a lock would fail at once
    assert reader.execute("SELECT count(*) FROM fills").fetchone() == (1,)  # the committed snapshot
    assert len(journal.fills_frame()) == 1
    journal._con.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM fills").fetchone() == (2,)
    reader.close()


def test_frames_from_another_thread_while_writing(journal):
    n = 300
    halfway, done = threading.Event(), threading.Event()

    def write():
        for i in range(n):
            fill(journal, i)
            if i == n // 2:
                halfway.wait(10)  # let the reader see a journal in the middle of a burst
        done.set()

    t = threading.Thread(target=write)
    t.start()
    seen = []
    while not done.is_set():
        seen.append(len(journal.fills_frame()))
        if seen[-1] > n // 2:
            halfway.set()
    t.join()
    seen.append(len(journal.fills_frame()))
    assert seen == sorted(seen) and seen[-1] == n and any(0 < s < n for s in seen)


# ---------------------------------------------------------------------------------------------------- crash

CHILD = textwrap.dedent("""
    import sys
    from workbench.journal import Journal
    j = Journal(sys.argv[1], run_id=sys.argv[2])
    start = int(sys.argv[3])
    print("ready", flush=True)
    for t in range(start, start + 1_000_000):
        j.record_fill(ts_ns=t, symbol="BTCUSDT", trade_id=t, side=1 if t % 3 else -1, px_ticks=1000 + t % 7,
                      qty_lots=1 + t % 5, fee_units=t % 11 - 5, is_maker=bool(t % 2), client_order_id=f"c{t}",
                      order_id=t)
        print(t, flush=True)
""")


def _kill_mid_burst(path: Path, run: int, start: int, after: int) -> list[int]:
    """Run the child writer, SIGKILL it once it reported ``after`` fills; the trade ids it reported."""
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(path), f"crash{run}", str(start)], stdout=subprocess.PIPE,
                         cwd=Path(__file__).resolve().parents[1])
    watchdog = threading.Timer(60, p.kill)  # a child that hangs fails the test instead of hanging it
    watchdog.start()
    assert p.stdout.readline() == b"ready\n"
    printed = []
    while len(printed) < after:
        line = p.stdout.readline()
        assert line.endswith(b"\n"), "the child died on its own"
        printed.append(int(line))
    p.send_signal(signal.SIGKILL)  # mid-burst: the child is still writing
    rest = p.stdout.read()
    p.wait()
    watchdog.cancel()
    assert p.returncode == -signal.SIGKILL
    # lines printed before the kill; a last line cut off by the kill (no newline) proves nothing and is dropped
    printed += [int(x) for x in rest.split(b"\n")[:-1]]
    return printed


def test_kill_9_mid_burst_loses_no_fill_that_was_reported(tmp_path):
    path = tmp_path / "j.db"
    confirmed: list[int] = []
    start = 0
    for run, after in enumerate((50, 400, 1)):
        printed = _kill_mid_burst(path, run, start, after)
        assert Path(f"{path}-wal").exists()  # killed with its WAL open: reopening recovers from it
        confirmed += printed
        with Journal(path) as j:
            con = j._con
            assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            rows = con.execute("SELECT trade_id, ts_ns, side, px_ticks, qty_lots, fee_units, is_maker, "
                               "client_order_id, order_id FROM fills ORDER BY seq").fetchall()
            ids = [r[0] for r in rows]
            assert set(confirmed) <= set(ids)                  # zero lost
            assert len(ids) - len(confirmed) <= run + 1        # at most one committed-but-unprinted fill per kill
            for t, ts, side, px, qty, fee, mk, coid, oid in rows:  # none half-written: each row whole and right
                assert (ts, side, px, qty, fee, mk, coid, oid) == (
                    t, 1 if t % 3 else -1, 1000 + t % 7, 1 + t % 5, t % 11 - 5, t % 2, f"c{t}", t)
            want_pos = sum((1 if t % 3 else -1) * (1 + t % 5) for t in ids)
            assert j.positions()["BTCUSDT"][0] == want_pos
            start = max(ids) + 1  # the next run appends after recovery
    assert len(confirmed) >= 451


# --------------------------------------------------------------------------------------------- faults, schema 2

def test_faults_are_recorded(journal):
    journal.record_fault(ts_ns=5, source="feed", kind="gap", symbol="BTCUSDT", detail="diff U=9 does not follow u=7")
    journal.record_fault(ts_ns=6, source="engine", kind="halt", detail="book BTCUSDT: out of sync")
    f = journal.frame("faults")
    assert f[["ts_ns", "source", "kind", "symbol", "detail", "run_id"]].values.tolist() == [
        [5, "feed", "gap", "BTCUSDT", "diff U=9 does not follow u=7", "run1"],
        [6, "engine", "halt", "", "book BTCUSDT: out of sync", "run1"]]


def test_a_version_1_journal_is_migrated_with_its_rows(tmp_path):
    path = tmp_path / "j.db"
    with Journal(path) as j:
        fill(j, 1)
    con = sqlite3.connect(path)  # back to what version 1 wrote: no faults table
    con.execute("DROP TABLE faults")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with Journal(path) as j:
        assert j.positions() == {"BTCUSDT": (2, -200, 1)}
        j.record_fault(ts_ns=1, source="executor", kind="disconnected")
        assert len(j.frame("faults")) == 1
        assert j._con.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]


# ----------------------------------------------------------------------------------- orders written ahead (intents)

def test_an_intent_sqlite_lacks_is_journaled_as_sent_on_the_next_open(tmp_path):
    book = OrderBook("wb")
    path = tmp_path / "j.db"
    j = Journal(path, run_id="crashed")
    a = book.submit("BTCUSDT", 1, OrderType.LIMIT_MAKER, 3, 100, TimeInForce.GTC, 11, tag="bid")
    b = book.submit("BTCUSDT", -1, OrderType.MARKET, 2, 0, TimeInForce.IOC, 12, tag="guard")
    j.intend_order(a)
    j.record_order(a, "sent")
    j.intend_order(b)  # the crash comes before its row: only the intent holds it
    j.close()  # as a crash leaves it: the intents file holds b
    with open(f"{path}-intents", "ab") as f:
        f.write(b'["wb9","crashed","BTCUSDT",1,')  # a line the crash cut short: never sent, skipped
    with Journal(path, run_id="next") as j2:
        assert j2.recovered_intents == 1
        got = {o.client_order_id: o for o in j2.open_orders()}
        assert set(got) == {"wb1", "wb2"}
        o = got["wb2"]
        assert (o.symbol, o.side, o.type, o.tif, o.qty_lots, o.px_ticks, o.state, o.created_ns, o.tag) == (
            "BTCUSDT", -1, OrderType.MARKET, TimeInForce.IOC, 2, 0, OrderState.PENDING_NEW, 12, "guard")
        assert j2.orders_frame().set_index("client_order_id").loc["wb2", "run_id"] == "crashed"
        assert Path(f"{path}-intents").stat().st_size == 0  # started afresh: not recovered twice
    with Journal(path) as j3:
        assert j3.recovered_intents == 0


def test_one_writer_of_intents_and_the_file_starts_afresh_once_all_are_in_sqlite(tmp_path, monkeypatch):
    import workbench.journal as jmod

    monkeypatch.setattr(jmod, "_INTENTS_MAX_BYTES", 300)
    book = OrderBook("wb")
    path = tmp_path / "j.db"
    with Journal(path) as j:
        with Journal(path) as reader:  # a notebook reading the engine's journal: it neither recovers nor writes
            assert reader.recovered_intents == 0
            with pytest.raises(ConfigError, match="writes the orders"):
                reader.intend_order(book.submit("X", 1, OrderType.LIMIT, 1, 5, TimeInForce.GTC, 1))
        pending = book.submit("X", 1, OrderType.LIMIT, 1, 50, TimeInForce.GTC, 1)
        j.intend_order(pending)  # its frame is out, its row not yet written: the file must keep it
        sizes = []
        for i in range(12):
            if i == 8:
                j.record_order(pending, "sent")
            o = book.submit("X", 1, OrderType.LIMIT, 1, 5 + i, TimeInForce.GTC, 2 + i)
            j.intend_order(o)
            j.record_order(o, "sent")
            sizes.append(Path(f"{path}-intents").stat().st_size)
        assert sizes[:8] == sorted(sizes[:8]) and sizes[7] > 300  # kept whole while one intent lacked its row
        assert sizes[8] < 100 and max(sizes[8:]) < 300  # then started afresh (the line written since)
    with Journal(path) as j:
        assert j.recovered_intents == 0 and len(j.open_orders()) == 13  # the reader's order was never sent


CHILD_INTENTS = textwrap.dedent("""
    import sys
    from workbench.journal import Journal
    from workbench.strategy.orders import OrderBook
    from workbench.venue.api import OrderType, TimeInForce
    j = Journal(sys.argv[1], run_id="burst")
    book = OrderBook("wb")
    print("ready", flush=True)
    for i in range(1_000_000):
        o = book.submit("BTCUSDT", 1 if i % 2 else -1, OrderType.LIMIT, 1 + i % 3, 1000 + i, TimeInForce.GTC, i)
        j.intend_order(o)
        print(o.client_order_id, flush=True)  # "the frame is sent"
        j.record_order(o, "sent")
""")


def test_kill_9_between_intent_and_row_loses_no_order_that_was_sent(tmp_path):
    path = tmp_path / "j.db"
    p = subprocess.Popen([sys.executable, "-c", CHILD_INTENTS, str(path)], stdout=subprocess.PIPE,
                         cwd=Path(__file__).resolve().parents[1])
    watchdog = threading.Timer(60, p.kill)
    watchdog.start()
    try:
        assert p.stdout.readline() == b"ready\n"
        sent = [p.stdout.readline().strip() for _ in range(300)]
        p.send_signal(signal.SIGKILL)
        sent += [x for x in p.stdout.read().split(b"\n")[:-1]]
        p.wait()
    finally:
        watchdog.cancel()
    with Journal(path) as j:
        journaled = set(j.orders_frame().client_order_id)
    assert {s.decode() for s in sent} <= journaled  # every order whose frame went out is in the journal
