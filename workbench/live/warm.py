"""Keeping the tick-to-order path warm while the engine idles.

A market that updates every 10-100 ms finds the engine's code and data out of the CPU's caches (and the CPU
itself idle): the ~50 us of Python from socket read to order frame then costs 300-600 us. As HFT systems do, the
engine runs the same path in a dry mode while idle (:class:`Warmer`, every ``EngineConfig.keep_warm_us``): a canned
depth diff through a scratch feed client (the same kernels, into a scratch book), a copy of the strategy deciding
against a scratch engine (its own risk guard and order book), orders framed and signed by a scratch executor
whose connection is the real executor's kind of :class:`~workbench.live.executor.Connection` (picows's C framing
and masking, or websockets' protocol) over a transport with no socket: frames go to a scratch counter.

Nothing of the real engine is written: not its books, orders, positions, counters, journal, guard or strategy
(the strategy is deep-copied once, its references to the engine and its environment redirected to the scratch
ones). The scratch feed and executor do no I/O (no snapshot fetch, no socket), and the scratch engine logs and
journals nothing.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time

from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from workbench.live import executor as ex_mod
from workbench.live.engine import Engine, _LiveEnv
from workbench.live.executor import Connection, Executor, ExecutorConfig
from workbench.live.feed import FeedClient
from workbench.strategy.base import Strategy
from workbench.strategy.orders import OrderBook, OrderState
from workbench.strategy.params import Params

__all__ = ["Warmer"]

log = logging.getLogger("workbench.engine")

_MAX_ORDERS = 256  # scratch orders kept before the scratch order book starts afresh (it keeps terminal ones)


class Warmer:
    """Dry ticks of ``engine``'s tick-to-order path on scratch objects; :meth:`tick` runs one (on the engine's
    loop, between its callbacks). Build it once the books are in sync and the strategy has started."""

    def __init__(self, engine: Engine) -> None:
        self._real = engine
        self.ticks = 0            # dry ticks run
        self.frames = 0           # order frames framed and dropped
        self.busy_ns = 0          # time spent in dry ticks (a frame that lands during one waits for it)
        scr = self.scratch = _DryEngine(engine)
        self._raw = {s: self._template(s) for s in engine.config.symbols}
        self._frames = list(self._raw.items())  # (symbol, template with the seeded price)
        self._qty: dict[str, tuple[bytes, bytes]] = {}  # the two sizes the canned diff alternates between
        self._k = 0
        for s in engine.config.symbols:
            self._seed(s)
        scr._strategy_on = True

    # -- one dry tick ------------------------------------------------------------------------------------------------
    def tick(self) -> None:
        """A canned diff (one symbol per tick, in turn) through the scratch feed, engine and strategy; an order
        placed or cancelled on the scratch executor if the strategy sent none; then the scratch venue's answers."""
        t0 = time.perf_counter_ns()
        scr = self.scratch
        feed, ex = scr.feed, scr.executor
        k = self._k = (self._k + 1) % len(self._frames)
        symbol, template = self._frames[k]
        st = feed.symbols[symbol]
        if not st.sync.in_sync:
            self._seed(symbol)
        uid = st.sync.last_id + 1
        qty = self._qty[symbol][self.ticks & 1]
        now = time.time_ns()
        feed.recv_perf_ns = time.perf_counter_ns()
        frame = template % (now // 1_000_000, uid, uid, qty)
        sent = ex.dropped.frames
        self._real.feed.book(symbol).top()  # the real book's touch into the caches (a read)
        feed.handle_frames([frame], now)
        if ex.dropped.frames == sent:  # the strategy decided nothing: the order path runs anyway
            opened = scr.orders.open_orders(symbol)
            if opened:
                scr.env.cancel(opened[0])
            else:
                bid = scr._views[symbol].best_bid_ticks()
                if bid is not None:
                    scr.env.limit(1, 1, max(1, bid - 100), symbol=symbol, post_only=True)
        self._settle()
        self.ticks += 1
        self.frames = ex.dropped.frames
        self.busy_ns += time.perf_counter_ns() - t0

    def _settle(self) -> None:
        """The scratch venue answers at once: placed orders are acknowledged, cancels done."""
        scr = self.scratch
        orders, ex = scr.orders, scr.executor
        now = time.time_ns()
        for o in orders.open_orders():
            if o.state is OrderState.PENDING_NEW:
                if orders.apply(o.client_order_id, OrderState.NEW, now) is not None:
                    ex._notify(o)
            elif o.state is OrderState.PENDING_CANCEL:
                if orders.apply(o.client_order_id, OrderState.CANCELED, now) is not None:
                    ex._notify(o)
        ex._pending.clear()  # no answer will come: the futures go
        ex._places.clear()  # nor any order count
        scr._sent_ns.clear()
        if len(orders.orders) > _MAX_ORDERS and not orders.open_orders():
            scr.orders = ex.orders = OrderBook(orders.prefix)

    # -- the scratch book ----------------------------------------------------------------------------------------------
    def _seed(self, symbol: str) -> None:
        """The scratch book of ``symbol`` from the real book's best levels (a snapshot, then a first diff), so the
        scratch strategy decides on realistic prices."""
        real = self._real._views[symbol]
        ins = self._real.instruments[symbol]
        bids, asks = real.levels(1, 20), real.levels(-1, 20)
        if not bids or not asks:  # an empty side: any sane book will do
            bids, asks = [(1_000_000, 100)], [(1_000_001, 100)]
        body = b'{"lastUpdateId":1,"bids":[%s],"asks":[%s]}' % tuple(
            b",".join(b'["%s","%s"]' % (ins.ticks_to_str(p).encode(), ins.lots_to_str(q).encode()) for p, q in side)
            for side in (bids, asks))
        px, qty = bids[0]
        self._qty[symbol] = (ins.lots_to_str(qty).encode(), ins.lots_to_str(qty + 1).encode())
        template = self._raw[symbol].replace(b"%%PX%%", ins.ticks_to_str(px).encode())
        self._frames = [(s, template if s == symbol else t) for s, t in self._frames]
        scr = self.scratch
        st = scr.feed.symbols[symbol]
        st.sync.resync("seed")
        on, scr._strategy_on = scr._strategy_on, False  # the book is being built: no strategy call
        try:
            scr.feed.handle_snapshot(symbol, body)
            frame = template % (time.time_ns() // 1_000_000, 2, 2, self._qty[symbol][0])
            scr.feed.handle_frames([frame])
        finally:
            scr._strategy_on = on

    @staticmethod
    def _template(symbol: str) -> bytes:
        """A depth diff of ``symbol`` changing the best bid's size (E ms, U, u, qty to fill in; the price once
        seeded)."""
        return (b'{"stream":"%s@depth@100ms","data":{"e":"depthUpdate","E":%%d,"s":"%s","U":%%d,'
                        b'"u":%%d,"b":[["%%%%PX%%%%","%%s"]],"a":[]}}' % (symbol.lower().encode(),
                                                                          symbol.encode()))


class _Dropped:
    """Where the scratch executor's frames go: counted and dropped (the last one's bytes kept, for tests)."""

    def __init__(self) -> None:
        self.frames = 0
        self.last = b""


def _dry_connection(transport: str, dropped: _Dropped) -> Connection:
    """The executor's connection class of ``transport`` over a transport with no socket: ``send_text`` runs the
    real one's code (the same checks, the same framing and masking), and the frame lands in ``dropped``."""
    if transport == "picows":
        tr = ex_mod.picows.WSTransport(True, _NoSocketTransport(dropped), log, asyncio.get_running_loop())
        return ex_mod._PicowsConnection(tr)
    return ex_mod._WebsocketsConnection(_NoSocketWebsocket(dropped))


class _NoFd:
    @staticmethod
    def fileno() -> int:
        return -1  # not a descriptor: a system call on it fails (EBADF) and writes nothing


class _NoSocketTransport:
    """What picows's WSTransport reads of an asyncio transport, writing nowhere. It says a byte is queued already,
    so picows frames and masks each frame as it does for the socket, then hands it to :meth:`write` (its path when
    the socket's buffer is not empty) instead of calling ``send()``; the socket it is given is no socket anyway."""

    def __init__(self, dropped: _Dropped) -> None:
        self.dropped = dropped

    def get_extra_info(self, name: str, default=None):
        return _NoFd() if name == "socket" else default

    def get_write_buffer_size(self) -> int:
        return 1

    def write(self, data) -> None:
        if data:
            self.dropped.frames += 1
            self.dropped.last = data

    def close(self) -> None:
        pass

    abort = close


class _NoSocketWebsocket:
    """What the executor uses of a websockets client connection: websockets' own client protocol, open; the bytes
    it makes for the socket counted and dropped."""

    def __init__(self, dropped: _Dropped) -> None:
        self.protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"))
        self.protocol.state = State.OPEN
        self.send_in_progress = None
        self.dropped = dropped

    def send_data(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.dropped.frames += 1
                self.dropped.last = data

    async def close(self) -> None:
        pass


class _DryExecutor(Executor):
    """Frames and signs as the executor does, into a connection of the real one's transport with no socket
    (:func:`_dry_connection`); no task waits for an answer."""

    def __init__(self, real: Executor, orders: OrderBook, engine: "_DryEngine") -> None:
        super().__init__(ExecutorConfig(ws_api_url=real.config.ws_api_url, recv_window_ms=real.config.recv_window_ms,
                                        transport=real.transport),
                         real._cred, real.instruments, orders, on_order=engine._on_order, on_fill=engine._on_fill)
        self.dropped = _Dropped()
        self._conn = _dry_connection(self.transport, self.dropped)
        self._mac = real._mac  # keyed once: only copied, never updated, so the real one is read (and kept warm)

    def submit(self, o) -> None:
        self._place_now(o)

    def submit_cancel(self, client_order_id: str) -> None:
        self._cancel_now(client_order_id)


class _DryFeed(FeedClient):
    """A feed client that is never connected and never fetches a snapshot (the warmer seeds its books)."""

    _SCRATCH = ("_pre", "_io", "_rows", "_rows_buf", "_ctl", "_live", "_last_ids", "_runs", "_counts", "_sym_u8")

    def share_buffers(self, real: FeedClient) -> None:
        """Parse into ``real``'s buffers, so the dry ticks keep them in the caches too. They only hold what one
        call of :meth:`handle_frames` needs (every diff is in its book when it returns; a dry tick never runs
        inside one), so sharing them changes nothing of ``real``. A buffer the real feed grows later is not
        shared any more: no harm."""
        if real._names != self._names:
            return
        for name in self._SCRATCH:
            setattr(self, name, getattr(real, name))

    def _fetch_snapshot(self, symbol, st) -> None:
        pass


class _DryEnv(_LiveEnv):
    def log(self, message: str) -> None:
        pass


class _DryEngine(Engine):
    """An engine that is never started: the scratch feed, executor and strategy wired as :meth:`Engine._main` wires
    the real ones; it logs, alerts and journals nothing, and carries out none of its guard's actions."""

    def __init__(self, real: Engine) -> None:
        super().__init__(real.strategy, dataclasses.replace(real.config, journal_path=None, control=False))
        self.env = _DryEnv(self)
        self.instruments = real.instruments
        self._assets = real._assets
        self.feed = _DryFeed(real.feed.config, real.instruments, on_book=self._on_book, on_trade=self._on_trade)
        self.feed.share_buffers(real.feed)
        self.executor = _DryExecutor(real.executor, self.orders, self)
        self._views = {s: type(v)(self.feed.book(s)) for s, v in real._views.items()}
        self.strategy = _copy_strategy(real, self)

    def _strategy_call(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # the copy misbehaves on canned data: it stops deciding; the order path still runs
            self._strategy_on = False

    def _schedule_guard(self) -> None:
        self.guard.drain_events()
        self.guard.drain_actions()

    def _note(self, source, kind, detail, symbol=None) -> None:
        pass


def _copy_strategy(real: Engine, scratch: _DryEngine) -> Strategy:
    """A deep copy of ``real``'s strategy whose references to the real engine and environment are the scratch
    ones; a strategy that cannot be copied is replaced by one that decides nothing (the order path still runs)."""
    memo = {id(real): scratch, id(real.env): scratch.env, id(real.feed): scratch.feed,
            id(real.executor): scratch.executor, id(real.orders): scratch.orders, id(real.guard): scratch.guard}
    for s, view in real._views.items():  # a view the strategy kept reads the scratch book
        memo[id(view)] = scratch._views[s]
    params = getattr(real.strategy, "params", None)
    if isinstance(params, Params):  # its __getattr__ reads a slot an unpickled copy lacks: built anew instead
        memo[id(params)] = Params(tuple(params.spec.values()), params.as_dict())
    try:
        return copy.deepcopy(real.strategy, memo)
    except Exception as exc:
        log.debug("keep-warm: %s cannot be copied (%s): the dry ticks run without it", type(real.strategy).__name__,
                  exc)
        return Strategy()
