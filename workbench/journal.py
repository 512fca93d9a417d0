"""The live engine's journal: orders, their state changes, fills, risk events, parameter changes and faults in SQLite
(WAL).

Conventions: every price, size and amount is an integer (``px_ticks``, ``qty_lots``, ``*_units`` in quote notional
units of tick x lot), every time an int64 ``*_ns``; tables are ``STRICT``, so a float handed in where an integer
belongs is refused by SQLite itself. The only floats are a risk event's ``value``/``threshold`` (ratios, not money)
and parameter values (stored as JSON). Sides are +1 (buy) and -1 (sell).

Orders are written ahead of their frame in microseconds, not in an SQLite transaction (tens of microseconds on the
tick-to-order path): :meth:`Journal.intend_order` appends one line to the intents file beside the database
(``<path>-intents``), which is in the OS when it returns; :meth:`Journal.record_order` ``"sent"`` follows once the
frame is out. An intent SQLite lacks (a crash between the two) is journaled as sent when the journal is next opened,
and reconciled with the venue like any order in flight at a crash.

Durability: :meth:`Journal.record_fill` commits with ``synchronous=FULL`` (the WAL is fsynced) before it returns, so
a fill is on disk before the engine applies it; a fill the venue reports again (a replay after a reconnect) has the
same ``(symbol, trade_id)`` and is not counted twice. Everything else commits with ``synchronous=NORMAL``: safe
against a crash of the process (``kill -9``), and after a power loss at most the last order events are missing,
which reconciliation with the venue restores; the next fill's fsync makes them durable too. Positions are not
stored: they are the sum of the fills (:meth:`Journal.positions`).

After a crash::

    j = Journal(path)                  # recovers the WAL
    pos = j.positions()                # {symbol: (position_lots, cash_units, fee_units)}
    resting = j.open_orders()          # OwnOrder objects, not terminal; reconcile them with the venue
    entry = j.avg_entry_ticks()        # for RiskGuard.set_position

One thread writes (the engine's); the frames (:meth:`Journal.frame`) read through their own read-only connection,
so a notebook may call them from another thread while the engine writes. No API key or secret is ever stored: there
is no column for one, and :meth:`Journal.record_run` keeps only the venue's origin and refuses secret-looking params.
"""

from __future__ import annotations

import fcntl
import json
import operator
import os
import re
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson

from workbench.exceptions import ConfigError, DataError
from workbench.strategy.orders import TERMINAL, OrderState, OwnOrder
from workbench.venue.api import OrderType, TimeInForce

if TYPE_CHECKING:
    import pandas as pd

    from workbench.risk.guard import RiskEvent
    from workbench.strategy.params import ParamChange

__all__ = ["Journal", "SCHEMA_VERSION", "SOURCES", "TABLES"]

SCHEMA_VERSION = 2
SOURCES = ("sent", "ack", "report", "reconcile")  # what made an order change: order_events.source
TABLES = ("runs", "orders", "order_events", "fills", "risk_events", "param_changes", "faults")
_OPEN = tuple(sorted(int(s) for s in OrderState if s not in TERMINAL))
_OPEN_SQL = f"state IN ({', '.join(map(str, _OPEN))})"
_INTENTS_MAX_BYTES = 1 << 20  # the intents file starts afresh past this, once every intent is in SQLite
_SECRET_NAME = re.compile(r"secret|passw|token|signature|api_?key|private", re.IGNORECASE)

# version 2: faults seen by the engine and its halts (feed gaps, disconnects, venue errors, ...), one row each
_FAULTS_SQL = """
CREATE TABLE IF NOT EXISTS faults (
    seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts_ns INTEGER NOT NULL, source TEXT NOT NULL,
    kind TEXT NOT NULL, symbol TEXT NOT NULL, detail TEXT NOT NULL) STRICT;
"""
_MIGRATIONS = {1: _FAULTS_SQL}  # from version -> the script that brings it to version + 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_ns INTEGER NOT NULL, strategy TEXT NOT NULL, params TEXT NOT NULL,
    venue_url TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, symbol TEXT NOT NULL,
    side INTEGER NOT NULL CHECK (side IN (-1, 1)), type INTEGER NOT NULL, tif INTEGER NOT NULL,
    px_ticks INTEGER NOT NULL, qty_lots INTEGER NOT NULL, state INTEGER NOT NULL, filled_lots INTEGER NOT NULL,
    quote_filled INTEGER NOT NULL, fee_units INTEGER NOT NULL, order_id INTEGER NOT NULL,
    created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL, reason TEXT NOT NULL, tag TEXT NOT NULL) STRICT;
CREATE INDEX IF NOT EXISTS orders_open ON orders (created_ns) WHERE {_OPEN_SQL};
CREATE TABLE IF NOT EXISTS order_events (
    seq INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, client_order_id TEXT NOT NULL, state INTEGER NOT NULL,
    filled_lots INTEGER NOT NULL, source TEXT NOT NULL CHECK (source IN {SOURCES})) STRICT;
CREATE INDEX IF NOT EXISTS order_events_coid ON order_events (client_order_id);
CREATE TABLE IF NOT EXISTS fills (
    seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts_ns INTEGER NOT NULL, symbol TEXT NOT NULL,
    trade_id INTEGER NOT NULL, client_order_id TEXT NOT NULL, order_id INTEGER NOT NULL,
    side INTEGER NOT NULL CHECK (side IN (-1, 1)), px_ticks INTEGER NOT NULL, qty_lots INTEGER NOT NULL CHECK
    (qty_lots > 0), fee_units INTEGER NOT NULL, is_maker INTEGER NOT NULL CHECK (is_maker IN (0, 1)),
    UNIQUE (symbol, trade_id)) STRICT;
CREATE TABLE IF NOT EXISTS risk_events (
    seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts_ns INTEGER NOT NULL, rule TEXT NOT NULL,
    state_from INTEGER NOT NULL, state_to INTEGER NOT NULL, reason TEXT NOT NULL, value REAL NOT NULL,
    threshold REAL NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS param_changes (
    seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts_ns INTEGER NOT NULL, name TEXT NOT NULL,
    old TEXT NOT NULL, new TEXT NOT NULL, source TEXT NOT NULL) STRICT;
""" + _FAULTS_SQL + f"""
INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
"""


def _venue_origin(url: str) -> str:
    """``scheme://host[:port]`` of a venue URL: user info, path, query and fragment are where keys, signatures and
    listen keys travel, so none of them is kept."""
    u = urlsplit(url)
    if not u.scheme or not u.hostname:
        raise ConfigError("venue url must look like scheme://host[:port]; got one without a scheme or host")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{u.scheme}://{host}" + (f":{u.port}" if u.port else "")


class Journal:
    """The engine's journal in the SQLite file ``path`` (created with its schema if absent).

    Parameters
    ----------
    path : the database file; ``-wal`` and ``-shm`` files live beside it while it is open.
    run_id : this run's id, stored with every order, fill and event it writes (default: 12 random hex digits,
        also usable as an :class:`~workbench.strategy.orders.OrderBook` prefix).

    Raises :class:`ConfigError` for a journal of a newer schema (or a database that is not a journal),
    :class:`DataError` for a file that is not SQLite at all.
    """

    def __init__(self, path: str | Path, *, run_id: str | None = None) -> None:
        self.path = Path(path)
        self.run_id = run_id if run_id is not None else uuid.uuid4().hex[:12]
        if not isinstance(self.run_id, str) or not 0 < len(self.run_id) <= 64:
            raise ConfigError(f"run_id must be a string of 1-64 characters, got {run_id!r}")
        self._lock = threading.Lock()
        # isolation_level=None: autocommit; a single INSERT is its own transaction, several go in _tx()
        self._con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._intents_fd = -1
        self.intents_path = Path(f"{self.path}-intents")
        self.recovered_intents = 0  # intents of a crashed run journaled on this open
        try:
            self._open()
            self._open_intents()
        except BaseException:
            self.close()
            raise
        self._intents_bytes = 0
        self._unrecorded: set[str] = set()  # intended, not yet recorded as sent

    def _open(self) -> None:
        con = self._con
        try:
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise DataError(f"{self.path}: not an SQLite database ({e})") from None
        if mode != "wal":
            raise ConfigError(f"{self.path}: the journal needs a file that supports WAL, got journal_mode={mode}")
        con.execute("PRAGMA synchronous=NORMAL")
        version = self._schema_version()
        if version is None:
            if con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise ConfigError(f"{self.path}: an SQLite database that is not a workbench journal")
            con.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")  # all of the schema or none of it
            version = self._schema_version()
        if version > SCHEMA_VERSION:
            raise ConfigError(f"{self.path}: journal schema version {version} is newer than this workbench's "
                              f"({SCHEMA_VERSION}); open it with a newer workbench")
        while version < SCHEMA_VERSION:  # each step in one transaction: a crash leaves the old version whole
            step = _MIGRATIONS.get(version)
            if step is None:
                raise ConfigError(f"{self.path}: journal schema version {version} has no migration to "
                                  f"{SCHEMA_VERSION}")
            con.executescript(f"BEGIN IMMEDIATE; {step} UPDATE meta SET value = '{version + 1}' "
                              "WHERE key = 'schema_version'; COMMIT;")
            version = self._schema_version()

    def _schema_version(self) -> int | None:
        if not self._con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
            return None
        row = self._con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else None

    @contextmanager
    def _tx(self):
        """One write transaction (NORMAL durability), rolled back if anything in it fails."""
        with self._lock:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------------------------------------ writes

    def record_run(self, *, started_ns: int, strategy: str = "", params: dict | None = None,
                   venue_url: str = "") -> None:
        """This run's row, once per run: its start, strategy name, parameters (JSON) and the venue's origin.

        Of ``venue_url`` only ``scheme://host[:port]`` is kept; a parameter whose name looks like a secret
        (key, token, password, signature...) raises :class:`ConfigError`.
        """
        params = dict(params or {})
        bad = [k for k in params if _SECRET_NAME.search(k)]
        if bad:
            raise ConfigError(f"params look like secrets and are not journaled: {', '.join(bad)}")
        url = _venue_origin(venue_url) if venue_url else ""
        with self._tx() as con:
            con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)", (self.run_id, operator.index(started_ns),
                        strategy, json.dumps(params, sort_keys=True), url))

    def intend_order(self, o: OwnOrder) -> None:
        """Write ``o`` (about to be sent, PENDING_NEW) ahead of its frame: one line appended to the intents file,
        in the OS when this returns (a ``kill -9`` after it loses nothing). Call :meth:`record_order` ``"sent"``
        once the frame is out."""
        if self._intents_fd < 0:
            raise ConfigError(f"{self.path}: another journal on this file writes the orders (the engine's)")
        line = orjson.dumps((o.client_order_id, self.run_id, o.symbol, o.side, int(o.type), int(o.tif), o.px_ticks,
                             o.qty_lots, o.created_ns, o.tag))
        self._intents_bytes += os.write(self._intents_fd, line + b"\n")
        self._unrecorded.add(o.client_order_id)

    def _open_intents(self) -> None:
        """Take the intents file: the first journal open on ``path`` holds its lock (one writer of orders at a
        time), journals what a crashed run left in it and starts it afresh; a second open (a notebook reading
        while the engine runs) leaves it alone and cannot :meth:`intend_order`."""
        fd = os.open(self.intents_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        try:
            self.recovered_intents = self._recover_intents(self.intents_path.read_bytes())
            os.ftruncate(fd, 0)
        except BaseException:
            os.close(fd)
            raise
        self._intents_fd = fd

    def _recover_intents(self, data: bytes) -> int:
        """Intents of an earlier run that SQLite lacks (it crashed between the intent and the record), journaled
        as sent; returns how many. A line cut short by the crash is skipped: its frame was never written."""
        n = 0
        for line in data.splitlines():
            try:
                coid, run_id, symbol, side, typ, tif, px, qty, created_ns, tag = orjson.loads(line)
                o = OwnOrder(coid, symbol, side, OrderType(typ), TimeInForce(tif), qty, px, created_ns=created_ns,
                             updated_ns=created_ns, tag=tag)
            except (ValueError, TypeError):
                continue
            with self._lock:
                known = self._con.execute("SELECT 1 FROM orders WHERE client_order_id = ?", (coid,)).fetchone()
            if not known:
                self._write_order(o, "sent", run_id)
                n += 1
        return n

    def record_order(self, o: OwnOrder, source: str) -> None:
        """Insert or update order ``o`` as it is now, and append its state to ``order_events`` (at ``updated_ns``).

        ``source``: "sent", "ack", "report" or "reconcile". An order first journaled by an earlier run keeps
        that run's ``run_id``.
        """
        if source not in SOURCES:
            raise ConfigError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        self._write_order(o, source, self.run_id)
        if source == "sent" and self._unrecorded:
            self._unrecorded.discard(o.client_order_id)
            if self._intents_bytes > _INTENTS_MAX_BYTES and not self._unrecorded:  # all of them are in SQLite
                os.ftruncate(self._intents_fd, 0)
                self._intents_bytes = 0

    def _write_order(self, o: OwnOrder, source: str, run_id: str) -> None:
        row = (o.client_order_id, run_id, o.symbol, o.side, int(o.type), int(o.tif), o.px_ticks, o.qty_lots,
               int(o.state), o.filled_lots, o.quote_filled, o.fee_units, o.order_id, o.created_ns, o.updated_ns,
               o.reason, o.tag)
        with self._tx() as con:
            con.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (client_order_id) DO UPDATE SET state=excluded.state, "
                "filled_lots=excluded.filled_lots, quote_filled=excluded.quote_filled, fee_units=excluded.fee_units,"
                " order_id=excluded.order_id, updated_ns=excluded.updated_ns, reason=excluded.reason", row)
            con.execute("INSERT INTO order_events (ts_ns, client_order_id, state, filled_lots, source) "
                        "VALUES (?, ?, ?, ?, ?)", (o.updated_ns, o.client_order_id, int(o.state), o.filled_lots,
                                                   source))

    def record_fill(self, *, ts_ns: int, symbol: str, trade_id: int, side: int, px_ticks: int, qty_lots: int,
                    fee_units: int = 0, is_maker: bool = False, client_order_id: str = "",
                    order_id: int = 0) -> bool:
        """Journal one fill durably (fsynced) before returning: apply it only after this returns.

        Returns False, changing nothing, if ``(symbol, trade_id)`` is already journaled (a replayed report).
        ``fee_units``: commission in quote notional units, negative for a rebate. Integers only: a float raises
        TypeError.
        """
        ix = operator.index
        row = (self.run_id, ix(ts_ns), symbol, ix(trade_id), client_order_id, ix(order_id), ix(side), ix(px_ticks),
               ix(qty_lots), ix(fee_units), int(bool(is_maker)))
        with self._lock:
            con = self._con
            con.execute("PRAGMA synchronous=FULL")  # the WAL is fsynced at this commit (and with it all before)
            try:  # autocommit: the single INSERT is committed when execute returns
                cur = con.execute("INSERT INTO fills (run_id, ts_ns, symbol, trade_id, client_order_id, order_id, "
                                  "side, px_ticks, qty_lots, fee_units, is_maker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                                  "?, ?, ?) ON CONFLICT (symbol, trade_id) DO NOTHING", row)
            finally:
                con.execute("PRAGMA synchronous=NORMAL")
        return cur.rowcount == 1

    def record_risk_event(self, e: RiskEvent) -> None:
        """A :class:`~workbench.risk.guard.RiskEvent` (trip, recovery or state change)."""
        with self._tx() as con:
            con.execute("INSERT INTO risk_events (run_id, ts_ns, rule, state_from, state_to, reason, value, "
                        "threshold) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (self.run_id, e.ts_ns, e.rule, int(e.state_from), int(e.state_to), e.reason,
                         float(e.value), float(e.threshold)))

    def record_fault(self, *, ts_ns: int, source: str, kind: str, detail: str = "", symbol: str = "") -> None:
        """A fault the engine saw, or what it did about it: ``source`` "feed", "executor", "engine" or "strategy";
        ``kind`` e.g. "gap", "disconnected", "server_shutdown", "rejected", "unknown_status", "halt", "resume";
        ``detail`` human-readable (never a secret: the engine passes venue messages and its own words only)."""
        with self._tx() as con:
            con.execute("INSERT INTO faults (run_id, ts_ns, source, kind, symbol, detail) VALUES (?, ?, ?, ?, ?, ?)",
                        (self.run_id, operator.index(ts_ns), source, kind, symbol, detail))

    def record_param_change(self, c: ParamChange) -> None:
        """A :class:`~workbench.strategy.params.ParamChange`; old and new values are stored as JSON."""
        with self._tx() as con:
            con.execute("INSERT INTO param_changes (run_id, ts_ns, name, old, new, source) VALUES (?, ?, ?, ?, ?, ?)",
                        (self.run_id, c.ts_ns, c.name, json.dumps(c.old), json.dumps(c.new), c.source))

    # ------------------------------------------------------------------------------------------------- reads

    def positions(self) -> dict[str, tuple[int, int, int]]:
        """``{symbol: (position_lots, cash_units, fee_units)}`` summed over every fill in the journal.

        ``position_lots``: signed; ``cash_units``: ``-sum(side * px_ticks * qty_lots)``, before fees;
        ``fee_units``: commissions paid (negative: net rebate). Net cash is ``cash_units - fee_units``.
        """
        with self._lock:
            rows = self._con.execute("SELECT symbol, sum(side * qty_lots), -sum(side * px_ticks * qty_lots), "
                                     "sum(fee_units) FROM fills GROUP BY symbol ORDER BY symbol").fetchall()
        return {s: (p, c, f) for s, p, c, f in rows}

    def avg_entry_ticks(self) -> dict[str, Fraction]:
        """Exact average entry of each open position, by the risk guard's rule (adding moves the average, reducing
        keeps it, a flip starts at the fill's price): the argument :meth:`RiskGuard.set_position` takes."""
        with self._lock:
            rows = self._con.execute("SELECT symbol, side, px_ticks, qty_lots FROM fills ORDER BY seq").fetchall()
        pos: dict[str, int] = {}
        avg: dict[str, Fraction] = {}
        for s, side, px, q in rows:
            p = pos.get(s, 0)
            new = p + side * q
            if p == 0 or (p > 0) == (side > 0):
                avg[s] = (avg.get(s, Fraction(0)) * abs(p) + px * q) / (abs(p) + q)
            elif new == 0 or (new > 0) != (p > 0):
                avg[s] = Fraction(px)
            pos[s] = new
        return {s: avg[s] for s, p in sorted(pos.items()) if p}

    def open_orders(self) -> list[OwnOrder]:
        """Orders not terminal (in flight included), oldest first, with their journaled state history."""
        with self._lock:
            con = self._con
            rows = con.execute("SELECT client_order_id, symbol, side, type, tif, qty_lots, px_ticks, state, "
                               "filled_lots, quote_filled, fee_units, order_id, created_ns, updated_ns, reason, tag "
                               f"FROM orders WHERE {_OPEN_SQL} ORDER BY created_ns, rowid").fetchall()
            hist = con.execute(f"SELECT e.client_order_id, e.ts_ns, e.state FROM order_events e JOIN orders o "
                               f"USING (client_order_id) WHERE o.{_OPEN_SQL} ORDER BY e.seq").fetchall()
        out = []
        for r in rows:
            o = OwnOrder(r[0], r[1], r[2], OrderType(r[3]), TimeInForce(r[4]), *r[5:7], OrderState(r[7]), *r[8:])
            out.append(o)
        by_id = {o.client_order_id: o for o in out}
        for coid, ts, state in hist:
            by_id[coid].history.append((ts, OrderState(state)))
        return out

    def orders_short_of_fills(self) -> list[OwnOrder]:
        """Orders, open or not, whose journaled filled size is more than the size of their journaled fills: the
        venue said they filled (an answer or a status), the fill itself was not journaled yet (a crash between the
        two). After a restart, their fills are fetched from the venue."""
        with self._lock:
            rows = self._con.execute(
                "SELECT o.client_order_id, symbol, side, type, tif, o.qty_lots, o.px_ticks, state, filled_lots, "
                "quote_filled, o.fee_units, o.order_id, created_ns, updated_ns, reason, tag FROM orders o LEFT JOIN "
                "(SELECT client_order_id, sum(qty_lots) AS q FROM fills GROUP BY client_order_id) f "
                "USING (client_order_id) WHERE o.filled_lots > coalesce(f.q, 0) ORDER BY created_ns, o.rowid"
            ).fetchall()
        return [OwnOrder(r[0], r[1], r[2], OrderType(r[3]), TimeInForce(r[4]), *r[5:7], OrderState(r[7]), *r[8:])
                for r in rows]

    def frame(self, table: str) -> pd.DataFrame:
        """One table as a pandas DataFrame in journal order, read through a separate read-only connection (safe to
        call from another thread while the engine writes)."""
        if table not in TABLES:
            raise ConfigError(f"table must be one of {', '.join(TABLES)}, got {table!r}")
        import pandas as pd  # only inspection needs pandas

        con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
        try:
            return pd.read_sql_query(f"SELECT * FROM {table} ORDER BY rowid", con)
        finally:
            con.close()

    def fills_frame(self) -> pd.DataFrame:
        """The fills, one row each (see :meth:`frame`)."""
        return self.frame("fills")

    def orders_frame(self) -> pd.DataFrame:
        """The orders as last journaled, one row each (see :meth:`frame`)."""
        return self.frame("orders")

    # --------------------------------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the connection (the last one to close checkpoints the WAL into the file). Idempotent."""
        with self._lock:
            self._con.close()
            if self._intents_fd >= 0:  # its lock goes with it
                os.close(self._intents_fd)
                self._intents_fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, run_id={self.run_id!r})"
