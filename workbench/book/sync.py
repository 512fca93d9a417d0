"""Binance's documented local order book procedure, as a sans-I/O state machine over update ids.

Spot and USD-M futures differ only in how a diff names its predecessor: a futures diff carries ``pu`` (the previous
diff's ``u``; ids jump because they are shared across symbols), a spot diff's predecessor is ``U - 1`` (ids are
contiguous per symbol). With ``pu`` defined that way for both, the rules are one:

1. Until a snapshot is applied, diffs are buffered (at most ``max_buffer``; the oldest are dropped and counted).
2. A snapshot with ``lastUpdateId`` L older than the first buffered diff (L < first U - 1) is stale: it is skipped
   and the next one is awaited ("refetch").
3. After the snapshot, diffs with ``u <= L`` are dropped. The first diff applied must straddle L:
   ``pu <= L < u`` (spot: ``U <= L + 1 <= u``). A snapshot whose L falls between two futures diffs is such a start.
4. Every later diff must continue the chain: ``pu == previous u``. A diff with ``u <= previous u`` is a duplicate
   (or out of order) and is dropped; any other break is a gap: the book is out of sync, the state goes back to
   step 1 and waits for a new snapshot.

The caller applies what this machine accepts and tells it when the book itself is inconsistent (a crossed book)
with :meth:`BookSync.resync`. No I/O, no clock: the same object serves a file replay and a live feed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from workbench.stats import ReadStats

__all__ = ["SyncState", "BookSync", "Diff"]


class SyncState(IntEnum):
    AWAIT_SNAPSHOT = 0  # buffering diffs, no usable book
    AWAIT_FIRST = 1     # snapshot applied, waiting for the diff that straddles it
    LIVE = 2            # in sync


@dataclass(slots=True)
class Diff:
    """The ids of one depth diff and the caller's payload (parsed levels, timestamps)."""

    first_id: int  # U
    last_id: int   # u
    prev_id: int   # pu (futures) or U - 1 (spot)
    payload: Any = None


@dataclass
class BookSync:
    """Decides, from update ids alone, which snapshots and diffs the local book applies.

    ``on_snapshot`` and ``on_diff`` return the list of diffs to apply now, in order (for a snapshot: the buffered
    diffs that follow it). ``on_snapshot`` also says whether the snapshot itself is to be applied.
    Counters (``stats``): ``snapshots_applied``, ``snapshots_ignored`` (arrived while in sync),
    ``snapshots_stale``, ``diffs_applied``, ``diffs_dropped`` (``u`` not after the snapshot), ``duplicates``,
    ``gaps``, ``resyncs``, ``buffer_overflow``, ``dropped_unsynced`` (discarded while out of sync).
    """

    max_buffer: int = 100_000
    stats: ReadStats = field(default_factory=ReadStats)
    state: SyncState = SyncState.AWAIT_SNAPSHOT
    last_id: int = -1          # u of the last applied diff (or L of the snapshot)
    synced_once: bool = False  # a later sync is a *re*sync
    _buffer: deque = field(default_factory=deque)

    @property
    def in_sync(self) -> bool:
        return self.state == SyncState.LIVE

    def on_snapshot(self, last_update_id: int) -> tuple[bool, list[Diff]]:
        """A snapshot arrived. Returns (apply it?, diffs to apply after it)."""
        if self.state != SyncState.AWAIT_SNAPSHOT:
            # A snapshot while in sync would only move the book back in time; a live client never asks for one.
            self.stats.add("snapshots_ignored")
            return False, []
        if self._buffer and last_update_id < self._buffer[0].prev_id:
            # Older than everything buffered: the diffs in between are lost. Binance: fetch again.
            self.stats.add("snapshots_stale")
            return False, []
        self.stats.add("snapshots_applied")
        if self.synced_once:
            self.stats.add("resyncs")
        self.synced_once = True
        self.state = SyncState.AWAIT_FIRST
        self.last_id = last_update_id
        out: list[Diff] = []
        buffered, self._buffer = list(self._buffer), deque()
        for k, d in enumerate(buffered):
            out.extend(self.on_diff(d))
            if self.state == SyncState.AWAIT_SNAPSHOT:
                # the chain broke inside the buffer: what follows the break waits for the next snapshot
                self._buffer.extend(buffered[k + 1 :])
                break
        return True, out

    def on_diff(self, d: Diff) -> list[Diff]:
        """A diff arrived. Returns the diffs to apply now (this one, or none)."""
        st = self.state
        if st == SyncState.AWAIT_SNAPSHOT:
            self._buffer.append(d)
            if len(self._buffer) > self.max_buffer:
                self._buffer.popleft()
                self.stats.add("buffer_overflow")
            return []
        if d.last_id <= self.last_id:
            # Older than the book: before the snapshot (normal at start) or a repeated/out-of-order diff.
            self.stats.add("diffs_dropped" if st == SyncState.AWAIT_FIRST else "duplicates")
            return []
        if st == SyncState.AWAIT_FIRST:
            ok = d.prev_id <= self.last_id  # and last_id < u, checked above
        else:
            ok = d.prev_id == self.last_id
        if not ok:
            self.stats.add("gaps")
            self._lose_sync()
            self._buffer.append(d)
            return []
        self.state = SyncState.LIVE
        self.last_id = d.last_id
        self.stats.add("diffs_applied")
        return [d]

    def on_live_diff(self, first_id: int, last_id: int, prev_id: int) -> int:
        """:meth:`on_diff` for the common case, in plain ints: a diff arriving while in sync, without a :class:`Diff`
        (a live feed takes tens of thousands a second). Returns 1 (apply it: accepted), 0 (drop it: a duplicate), or
        -1 when this machine is not in sync or the diff does not continue the chain: nothing was changed, and the
        caller passes the diff to :meth:`on_diff`, which decides (buffer it, or count the gap and lose sync)."""
        if self.state != SyncState.LIVE:
            return -1
        if last_id <= self.last_id:
            self.stats.add("duplicates")
            return 0
        if prev_id != self.last_id:
            return -1
        self.last_id = last_id
        self.stats.add("diffs_applied")
        return 1

    def resync(self, reason: str = "crossed", requeue: list[Diff] = ()) -> None:
        """The caller found the book inconsistent: forget it and wait for a new snapshot.

        ``requeue``: diffs this machine had accepted but the caller did not apply (they followed the bad one in
        one batch); they are buffered again for the next snapshot and no longer count as applied.
        """
        self.stats.add(f"resync_{reason}")
        self._lose_sync()
        if requeue:
            self.stats.add("diffs_applied", -len(requeue))
            self._buffer.extend(requeue)

    def finish(self) -> None:
        """End of stream: count what was buffered and never applied."""
        if self._buffer:
            self.stats.add("dropped_unsynced", len(self._buffer))
            self._buffer.clear()

    def _lose_sync(self) -> None:
        self.state = SyncState.AWAIT_SNAPSHOT
        if self._buffer:
            self.stats.add("dropped_unsynced", len(self._buffer))
            self._buffer.clear()
