"""A venue whose public market is a recording: the replayed book and trades, with users' orders matched against it.

:class:`ReplayVenue` implements :class:`workbench.venue.api.Venue` for one symbol. Its market is a stream of
normalized event chunks (:data:`workbench.types.event_dt`: :class:`~workbench.data.BinanceCapture`, LOBSTER
messages, the workbench's Parquet recordings). Conventions are those of :mod:`workbench.venue.api`: integer ticks
and lots, quote amounts in notional units (tick x lot), fee rates in ppm, time passed in and never read.

The market
----------
``advance(now_ns)`` applies every recorded message due by ``now_ns`` to an :class:`~workbench.book.L2Book` and
queues :class:`~workbench.venue.api.LevelChange` / :class:`~workbench.venue.api.TradePrint` events for ``poll()``;
``depth()`` serves that book. Due means: the message's exchange time, and that of every earlier message of its
stream, is at most ``now_ns``. Book messages (depth diffs, snapshots, order-level rows) keep the recording's order
(that order *is* the book), and so do trades. The two streams are merged by exchange time, a trade first when it has
the time of a diff: Binance sends trades and diffs on separate streams, a 100 ms spot diff carries the trades of the
100 ms before its ``E``, and the queue models need a trade before the level update that shows it. The venue reads
``reorder_window_ns`` of exchange time ahead (1 s by default; the two streams of the spot capture are at most
0.21 s apart): a row recorded even later than that behind rows with later times is replayed late, never out of its
stream's order. Book tickers and status rows of the recording are not replayed: a server derives book tickers from
``depth()``.

- Update ids are the recording's own: ``LevelChange.update_id`` is the ``u`` of the diff (a snapshot level carries
  the snapshot's ``lastUpdateId``), and ``DepthSnapshot.last_update_id`` is the id of the last book message
  applied, so a client that syncs by Binance's rules (buffer, REST snapshot, drop ``u <= lastUpdateId``, then the
  chain) stays in sync with the replay. Sources without update ids (LOBSTER) get a counter, one per message.
- Across a gap of the recording (the reader's ``CLEAR|GAP`` row): the venue's book is emptied there, a level
  change to 0 is queued for every level it held (update id: the row's, the ``u`` of the diff where sync was lost),
  and ``depth()`` serves an empty book until the recording's next snapshot, whose levels come as level changes with
  its ``lastUpdateId``. The ids jump at the gap: a Binance-rule client sees ``U != last u + 1``, discards its book
  and refetches ``depth()``, which is always the venue's current book with its id. A snapshot after a crossed book
  (RESYNC) restarts the book the same way.
- LOBSTER's phantom-level rule of the book (an order added through the opposite side removes the levels it went
  through) changes ``depth()`` without a level change being queued for the removed levels.

Users' orders
-------------
Accounts hold balances (``deposit``, or ``accounts=`` at construction): the base asset in lots, the quote asset in
notional units. Fees per account (``set_fees``), ``fees`` for all others; an order pays the rates in force for its
account when it was placed.

- **No market impact.** The public book stays the recording: a user's fill removes nothing from it and a user's
  resting order adds nothing to it (hftbacktest does the same). Users' orders never trade with each other, also not
  within one account: each trades only against the recording, as if it were the only participant. Users' fills
  are not public trades (no TradePrint) and have their own trade ids, counted from 1.
- **Taking.** A marketable order takes the displayed liquidity at the replayed prices, level by level, up to the
  displayed sizes, as taker. What users took at a level is not offered again until the recording next updates
  that level (a diff row at that price, or a snapshot), when the recorded size applies again. The remainder rests
  (GTC LIMIT), or expires (IOC, MARKET); FOK fills entirely or expires without a fill; LIMIT_MAKER is rejected
  (-2010 "Order would immediately match and take.") if any liquidity is on offer at its price or better.
- **Resting.** A resting order joins its level behind the displayed size (less what users took there), and the
  queue model (:mod:`workbench.venue.queue`) estimates the size ahead of it as the recording goes on; the users'
  orders at one price keep time priority among each other. It fills, as maker at its own price: by a recorded
  trade at its price hitting its side, for the part of the trade beyond the queue ahead (and beyond the users'
  orders ahead of it); entirely, when the price trades through it: a trade strictly beyond its price hitting its
  side, or the opposite side of the recording quoted at or through its price (hftbacktest's full-fill rules).
  Trades whose aggressor is unknown fill nothing; hidden executions (LOBSTER type 5) fill through-priced orders
  only, and cross trades nothing.
- While the recording is out of sync (between a gap and the next snapshot) the book is empty: market orders
  expire, limit orders rest, and queue estimates wait for the snapshot, which then updates them like a diff.

Balances: a buy locks ``px * qty`` plus the commission at the larger of the two rates, plus one unit a lot (so
that per-fill rounding can never take more than was locked); a sell locks its lots. Each fill moves the order's lock
back and settles: the buyer pays ``notional + commission`` in quote and gets the lots; the seller gives the lots and
gets ``notional - commission``; a negative commission is a rebate. A MARKET buy locks at the worst price it will
reach. A closed order releases the rest of its lock. Rejections (values, never exceptions): unknown symbol (-1121),
filters LOT_SIZE / PRICE_FILTER / NOTIONAL (-1013), a client order id already open for the account (-2010
"Duplicate order sent."), insufficient balance (-2010), post-only (-2010); a cancel of an order that is not open
(-2011 "Unknown order sent.").

Execution reports (in ``poll()`` with the market events, in the order they happened): NEW when an order is
accepted, TRADE for each fill, then CANCELED or EXPIRED when it closes without filling entirely. Time: every call
takes ``now_ns``; ``place`` and ``cancel`` first advance the market to it (``now_ns`` is when the request reaches
the exchange: the caller adds the order-entry latency, see :mod:`workbench.venue.latency`). Time never goes back: a
``now_ns`` earlier than the venue's is taken as the venue's. Deterministic: the same recording, calls and ``seed``
give the same events (the seed feeds the queue model's draws, if it makes any).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

from workbench.book import nb as book_nb
from workbench.book.book import L2Book
from workbench.enums import (
    ASK,
    BID,
    F_BATCH_END,
    F_CLEAR,
    F_GAP,
    K_CROSS_TRADE,
    K_DEPTH,
    K_ORDER_ADD,
    K_ORDER_CANCEL,
    K_ORDER_DELETE,
    K_ORDER_EXEC,
    K_ORDER_EXEC_HIDDEN,
    K_SNAPSHOT,
    K_TRADE,
)
from workbench.exceptions import ConfigError
from workbench.types import event_dt
from workbench.venue.api import (
    CancelResult,
    DepthSnapshot,
    ErrorCode,
    ExecutionReport,
    FeeSchedule,
    Fill,
    LevelChange,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderView,
    PlaceResult,
    Rejection,
    SymbolSpec,
    TimeInForce,
    TradePrint,
    commission_units,
)
from workbench.venue.queue import ConservativeQueue, QueueModel, QueuePos

__all__ = ["ReplayVenue"]

_I64_MIN = int(np.iinfo(np.int64).min)
_TRADE_CLASS, _BOOK_CLASS = 0, 1
_TRADE_KINDS = np.array([K_TRADE, K_ORDER_EXEC_HIDDEN, K_CROSS_TRADE], np.uint8)
_BOOK_KINDS = np.array([K_SNAPSHOT, K_DEPTH, K_ORDER_ADD, K_ORDER_CANCEL, K_ORDER_DELETE, K_ORDER_EXEC], np.uint8)

_REJ_SYMBOL = Rejection(ErrorCode.BAD_SYMBOL, "Invalid symbol.")
_REJ_LOT = Rejection(ErrorCode.INVALID_MESSAGE, "Filter failure: LOT_SIZE")
_REJ_PRICE = Rejection(ErrorCode.INVALID_MESSAGE, "Filter failure: PRICE_FILTER")
_REJ_NOTIONAL = Rejection(ErrorCode.INVALID_MESSAGE, "Filter failure: NOTIONAL")
_REJ_DUP = Rejection(ErrorCode.NEW_ORDER_REJECTED, "Duplicate order sent.")
_REJ_BALANCE = Rejection(ErrorCode.NEW_ORDER_REJECTED, "Account has insufficient balance for requested action.")
_REJ_POST_ONLY = Rejection(ErrorCode.NEW_ORDER_REJECTED, "Order would immediately match and take.")
_REJ_UNKNOWN = Rejection(ErrorCode.CANCEL_REJECTED, "Unknown order sent.")


def _malformed(what: str) -> Rejection:
    return Rejection(ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED, f"Parameter '{what}' was empty or malformed.")


class _Order:
    """A user's order as the venue keeps it (mutable); :meth:`ReplayVenue._view` makes the public OrderView."""

    __slots__ = (
        "order_id", "coid", "account", "side", "type", "tif", "px", "qty", "filled", "quote_filled", "status",
        "created_ns", "updated_ns", "locked", "lock_px", "unlocked", "fees", "fee_max_ppm", "pos",
    )

    def __init__(self, order_id: int, coid: str, req: OrderRequest, now_ns: int, fees: FeeSchedule) -> None:
        self.order_id = order_id
        self.coid = coid
        self.account = req.account
        self.side = req.side
        self.type = req.type
        self.tif = req.tif
        self.px = req.px_ticks if req.type != OrderType.MARKET else 0
        self.qty = req.qty_lots
        self.filled = 0
        self.quote_filled = 0
        self.status = OrderStatus.NEW
        self.created_ns = now_ns
        self.updated_ns = now_ns
        self.locked = 0          # lots (sell) or notional units (buy) locked now
        self.lock_px = self.px   # the price a buy's lock is computed at (a MARKET buy: its worst level)
        self.unlocked = 0        # lots never locked (a MARKET buy beyond the liquidity on offer)
        self.fees = fees         # the account's schedule when the order was placed: its fills pay these rates
        self.fee_max_ppm = max(fees.maker_ppm, fees.taker_ppm, 0)
        self.pos: QueuePos | None = None

    @property
    def leaves(self) -> int:
        return self.qty - self.filled

    def reserve(self, leaves: int) -> int:
        """What the order must hold locked while ``leaves`` lots are open (see the module docstring)."""
        if self.side < 0:
            return max(leaves, 0)
        leaves -= self.unlocked
        if leaves <= 0:
            return 0
        return self.lock_px * leaves + commission_units(self.lock_px, leaves, self.fee_max_ppm) + leaves


class _Level:
    """Users' resting orders at one price of one side, in time priority, and the level's displayed size."""

    __slots__ = ("displayed", "orders")

    def __init__(self, displayed: int) -> None:
        self.displayed = displayed
        self.orders: list[_Order] = []


class ReplayVenue:
    """A venue for one symbol whose public market is a recording (see the module docstring).

    Parameters
    ----------
    events : event chunks (:data:`~workbench.types.event_dt` arrays) in recording order, read lazily.
    spec : the symbol and its filters; ``spec.instrument`` must be the recording's instrument.
    fees : the default fee schedule (per-account ones with :meth:`set_fees`).
    queue : queue-position model of resting orders (default :class:`~workbench.venue.queue.ConservativeQueue`).
    accounts : initial balances, ``{account: {asset: amount}}`` (lots of the base, notional units of the quote).
    seed : seed of the generator handed to the queue model.
    publish_market : queue LevelChange / TradePrint events for ``poll()`` (a backtester reading ``depth()`` only
        can turn them off; execution reports are always queued).
    reorder_window_ns : how far ahead of a message the venue reads to merge trades and diffs (see above).
    book_max_levels : the widest dense window of the venue's book (:class:`~workbench.book.L2Book`), in ticks.
    """

    def __init__(
        self,
        events: Iterable[np.ndarray],
        spec: SymbolSpec,
        *,
        fees: FeeSchedule = FeeSchedule(),
        queue: QueueModel | None = None,
        accounts: Mapping[int, Mapping[str, int]] | None = None,
        seed: int = 0,
        publish_market: bool = True,
        reorder_window_ns: int = 1_000_000_000,
        book_max_levels: int = 1 << 22,
    ) -> None:
        if reorder_window_ns < 0:
            raise ConfigError("reorder_window_ns must be >= 0")
        self.spec = spec
        self.symbol = spec.symbol
        self.symbols: dict[str, SymbolSpec] = {spec.symbol: spec}
        self.fees = fees
        self.queue: QueueModel = queue if queue is not None else ConservativeQueue()
        self.seed = seed
        self.publish_market = bool(publish_market)
        self.book = L2Book(max_levels=book_max_levels)
        self.now_ns = 0
        self.last_update_id = 0
        self.counts: Counter = Counter()  # messages, rows, level_changes, trade_prints, fills, orders, rejections
        self._rng = np.random.default_rng(seed)
        self._out: list = []
        # users
        self._bal: dict[int, dict[str, list[int]]] = {}
        self._fees: dict[int, FeeSchedule] = {}
        self._orders: dict[int, _Order] = {}
        self._open: dict[int, _Order] = {}
        self._by_coid: dict[tuple[int, str], _Order] = {}
        self._levels: dict[tuple[int, int], _Level] = {}
        self._own_px: dict[int, set[int]] = {BID: set(), ASK: set()}
        self._own_best: dict[int, int | None] = {BID: None, ASK: None}
        self._taken: dict[tuple[int, int], int] = {}
        self._next_order_id = 1
        self._next_fill_id = 1
        self._next_print_id = 1
        self._clear_pending = False
        for acc, assets in (accounts or {}).items():
            for asset, amount in assets.items():
                self.deposit(acc, asset, amount)
        # the recording: a buffer of rows merged by release time (see _load)
        self._src = iter(events)
        self._window = int(reorder_window_ns)
        self._buf = np.zeros(0, event_dt)
        self._rel = np.zeros(0, np.int64)
        self._cls = np.zeros(0, np.int8)
        self._seq = np.zeros(0, np.int64)
        self._end_l: list[int] = []
        self._rel_l: list[int] = []
        self._cls_l: list[int] = []
        self._i = 0
        self._max_rel = [_I64_MIN, _I64_MIN]
        self._seq_next = 0
        self._exhausted = False

    # =================================================================================================================
    # accounts
    # =================================================================================================================
    def deposit(self, account: int, asset: str, amount: int) -> None:
        """Add ``amount`` to the free balance of ``asset`` (lots of the base asset, notional units of the quote)."""
        if isinstance(amount, bool) or not isinstance(amount, (int, np.integer)) or amount < 0:
            raise ConfigError(f"deposit a non-negative integer amount, got {amount!r}")
        self._account(account).setdefault(asset, [0, 0])[0] += int(amount)

    def set_fees(self, account: int, fees: FeeSchedule) -> None:
        """The fee schedule of one account, for the orders it places from now on (an order pays the rates in force
        when it was placed, which its lock was computed with)."""
        self._fees[account] = fees

    def balances(self, account: int) -> dict[str, tuple[int, int]]:
        return {asset: (fl[0], fl[1]) for asset, fl in self._account(account).items()}

    def _account(self, account: int) -> dict[str, list[int]]:
        bal = self._bal.get(account)
        if bal is None:
            bal = self._bal[account] = {self.spec.base_asset: [0, 0], self.spec.quote_asset: [0, 0]}
        return bal

    def _fee(self, account: int) -> FeeSchedule:
        return self._fees.get(account, self.fees)

    # =================================================================================================================
    # the recording
    # =================================================================================================================
    def advance(self, now_ns: int) -> None:
        """Apply every recorded message due by ``now_ns`` (see the module docstring)."""
        now_ns = int(now_ns)
        while True:
            if not (self.publish_market or self._levels or self._taken):
                self._bulk(now_ns)
            r = self._peek()
            if r is None or r > now_ns:
                break
            self._process_next()
        if now_ns > self.now_ns:
            self.now_ns = now_ns

    def step(self) -> int | None:
        """Apply the next recorded message, whatever its time; returns that time (ns), or None at the end.

        The venue's time becomes the message's time (if later). For a backtester acting after every message.
        """
        r = self._peek()
        if r is None:
            return None
        self._process_next()
        if r > self.now_ns:
            self.now_ns = r
        return r

    @property
    def next_event_ns(self) -> int | None:
        """Exchange time of the next recorded message not yet applied, None when the recording is over."""
        return self._peek()

    @property
    def exhausted(self) -> bool:
        return self._peek() is None

    def poll(self) -> list[ExecutionReport | TradePrint | LevelChange]:
        out, self._out = self._out, []
        return out

    def depth(self, symbol: str, limit: int) -> DepthSnapshot:
        """The replayed book (never users' orders), ``limit`` levels a side, best first."""
        if symbol != self.symbol:
            return DepthSnapshot(symbol, self.last_update_id)
        n = max(int(limit), 0)
        bids, asks = (self._side_top(side, n) for side in (BID, ASK))
        return DepthSnapshot(symbol, self.last_update_id, list(zip(*bids)), list(zip(*asks)))

    def _side_top(self, side: int, n: int) -> tuple[list[int], list[int]]:
        """Prices and sizes of the best ``n`` levels of one side of the replayed book, best first."""
        if n <= 0:
            return [], []
        lv = self.book.levels(n)
        r = 0 if side > 0 else 2
        k = int(np.count_nonzero(lv[r + 1]))
        px, qty = lv[r, :k].tolist(), lv[r + 1, :k].tolist()
        if k < n and self.book.st[book_nb.ST_HAS_FAR]:
            # the dense window holds the touch; levels outside it (all behind the window's) are the overflow ones
            fpx, fqty = self.book.side_levels(side)
            px, qty = fpx[:n].tolist(), fqty[:n].tolist()
        return px, qty

    def _load(self) -> bool:
        """Read one chunk into the buffer; False at the end of the recording.

        Each row gets a release time, the running maximum of exchange times within its class (trades, book rows),
        so rows of a class keep their recorded order; the unprocessed rows are then ordered by (release time,
        class with trades first, recorded order).
        """
        chunk = next(self._src, None)
        if chunk is None:
            self._exhausted = True
            return False
        if not isinstance(chunk, np.ndarray) or chunk.dtype != event_dt:
            raise ConfigError("ReplayVenue reads chunks of workbench.types.event_dt")
        kind = chunk["kind"]
        cls = np.full(len(chunk), -1, np.int8)
        cls[np.isin(kind, _TRADE_KINDS)] = _TRADE_CLASS
        cls[np.isin(kind, _BOOK_KINDS)] = _BOOK_CLASS
        keep = cls >= 0
        if not keep.all():
            chunk, cls = chunk[keep], cls[keep]
        n = len(chunk)
        if n == 0:
            return True
        ts = chunk["ts_exch_ns"]
        rel = np.empty(n, np.int64)
        for c in (_TRADE_CLASS, _BOOK_CLASS):
            m = cls == c
            if m.any():
                r = np.maximum.accumulate(np.maximum(ts[m], self._max_rel[c]))
                rel[m] = r
                self._max_rel[c] = int(r[-1])
        seq = np.arange(self._seq_next, self._seq_next + n, dtype=np.int64)
        self._seq_next += n
        i = self._i
        buf = np.concatenate([self._buf[i:], chunk])
        rel = np.concatenate([self._rel[i:], rel])
        cls = np.concatenate([self._cls[i:], cls])
        seq = np.concatenate([self._seq[i:], seq])
        order = np.lexsort((seq, cls, rel))
        self._buf, self._rel, self._cls, self._seq = buf[order], rel[order], cls[order], seq[order]
        self._i = 0
        # per row: the index of its message's last row (-1: not in the buffer yet), as lists for cheap lookups; a
        # CLEAR|GAP row is a message of its own (the reader does not flag it BATCH_END: the book is not consistent)
        ends = np.flatnonzero(self._buf["flags"] & (F_BATCH_END | F_GAP))
        if len(ends):
            k = np.searchsorted(ends, np.arange(len(self._buf)))
            self._end_l = np.where(k < len(ends), ends[np.minimum(k, len(ends) - 1)], -1).tolist()
        else:
            self._end_l = [-1] * len(self._buf)
        self._rel_l = self._rel.tolist()
        self._cls_l = self._cls.tolist()
        return True

    def _peek(self) -> int | None:
        """Release time of the next message, once the buffer holds it whole and the reorder window after it."""
        while True:
            i = self._i
            if i < len(self._rel_l):
                r = self._rel_l[i]
                if self._exhausted or (self._end_l[i] >= 0 and max(self._max_rel) > r + self._window):
                    return r
            elif self._exhausted:
                return None
            self._load()

    def _bulk(self, now_ns: int) -> None:
        """Apply the due messages in one call of the book: nothing is published and no user's order rests, so the
        book is all that changes (the same book as message by message: the kernel takes the rows in order)."""
        while True:
            final = self._exhausted or max(self._max_rel) > now_ns + self._window
            # rows released more than the window before the last one read are in their final order
            self._bulk_upto(now_ns if final else min(now_ns, max(self._max_rel) - self._window - 1))
            if final:
                return
            self._load()

    def _bulk_upto(self, t_ns: int) -> None:
        i = self._i
        j = int(np.searchsorted(self._rel[i:], t_ns, side="right")) + i
        if j < len(self._rel_l) or not self._exhausted:
            while j > i and self._end_l[j - 1] != j - 1:  # stop at a message boundary
                j -= 1
        if j - i < 2:
            return
        rows = self._buf[i:j]
        self._i = j
        self.counts["messages"] += int(np.count_nonzero(rows["flags"] & (F_BATCH_END | F_GAP)))
        self.counts["rows"] += len(rows)
        self.now_ns = max(self.now_ns, self._rel_l[j - 1])
        book_rows = rows[self._cls[i:j] == _BOOK_CLASS]
        if len(book_rows) == 0:
            return
        self.book.apply(book_rows)
        kinds = book_rows["kind"]
        absolute = kinds <= K_DEPTH
        last_abs = int(np.flatnonzero(absolute)[-1]) if absolute.any() else -1
        if last_abs >= 0:
            self.last_update_id = int(book_rows["id"][last_abs])
        # sources without update ids count one per message after the last id they gave
        tail = book_rows[last_abs + 1 :]
        self.last_update_id += int(np.count_nonzero(tail["flags"] & F_BATCH_END))
        clear = np.flatnonzero(book_rows["flags"] & F_CLEAR)
        if len(clear):
            self._clear_pending = not (kinds[clear[-1] :] == K_SNAPSHOT).any()

    def _process_next(self) -> None:
        s = self._i
        e = self._end_l[s]
        if e < 0:  # the recording ended inside a message: what there is of it is the last message
            e = len(self._rel_l) - 1
        self._i = e + 1
        ts = self._rel_l[s]
        if ts > self.now_ns:
            self.now_ns = ts
        rows = self._buf[s : e + 1]
        self.counts["messages"] += 1
        self.counts["rows"] += e + 1 - s
        if self._cls_l[s] == _TRADE_CLASS:
            self._trade_message(rows, ts)
        else:
            self._book_message(rows, ts)

    # -- market messages -----------------------------------------------------------------------------------------------
    def _trade_message(self, rows: np.ndarray, ts: int) -> None:
        cols = (rows[c].tolist() for c in ("kind", "side", "px_ticks", "qty_lots", "id", "ts_exch_ns"))
        for kind, side, px, qty, rid, t in zip(*cols):
            if kind == K_TRADE:
                aggressor, tid = side, rid
            else:
                aggressor = -side if kind == K_ORDER_EXEC_HIDDEN else 0
                tid = self._next_print_id
                self._next_print_id += 1
            if self.publish_market:
                self._out.append(TradePrint(self.symbol, tid, px, qty, aggressor < 0, t))
                self.counts["trade_prints"] += 1
            if aggressor and self._levels:
                self._on_trade(aggressor, px, qty, ts, queue=kind == K_TRADE)

    def _book_message(self, rows: np.ndarray, ts: int) -> None:
        kinds = rows["kind"]
        flags0 = int(rows["flags"][0])
        if flags0 & F_CLEAR:
            self._on_clear(int(rows["id"][0]), int(rows["ts_exch_ns"][0]))
        if int(kinds.max()) <= K_DEPTH:  # SNAPSHOT (1) and DEPTH (2) rows: absolute sizes, the recording's ids
            self.book.apply(rows)
            self.last_update_id = int(rows["id"][-1])
            if self.publish_market or self._levels or self._taken:
                cols = [rows[c].tolist() for c in ("side", "px_ticks", "qty_lots", "id", "ts_exch_ns")]
                # the diff's U, so that a served replay keeps Binance's chain (U == previous u + 1) unbroken
                first, last = int(rows["first_id"][-1]), int(rows["id"][-1])
                fu = first if 0 < first < last else None
                if self.publish_market and not (self._levels or self._taken):
                    sym = self.symbol
                    self._out.extend([LevelChange(sym, u, sd, p, q, t, fu) for sd, p, q, u, t in zip(*cols) if sd])
                    self.counts["level_changes"] += len(rows) - cols[0].count(0)
                elif self.publish_market:
                    for side, px, qty, uid, t in zip(*cols):
                        if side:
                            self._level_row(side, px, qty, uid, t, ts, fu)
                else:
                    # nothing published: only rows at users' levels, at levels users took from, or quoted through
                    # a user's price matter; the rest (most of a diff) are already in the book
                    for k in self._relevant_rows(rows).tolist():
                        self._level_row(cols[0][k], cols[1][k], cols[2][k], cols[3][k], cols[4][k], ts)
            if self._clear_pending and (kinds == K_SNAPSHOT).any():
                self._after_snapshot(ts)
            return
        # order-level rows (LOBSTER): the level's new size is the book's, row by row
        for j in range(len(rows)):
            row = rows[j : j + 1]
            kind, side, px, qty = int(kinds[j]), int(row["side"][0]), int(row["px_ticks"][0]), int(row["qty_lots"][0])
            t = int(row["ts_exch_ns"][0])
            if kind == K_ORDER_EXEC and side:
                if self.publish_market:
                    self._out.append(TradePrint(self.symbol, self._next_print_id, px, qty, side > 0, t))
                    self.counts["trade_prints"] += 1
                self._next_print_id += 1
                if self._levels:
                    self._on_trade(-side, px, qty, ts, queue=True)
            self.book.apply(row)
            self.last_update_id += 1
            if side:
                self._level_row(side, px, self._level_qty(side, px), self.last_update_id, t, ts)

    def _relevant_rows(self, rows: np.ndarray) -> np.ndarray:
        """Indices of the level rows :meth:`_level_row` would act on when nothing is published (a superset: what
        it does to the first can only make later ones matter less)."""
        side, px, qty = rows["side"], rows["px_ticks"], rows["qty_lots"]
        m = np.zeros(len(rows), bool)
        for sd, p in self._levels.keys() | self._taken.keys():
            m |= (side == sd) & (px == p)
        for own in (BID, ASK):
            best = self._own_best[own]
            if best is not None:  # the other side quoted at or through a user's price fills it
                m |= (side == -own) & (qty > 0) & ((px <= best) if own > 0 else (px >= best))
        return np.flatnonzero(m & (side != 0))

    def _level_row(self, side: int, px: int, qty: int, uid: int, t: int, ts: int, first_uid: int | None = None
                   ) -> None:
        """One level of the public book now has ``qty`` lots: publish it, refresh what users took, move queues."""
        if self.publish_market:
            self._out.append(LevelChange(self.symbol, uid, side, px, qty, t, first_uid))
            self.counts["level_changes"] += 1
        if self._taken:
            self._taken.pop((side, px), None)
        if self._levels:
            self._on_level(side, px, qty, ts)

    def _on_clear(self, uid: int, t: int) -> None:
        """The recording restarts its book (gap or snapshot): every level the venue held goes."""
        if self.publish_market:
            for side in (BID, ASK):
                for px in self.book.side_levels(side)[0].tolist():  # (a clear is rare: the full scan is fine)
                    self._out.append(LevelChange(self.symbol, uid, side, px, 0, t))
                    self.counts["level_changes"] += 1
        self._taken.clear()
        self._clear_pending = True
        self.last_update_id = uid

    def _after_snapshot(self, ts: int) -> None:
        """The book is known again: each users' level learns its size (0 if the snapshot does not have it)."""
        self._clear_pending = False
        for side, px in list(self._levels):
            if (side, px) in self._levels:  # a crossing fill above may have emptied it
                self._on_level(side, px, self._level_qty(side, px), ts)

    def _level_qty(self, side: int, px: int) -> int:
        b = self.book
        arr = b.bid if side > 0 else b.ask
        i = px - int(b.st[book_nb.ST_BASE])
        if 0 <= i < arr.shape[0]:
            return int(arr[i])
        p, q = b.side_levels(side)  # outside the dense window: the overflow levels
        k = np.flatnonzero(p == px)
        return int(q[k[0]]) if len(k) else 0

    # -- users' resting orders against the recording ------------------------------------------------------------------
    def _on_level(self, side: int, px: int, qty: int, ts: int) -> None:
        lvl = self._levels.get((side, px))
        if lvl is not None and not self._clear_pending:
            prev, lvl.displayed = lvl.displayed, qty
            for o in lvl.orders:
                self.queue.on_level(o.pos, prev, qty, self._rng)
            _keep_time_priority(lvl)
        if qty > 0:
            opp = -side
            best = self._own_best[opp]
            if best is not None and (best >= px if opp > 0 else best <= px):
                self._fill_through(opp, px, True, ts)

    def _on_trade(self, aggressor: int, px: int, qty: int, ts: int, *, queue: bool) -> None:
        """A recorded trade at ``px`` of ``qty`` lots whose aggressor was ``aggressor`` (+1 buy)."""
        side = -aggressor  # the side it hit
        best = self._own_best[side]
        if best is None or (best < px if side > 0 else best > px):
            return
        self._fill_through(side, px, False, ts)
        lvl = self._levels.get((side, px)) if queue else None
        if lvl is None:
            return
        used = 0  # lots of this trade given to users' orders ahead in the level
        for o in list(lvl.orders):
            over = self.queue.on_trade(o.pos, qty)
            give = min(o.leaves, over - used)
            if give > 0:
                used += give
                self._fill(o, o.px, give, True, ts)
        _keep_time_priority(lvl)

    def _fill_through(self, side: int, px: int, inclusive: bool, ts: int) -> None:
        """Fill entirely every users' order on ``side`` priced through ``px`` (or at it, if ``inclusive``)."""
        if side > 0:
            prices = sorted((p for p in self._own_px[side] if p > px or (inclusive and p == px)), reverse=True)
        else:
            prices = sorted(p for p in self._own_px[side] if p < px or (inclusive and p == px))
        for p in prices:
            for o in list(self._levels[(side, p)].orders):
                self._fill(o, o.px, o.leaves, True, ts)

    def _rest(self, o: _Order) -> None:
        key = (o.side, o.px)
        lvl = self._levels.get(key)
        if lvl is None:
            lvl = self._levels[key] = _Level(self._level_qty(o.side, o.px))
            self._own_px[o.side].add(o.px)
            best = self._own_best[o.side]
            if best is None or (o.px > best if o.side > 0 else o.px < best):
                self._own_best[o.side] = o.px
        o.pos = self.queue.join(max(lvl.displayed - self._taken.get(key, 0), 0))
        lvl.orders.append(o)
        _keep_time_priority(lvl)

    def _unrest(self, o: _Order) -> None:
        key = (o.side, o.px)
        lvl = self._levels.get(key)
        if lvl is None or o not in lvl.orders:
            return
        lvl.orders.remove(o)
        if not lvl.orders:
            del self._levels[key]
            prices = self._own_px[o.side]
            prices.discard(o.px)
            if self._own_best[o.side] == o.px:
                self._own_best[o.side] = (max(prices) if o.side > 0 else min(prices)) if prices else None

    # =================================================================================================================
    # orders
    # =================================================================================================================
    def place(self, req: OrderRequest, now_ns: int) -> PlaceResult:
        """Accept, match and maybe rest an order that reaches the exchange at ``now_ns``."""
        self.advance(now_ns)
        now = self.now_ns
        rej = self._check(req)
        if rej is not None:
            self.counts["rejections"] += 1
            return PlaceResult(None, rejection=rej)
        side, qty = req.side, req.qty_lots
        limit = req.px_ticks if req.type != OrderType.MARKET else None
        walk, avail = self._walk(side, limit, qty)
        if req.type == OrderType.LIMIT_MAKER and walk:
            self.counts["rejections"] += 1
            return PlaceResult(None, rejection=_REJ_POST_ONLY)
        if req.type == OrderType.MARKET and walk and self.spec.min_notional_ticks_lots:
            if walk[0][0] * qty < self.spec.min_notional_ticks_lots:
                self.counts["rejections"] += 1
                return PlaceResult(None, rejection=_REJ_NOTIONAL)
        o = _Order(self._next_order_id, req.client_order_id, req, now, self._fee(req.account))
        if req.type == OrderType.MARKET and side > 0:
            o.lock_px = max((p for p, _ in walk), default=0)
            o.unlocked = qty - min(qty, avail)
        bal = self._account(req.account)
        fl = bal.setdefault(self.spec.quote_asset if side > 0 else self.spec.base_asset, [0, 0])
        need = o.reserve(qty)
        if fl[0] < need:
            self.counts["rejections"] += 1
            return PlaceResult(None, rejection=_REJ_BALANCE)
        # accepted
        self._next_order_id += 1
        if not o.coid:
            o.coid = f"replay-{o.order_id}"
        fl[0] -= need
        fl[1] += need
        o.locked = need
        self._orders[o.order_id] = o
        self._open[o.order_id] = o
        self._by_coid[(o.account, o.coid)] = o
        self.counts["orders"] += 1
        self._report("NEW", o, None, now)
        fills: list[Fill] = []
        fok_short = req.type == OrderType.LIMIT and req.tif == TimeInForce.FOK and avail < qty
        if not fok_short:
            opp = -side
            for px, lots in walk:
                take = min(lots, o.leaves)
                if take <= 0:
                    break
                key = (opp, px)
                self._taken[key] = self._taken.get(key, 0) + take
                fills.append(self._fill(o, px, take, False, now))
        if o.status.is_open:
            if req.type in (OrderType.LIMIT, OrderType.LIMIT_MAKER) and (
                req.type == OrderType.LIMIT_MAKER or req.tif == TimeInForce.GTC
            ):
                self._rest(o)
            else:
                self._close(o, OrderStatus.EXPIRED, "EXPIRED", now)
        return PlaceResult(self._view(o), tuple(fills))

    def _check(self, req: OrderRequest) -> Rejection | None:
        if req.symbol != self.symbol:
            return _REJ_SYMBOL
        if req.side not in (BID, ASK):
            return _malformed("side")
        try:
            otype = OrderType(req.type)
            TimeInForce(req.tif)
        except ValueError:
            return _malformed("type")
        if isinstance(req.qty_lots, bool) or not isinstance(req.qty_lots, (int, np.integer)) or req.qty_lots <= 0:
            return _malformed("quantity")
        if not self.spec.min_qty_lots <= req.qty_lots <= self.spec.max_qty_lots:
            return _REJ_LOT
        if otype != OrderType.MARKET:
            if not isinstance(req.px_ticks, (int, np.integer)) or req.px_ticks <= 0:
                return _REJ_PRICE
            if req.px_ticks * req.qty_lots < self.spec.min_notional_ticks_lots:
                return _REJ_NOTIONAL
        if req.client_order_id:
            prev = self._by_coid.get((req.account, req.client_order_id))
            if prev is not None and prev.status.is_open:
                return _REJ_DUP
        return None

    def _walk(self, side: int, limit: int | None, qty: int) -> tuple[list[tuple[int, int]], int]:
        """The opposite levels an order of ``side`` could take, best first, with what is on offer at each (the
        displayed size less what users already took there), until ``qty`` lots; and their total."""
        taken = self._taken
        n = 16
        while True:
            px, q = self._side_top(-side, n)
            out: list[tuple[int, int]] = []
            total = 0
            for p, lots in zip(px, q):
                if limit is not None and (p > limit if side > 0 else p < limit):
                    return out, total
                if taken:
                    lots -= taken.get((-side, p), 0)
                if lots <= 0:
                    continue
                out.append((p, lots))
                total += lots
                if total >= qty:
                    return out, total
            if len(px) < n:  # the whole side was seen
                return out, total
            n *= 4

    def _fill(self, o: _Order, px: int, qty: int, is_maker: bool, ts: int) -> Fill:
        comm = commission_units(px, qty, o.fees.maker_ppm if is_maker else o.fees.taker_ppm)
        notional = px * qty
        bal = self._account(o.account)
        base = bal.setdefault(self.spec.base_asset, [0, 0])
        quote = bal.setdefault(self.spec.quote_asset, [0, 0])
        after = o.reserve(o.leaves - qty)
        release = o.locked - after
        o.locked = after
        if o.side > 0:
            quote[1] -= release
            quote[0] += release - notional - comm
            base[0] += qty
        else:
            base[1] -= release
            quote[0] += notional - comm
        o.filled += qty
        o.quote_filled += notional
        o.updated_ns = ts
        fill = Fill(self._next_fill_id, o.order_id, o.account, o.side, px, qty, is_maker, comm, ts)
        self._next_fill_id += 1
        self.counts["fills"] += 1
        if o.leaves == 0:
            o.status = OrderStatus.FILLED
            self._unrest(o)
            self._open.pop(o.order_id, None)
        else:
            o.status = OrderStatus.PARTIALLY_FILLED
        self._report("TRADE", o, fill, ts)
        return fill

    def _close(self, o: _Order, status: OrderStatus, exec_type: str, ts: int) -> None:
        """CANCELED or EXPIRED: release the lock, leave the book, report."""
        bal = self._account(o.account)
        fl = bal[self.spec.quote_asset if o.side > 0 else self.spec.base_asset]
        fl[1] -= o.locked
        fl[0] += o.locked
        o.locked = 0
        o.status = status
        o.updated_ns = ts
        self._unrest(o)
        self._open.pop(o.order_id, None)
        self._report(exec_type, o, None, ts)

    def _report(self, exec_type: str, o: _Order, fill: Fill | None, ts: int) -> None:
        self._out.append(ExecutionReport(exec_type, self._view(o), fill, ts))

    def _view(self, o: _Order) -> OrderView:
        return OrderView(
            o.order_id, o.coid, o.account, self.symbol, o.side, o.type, o.tif, o.px, o.qty, o.filled,
            o.quote_filled, o.status, o.created_ns, o.updated_ns,
        )

    def _find(self, account: int, order_id: int | None, client_order_id: str | None) -> _Order | None:
        o = None
        if order_id is not None:
            o = self._orders.get(order_id)
        elif client_order_id:
            o = self._by_coid.get((account, client_order_id))
        return o if o is not None and o.account == account else None

    def cancel(
        self, account: int, symbol: str, now_ns: int, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> CancelResult:
        self.advance(now_ns)
        if symbol != self.symbol:
            return CancelResult(None, _REJ_SYMBOL)
        o = self._find(account, order_id, client_order_id)
        if o is None or not o.status.is_open:
            return CancelResult(None, _REJ_UNKNOWN)
        self._close(o, OrderStatus.CANCELED, "CANCELED", self.now_ns)
        return CancelResult(self._view(o))

    def cancel_all(self, account: int, symbol: str, now_ns: int) -> list[OrderView]:
        self.advance(now_ns)
        if symbol != self.symbol:
            return []
        out = []
        for o in [o for o in self._open.values() if o.account == account]:
            self._close(o, OrderStatus.CANCELED, "CANCELED", self.now_ns)
            out.append(self._view(o))
        return out

    def order(
        self, account: int, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> OrderView | None:
        if symbol != self.symbol:
            return None
        o = self._find(account, order_id, client_order_id)
        return self._view(o) if o is not None else None

    def open_orders(self, account: int, symbol: str | None = None) -> list[OrderView]:
        if symbol is not None and symbol != self.symbol:
            return []
        return [self._view(o) for o in self._open.values() if o.account == account]

    def queue_ahead(self, order_id: int) -> float | None:
        """The queue model's estimate of the public lots ahead of a resting order (None if it is not resting)."""
        o = self._open.get(order_id)
        return o.pos.ahead if o is not None and o.pos is not None else None

    def __repr__(self) -> str:
        t = self.book.top()
        return (
            f"ReplayVenue({self.symbol}, now={self.now_ns}, book={t.bid_px_ticks}x{t.bid_qty_lots}/"
            f"{t.ask_px_ticks}x{t.ask_qty_lots}, open orders={len(self._open)}, queue={self.queue!r})"
        )


def _keep_time_priority(lvl: _Level) -> None:
    """A later order cannot have less public size ahead of it than an earlier one at the same price."""
    prev = 0.0
    for o in lvl.orders:
        if o.pos.ahead < prev:
            o.pos.ahead = prev
        prev = o.pos.ahead
