"""The simulated venue served as a Binance-Spot-compatible exchange: thin asyncio around the sans-I/O parts.

One ``websockets`` server on 127.0.0.1 (by default) and one port serves all three surfaces of
:mod:`workbench.venue.protocol`:

- REST ``GET /api/v3/...`` answered from ``process_request`` (a plain HTTP request never becomes a WebSocket);
- market streams ``/ws/<stream>[/<stream>...]`` and ``/stream?streams=a/b`` (combined), with live SUBSCRIBE;
- the WebSocket API ``/ws-api/v3`` (orders, account, user-data subscriptions).

The venue (a :class:`workbench.venue.api.Venue`) runs on the server's event loop: a market task advances it on a
short tick and fans its events out; a request is handled in its connection's task, and the events it caused (fills,
execution reports, book changes) are dispatched at once. Nothing here blocks the loop and nothing is shared with
another thread.

Every connection has a bounded outbox drained by its own writer task: a client that stops reading fills only its
own outbox and is disconnected when it overflows (close code 1008), so nobody else slows down. Frames larger than
``max_frame_bytes`` close the connection (1009), as Binance does.

Speed (``benchmarks/bench_server.py``): on loopback the system call per frame, not the bytes, bounds a connection,
so a writer serializes every frame waiting (up to ``_RUN_FRAMES``) itself and writes them at once; answers of the
WebSocket API go out in one write each the same way. When the venue's ``poll`` is a matching engine's, the server
reads the engine's event rows (``poll_rows``) and renders depth messages from their columns, building no object per
event; any other venue goes through its api events, with the same frames.

Latency (``latency=``, a :class:`~workbench.venue.latency.LatencyModel` in venue nanoseconds, divided by the clock's
speed on the wall): a request reaches the venue ``order_entry`` after it arrived, its answer and the execution
reports it causes leave ``response`` later, and every market-data message leaves ``feed`` after it happened (one
draw per message, shared by its subscribers). Each connection keeps its order (a :class:`DelayLine` per
direction: a shorter draw never overtakes). Delays are event-loop timers, so they have the loop's resolution (about
1 ms on Linux); a flat-out replay (speed inf) has no wall time to delay by and applies none. REST answers are not
delayed.

Faults (:class:`ServerFaults`, from code or ``workbench venue --fault``): drop depth events, serve a stale
snapshot, freeze the market streams, disconnect clients, send ``serverShutdown``; error answers (-1021, 429, ...)
and "execution status unknown" come from ``protocol.faults``. From another thread, set them through the server's
loop (``ThreadedVenue.call``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import Side

from workbench.venue import protocol as proto
from workbench.venue.api import ExecutionReport, LevelChange, TradePrint, Venue
from workbench.venue.keys import ApiKey
from workbench.venue.latency import DelayLine, LatencyModel

__all__ = ["ServerConfig", "ServerFaults", "VenueClock", "VenueServer", "ThreadedVenue"]

log = logging.getLogger("workbench.venue")

WS_API_PATH = "/ws-api/v3"


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """How the server runs.

    host, port : where to listen (port 0: a free port chosen by the system).
    tick_ms : how often the market task advances the venue and flushes real-time events; 0 runs it flat out, paced
        by the clients' outboxes (benchmarks, replays as fast as clients read).
    outbox_frames : frames a connection may have waiting before it is disconnected as too slow.
    max_frame_bytes : largest frame a client may send.
    depth_every_batch : send one ``depthUpdate`` per group of changes sharing an update id (a recorded diff, or each
        change of the matching engine) as soon as it happens, instead of Binance's 100 ms / 1000 ms aggregation
        (for replays at full speed and throughput benchmarks).
    ping_interval_s : server pings (Binance pings every 20 s and drops clients that do not answer within a minute).
    """

    host: str = "127.0.0.1"
    port: int = 0
    tick_ms: float = 2.0
    outbox_frames: int = 65_536
    max_frame_bytes: int = 1 << 20
    depth_every_batch: bool = False
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 60.0


class VenueClock:
    """Venue time from wall time: ``start_ns + (now - t0) * speed``; ``speed`` inf runs a replay flat out."""

    def __init__(self, start_ns: int | None = None, speed: float = 1.0, wall: Callable[[], int] = time.time_ns):
        if not speed > 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._wall = wall
        self._t0 = wall()
        self.start_ns = self._t0 if start_ns is None else int(start_ns)

    def now_ns(self) -> int:
        if math.isinf(self.speed):
            return 2**62  # everything has happened: the market task steps through the recording itself
        return self.start_ns + int((self._wall() - self._t0) * self.speed)


@dataclass
class ServerFaults:
    """Switches that make the server misbehave on purpose, the way real exchanges and networks do."""

    drop_depth: int = 0            # drop this many of the next depthUpdate messages (every symbol): a gap
    stale_snapshot: int = 0        # answer this many of the next REST depth requests with an old snapshot
    freeze_feed: bool = False      # hold every market-data message (a stalled feed: no gap, just silence); set it
                                   # back to False and what was held goes out, in order, before anything newer
    _stale_bodies: dict = field(default_factory=dict, repr=False)
    _held: list = field(default_factory=list, repr=False)  # (stream, payloads) held while frozen


#: Frames a writer puts into one socket write at most (bounds what a slow reader's transport buffers beyond the
#: outbox: about this many frames over the write limit).
_RUN_FRAMES = 512
_HEADS = [bytes((0x81, n)) for n in range(126)]  # FIN + text opcode, unmasked, 7-bit length


def _text_frames(frames: list[str]) -> bytes:
    """Unmasked text frames (RFC 6455 5.2, server to client, no extensions), byte for byte what
    ``protocol.send_text`` serializes, joined."""
    parts = []
    heads = _HEADS
    for text in frames:
        data = text.encode()
        n = len(data)
        if n < 126:
            parts.append(heads[n])
        elif n < 65536:
            parts.append(b"\x81\x7e" + n.to_bytes(2, "big"))
        else:
            parts.append(b"\x81\x7f" + n.to_bytes(8, "big"))
        parts.append(data)
    return b"".join(parts)


def _can_write_runs(conn: ServerConnection) -> bool:
    """Whether the writer may serialize runs of frames itself: a server connection without extensions, on a
    ``websockets`` that has the pieces used (``send_context``, ``transport``); else it sends frame by frame."""
    protocol = getattr(conn, "protocol", None)
    return (
        hasattr(conn, "send_context")
        and getattr(conn, "transport", None) is not None
        and protocol is not None
        and getattr(protocol, "side", None) is Side.SERVER
        and not getattr(protocol, "extensions", True)
    )


class _Delayed:
    """A :class:`DelayLine` released into ``sink`` by the running event loop, each item at its due wall time."""

    __slots__ = ("line", "sink", "wall", "timer")

    def __init__(self, sink: Callable[[object], None], wall: Callable[[], int]) -> None:
        self.line = DelayLine()
        self.sink = sink
        self.wall = wall
        self.timer: asyncio.TimerHandle | None = None

    def put(self, due_ns: int, item) -> None:
        self.line.put(due_ns, item)
        if self.timer is None:
            self._arm()

    def _arm(self) -> None:
        due = self.line.next_due_ns()
        if due is None:
            self.timer = None
            return
        self.timer = asyncio.get_running_loop().call_later(max(0.0, (due - self.wall()) / 1e9), self._fire)

    def _fire(self) -> None:
        self.timer = None
        for item in self.line.pop_due(self.wall()):
            self.sink(item)
        self._arm()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.line.clear()


class _Client:
    """One connection: its outbox and what it is subscribed to."""

    __slots__ = ("conn", "outbox", "wake", "stream", "api", "limit", "dropped", "later", "inbound")

    def __init__(self, conn: ServerConnection, limit: int):
        self.conn = conn
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.stream: proto.StreamSession | None = None
        self.api: proto.ApiSession | None = None
        self.limit = limit
        self.dropped = False
        self.later: _Delayed | None = None    # frames waiting for their latency (outbound)
        self.inbound: _Delayed | None = None  # requests waiting for their order-entry latency

    def push(self, frame: str) -> None:
        if self.dropped:
            return
        if len(self.outbox) >= self.limit:
            self._cut()
            return
        self.outbox.append(frame)
        self.wake.set()

    def push_many(self, frames: list[str]) -> None:
        """:meth:`push` of each frame, in one step (the client is cut off exactly when pushing them one by one would
        have cut it off)."""
        if self.dropped or not frames:
            return
        if len(self.outbox) + len(frames) > self.limit:
            self._cut()
            return
        self.outbox.extend(frames)
        self.wake.set()

    def _cut(self) -> None:
        # a client that does not read: cut it off rather than hold memory or slow anyone down
        self.dropped = True
        self.outbox.clear()
        log.warning("disconnecting %s: %d frames unread", self.conn.remote_address, self.limit)
        transport = self.conn.transport
        if transport is not None:
            transport.abort()


class _Diff:
    """Level changes of one symbol waiting for an aggregated ``depthUpdate``, conflated as they come: the last size
    per level, in the order levels first changed, and the first and last update ids."""

    __slots__ = ("bids", "asks", "first", "last")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.first = self.last = 0

    def __bool__(self) -> bool:
        return bool(self.bids) or bool(self.asks)

    def add(self, side: int, px: int, qty: int, uid: int, first_uid: int | None = None) -> None:
        lo = uid if first_uid is None else first_uid  # a replayed diff's U
        if not self:
            self.first, self.last = lo, uid
        else:
            self.first, self.last = min(self.first, lo), max(self.last, uid)
        (self.bids if side > 0 else self.asks)[px] = qty

    def add_columns(self, uids: list[int], sides: list[int], pxs: list[int], qtys: list[int]) -> None:
        if not uids:
            return
        lo, hi = min(uids), max(uids)
        if not self:
            self.first, self.last = lo, hi
        else:
            self.first, self.last = min(self.first, lo), max(self.last, hi)
        bids, asks = self.bids, self.asks
        for side, px, qty in zip(sides, pxs, qtys):
            if side > 0:
                bids[px] = qty
            else:
                asks[px] = qty


def _row_engine(venue):
    """The object whose ``poll_rows()`` gives exactly the events ``venue.poll()`` would (a matching engine, directly
    or through delegation), else None: the server then reads rows and builds no object per market-data event."""
    poll = getattr(venue, "poll", None)
    owner = getattr(poll, "__self__", None)
    if owner is None or not getattr(getattr(poll, "__func__", None), "same_events_as_poll_rows", False):
        return None
    if not all(callable(getattr(owner, m, None)) for m in ("poll_rows", "events_from_rows")):
        return None
    return owner


class VenueServer:
    """Serve ``venue`` on ``config.host:config.port`` until :meth:`stop`.

    ``keys``: the API keys clients sign with (each bound to a venue account); ``latency``: delays applied to what
    crosses the wire (see the module docstring). Use as an async context manager or call :meth:`start` /
    :meth:`stop`.
    """

    def __init__(
        self,
        venue: Venue,
        keys: Sequence[ApiKey],
        *,
        config: ServerConfig = ServerConfig(),
        clock: VenueClock | None = None,
        protocol_config: proto.ProtocolConfig | None = None,
        wall: Callable[[], int] = time.time_ns,
        latency: LatencyModel | None = None,
    ) -> None:
        self.venue = venue
        self.config = config
        self.clock = clock or VenueClock(wall=wall)
        self._wall = wall
        self._flat_out = math.isinf(self.clock.speed)
        self.latency = latency
        if latency is not None and self._flat_out:
            log.warning("latency is not applied to a flat-out replay (speed inf): there is no wall time to delay by")
        self._lat = None if self._flat_out else latency
        kw = {"config": protocol_config} if protocol_config is not None else {}
        self.protocol = proto.Protocol(venue, keys=list(keys), **kw)
        self.faults = ServerFaults()
        self._server: Server | None = None
        self._tasks: list[asyncio.Task] = []
        self._clients: set[_Client] = set()
        self._api_clients: dict[proto.ApiSession, _Client] = {}
        self._pending_100: dict[str, _Diff] = {}
        self._pending_1000: dict[str, _Diff] = {}
        self._names: dict[str, tuple[str, str, str, str]] = {}  # symbol -> its stream names
        self._engine = _row_engine(venue)
        self._engine_syms: tuple[str, ...] = self._engine.symbol_names if self._engine is not None else ()
        self._last_bbo: dict[str, tuple] = {}
        self._last_id: dict[str, int] = {}
        self.sent_depth_messages = 0
        self.port: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def start(self) -> "VenueServer":
        cfg = self.config
        self._server = await serve(
            self._handler,
            cfg.host,
            cfg.port,
            process_request=self._process_request,
            max_size=cfg.max_frame_bytes,
            compression=None,  # Binance does not compress; deflate would cost more CPU than loopback saves
            ping_interval=cfg.ping_interval_s,
            ping_timeout=cfg.ping_timeout_s,
            server_header="workbench-venue",
            logger=logging.getLogger("workbench.venue.ws"),
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._tasks = [
            asyncio.create_task(self._market_loop(), name="venue-market"),
            asyncio.create_task(self._depth_loop(100, self._pending_100, "@depth@100ms"), name="venue-depth-100"),
            asyncio.create_task(self._depth_loop(1000, self._pending_1000, "@depth"), name="venue-depth-1000"),
            asyncio.create_task(self._partial_loop(100), name="venue-partial-100"),
            asyncio.create_task(self._partial_loop(1000), name="venue-partial-1000"),
        ]
        return self

    async def stop(self) -> None:
        """Stop serving: close every connection and task. Idempotent."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> "VenueServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def urls(self) -> dict[str, str]:
        """``rest``, ``stream`` (base: clients append ``/ws/<stream>`` or ``/stream?streams=``) and ``ws_api``."""
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return {
            "rest": f"http://{host}:{self.port}",
            "stream": f"ws://{host}:{self.port}",
            "ws_api": f"ws://{host}:{self.port}{WS_API_PATH}",
        }

    # -- faults from code -------------------------------------------------------------------------------------------
    def disconnect_all(self, *, code: int = 1001, reason: str = "disconnected by the venue") -> int:
        """Close every client connection now (a network drop); returns how many."""
        n = 0
        for c in list(self._clients):
            n += 1
            asyncio.ensure_future(c.conn.close(code, reason))
        return n

    def send_server_shutdown(self) -> int:
        """Send ``serverShutdown`` on every WebSocket API connection (clients are expected to reconnect)."""
        frame = proto.server_shutdown(self._wall())
        n = 0
        for c in self._api_clients.values():
            c.push(frame)
            n += 1
        return n

    # -- HTTP (REST) ----------------------------------------------------------------------------------------------
    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path.startswith("/api/"):
            if parts.path == "/api/v3/depth" and self.faults.stale_snapshot > 0:
                stale = self._stale_depth(parts.query)
                if stale is not None:
                    self.faults.stale_snapshot -= 1
                    return self._response(200, {"Content-Type": "application/json"}, stale)
            client = conn.remote_address[0] if conn.remote_address else "127.0.0.1"
            res = self.protocol.handle_rest("GET", parts.path, parts.query, dict(request.headers), self._wall(),
                                            client=client)
            if parts.path == "/api/v3/depth" and res.status == 200:
                self._remember_depth(parts.query, res.body)
            return self._response(res.status, res.headers, res.body)
        if parts.path == WS_API_PATH or proto.stream_session(request.path) is not None:
            return None  # a WebSocket handshake: go on
        return self._response(404, {"Content-Type": "application/json"}, b'{"code":-1000,"msg":"Not found."}')

    @staticmethod
    def _response(status: int, headers, body: bytes) -> Response:
        h = Headers(headers)
        h["Content-Length"] = str(len(body))
        h.setdefault("Content-Type", "application/json;charset=UTF-8")
        return Response(status, HTTPStatus(status).phrase, h, body)

    def _remember_depth(self, query: str, body: bytes) -> None:
        # keep the first snapshot per query as the "stale" one a fault serves later
        self.faults._stale_bodies.setdefault(query, body)

    def _stale_depth(self, query: str) -> bytes | None:
        return self.faults._stale_bodies.get(query)

    # -- WebSocket connections --------------------------------------------------------------------------------------
    async def _handler(self, conn: ServerConnection) -> None:
        client = _Client(conn, self.config.outbox_frames)
        path = conn.request.path if conn.request is not None else ""
        writer = asyncio.create_task(self._writer(client))
        self._clients.add(client)
        try:
            if urlsplit(path).path == WS_API_PATH:
                await self._serve_api(client)
            else:
                client.stream = proto.stream_session(path)
                await self._serve_stream(client)
        except ConnectionClosed:
            pass  # a client going away is normal, not an error to print
        finally:
            self._clients.discard(client)
            for d in (client.later, client.inbound):
                if d is not None:
                    d.cancel()
            if client.api is not None:
                self._api_clients.pop(client.api, None)
                self.protocol.close_session(client.api)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer

    async def _writer(self, client: _Client) -> None:
        conn = client.conn
        outbox = client.outbox
        runs = _can_write_runs(conn)
        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                while outbox:
                    if runs:
                        # every frame waiting (up to a bound) in one write: on loopback the system call per frame,
                        # not the bytes, is what limits a connection; the frames on the wire are the same
                        n = min(len(outbox), _RUN_FRAMES)
                        run = [outbox.popleft() for _ in range(n)]
                        async with conn.send_context():
                            conn.transport.write(_text_frames(run))
                    else:
                        await conn.send(outbox.popleft())
        except ConnectionClosed:
            pass

    async def _serve_api(self, client: _Client) -> None:
        host = client.conn.remote_address[0] if client.conn.remote_address else "127.0.0.1"
        session = self.protocol.open_session(self._wall(), client=host)
        client.api = session
        self._api_clients[session] = client
        conn = client.conn
        runs = _can_write_runs(conn)
        if self._lat is not None:
            await self._serve_api_late(client, session)
            return
        async for message in conn:
            replies = self.protocol.handle_ws_api(session, message, self._wall(), venue_ns=self._venue_now())
            if runs:  # the answer in one write, serialized here (websockets' send costs tens of microseconds more)
                async with conn.send_context():
                    conn.transport.write(_text_frames(replies))
            else:
                for r in replies:
                    await conn.send(r)
            # what the request set off (fills, reports, book changes) goes out now, not at the next tick
            self._poll_dispatch()

    async def _serve_api_late(self, client: _Client, session: proto.ApiSession) -> None:
        """:meth:`_serve_api` with the latency model: each request waits for its order-entry draw, its answer for
        a response draw."""
        lat = self._lat

        def answer(message) -> None:
            if client.dropped:
                return
            replies = self.protocol.handle_ws_api(session, message, self._wall(), venue_ns=self._venue_now())
            self._push_late(client, replies, lat.response.draw_ns())
            self._poll_dispatch()

        inbound = client.inbound = _Delayed(answer, self._wall)
        async for message in client.conn:
            if len(inbound.line) >= self.config.outbox_frames:
                client._cut()  # requests pile up faster than the link delivers them: a flood
                return
            inbound.put(self._wall() + self._wall_ns(lat.order_entry.draw_ns()), message)

    def _wall_ns(self, venue_ns: int) -> int:
        """A duration of venue time on the wall."""
        return int(venue_ns / self.clock.speed)

    def _push_late(self, client: _Client, frames: list[str], delay_ns: int) -> None:
        """Push ``frames`` to ``client`` after ``delay_ns`` of venue time, after everything pushed late before."""
        d = client.later
        if d is None:
            d = client.later = _Delayed(client.push_many, self._wall)
        d.put(self._wall() + self._wall_ns(delay_ns), frames)

    def _venue_now(self) -> int:
        """The venue's time for a request: the clock's, or where a flat-out replay has got to."""
        if self._flat_out:
            t = getattr(self.venue, "now_ns", None)
            return int(t) if isinstance(t, int) else self._wall()
        return self.clock.now_ns()

    async def _serve_stream(self, client: _Client) -> None:
        assert client.stream is not None
        async for message in client.conn:
            for r in client.stream.handle_control(message):
                client.push(r)

    # -- market data ------------------------------------------------------------------------------------------------
    async def _market_loop(self) -> None:
        tick = self.config.tick_ms / 1000
        flat_out = math.isinf(self.clock.speed)
        t = None
        while True:
            if flat_out:
                # replay as fast as the clients take it: 10 ms of the recording per pass, then yield
                if t is None:
                    t = getattr(self.venue, "next_event_ns", None) or self._wall()
                t += 10_000_000
                self.venue.advance(t)
                self._poll_dispatch()
                await self._wait_for_outboxes()
                if getattr(self.venue, "exhausted", False):
                    await asyncio.sleep(max(tick, 0.01))
                continue
            self.venue.advance(self.clock.now_ns())
            self._poll_dispatch()
            if self.faults._held and not self.faults.freeze_feed:  # thawed with nothing new to publish
                self._publish_many("", [])
            if tick:
                await asyncio.sleep(tick)
            else:  # flat out (tick 0): paced by the readers, like a flat-out replay
                await self._wait_for_outboxes()

    async def _wait_for_outboxes(self) -> None:
        # flat-out replay must not outrun the slowest *reading* client's outbox, nor starve the loop
        while any(len(c.outbox) > self.config.outbox_frames // 2 for c in self._clients if not c.dropped):
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)

    def _stream_names(self, sym: str) -> tuple[str, str, str, str]:
        """``<sym>@depth@100ms``, ``<sym>@depth``, ``<sym>@trade``, ``<sym>@bookTicker``."""
        names = self._names.get(sym)
        if names is None:
            low = sym.lower()
            names = self._names[sym] = (f"{low}@depth@100ms", f"{low}@depth", f"{low}@trade", f"{low}@bookTicker")
        return names

    def _poll_dispatch(self) -> None:
        """Take what happened at the venue and send it out."""
        eng = self._engine
        if eng is None:
            self._dispatch(self.venue.poll())
            return
        rows = eng.poll_rows()
        if len(rows):
            self._dispatch_rows(eng, rows)

    def _dispatch(self, events: list) -> None:
        if not events:
            return
        now = self._wall()
        reports = [e for e in events if isinstance(e, ExecutionReport)]
        if reports:
            self._user_events(reports, now)
        self._market_events(events, now)

    def _user_events(self, reports: list[ExecutionReport], now: int) -> None:
        lat = self._lat
        for session, frames in self.protocol.render_user_events(reports, now).items():
            c = self._api_clients.get(session)
            if c is not None:
                if lat is None:
                    c.push_many(frames)
                else:
                    self._push_late(c, frames, lat.response.draw_ns())

    def _market_events(self, events: list, now: int) -> None:
        every = self.config.depth_every_batch
        touched: dict[str, int] = {}
        batch: list[LevelChange] = []
        for e in events:
            if isinstance(e, LevelChange):
                sym = e.symbol
                if not every:  # (with every batch, the 100 ms aggregation is never sent)
                    self._diff(self._pending_100, sym).add(e.side, e.px_ticks, e.qty_lots, e.update_id,
                                                           e.first_update_id)
                self._diff(self._pending_1000, sym).add(e.side, e.px_ticks, e.qty_lots, e.update_id,
                                                        e.first_update_id)
                touched[sym] = e.update_id
                if every:
                    if batch and (batch[-1].update_id != e.update_id or batch[-1].symbol != sym):
                        self._send_depth(batch, now)
                        batch = []
                    batch.append(e)
            elif isinstance(e, TradePrint):
                self._send_trade(e, now)
        if batch:
            self._send_depth(batch, now)
        self._touched(touched)

    def _dispatch_rows(self, eng, rows) -> None:
        """:meth:`_dispatch` of event rows of a matching engine (``poll_rows``), with the same frames in the same
        order; level changes go from columns to texts without an object per change."""
        now = self._wall()
        kinds = rows["kind"].tolist()
        n = len(kinds)
        n_level = kinds.count(eng.EV_LEVEL)
        if n_level == n:  # market data only (the flat-out case): columns straight from the array
            self._level_rows(rows["sym"].tolist(), rows["update_id"].tolist(), rows["side"].tolist(),
                             rows["px"].tolist(), rows["qty"].tolist(), now)
            return
        n_exec = kinds.count(eng.EV_EXEC)
        if n_exec:
            ev_exec = eng.EV_EXEC
            if self.protocol.has_user_subscribers or self.protocol.keeps_trades:  # (keyed accounts' fills: myTrades)
                ex = [i for i, k in enumerate(kinds) if k == ev_exec]
                self._user_events(eng.events_from_rows(rows[ex] if n_exec != n else rows), now)
            else:  # nobody to render them for: only a cancel's report matters (it uses up the cancel id)
                xtypes, canceled = rows["xtype"].tolist(), eng.X_CANCELED
                gone = [i for i, k in enumerate(kinds) if k == ev_exec and xtypes[i] == canceled]
                if gone:
                    ids, accounts, oids = eng.account_ids, rows["account"].tolist(), rows["order_id"].tolist()
                    self.protocol.skip_user_events([(ids[accounts[i]], oids[i]) for i in gone])
        if n_exec + n_level == n:
            if n_level:
                lv = [i for i, k in enumerate(kinds) if k == eng.EV_LEVEL]
                syms, uids, sides = rows["sym"].tolist(), rows["update_id"].tolist(), rows["side"].tolist()
                pxs, qtys = rows["px"].tolist(), rows["qty"].tolist()
                self._level_rows([syms[i] for i in lv], [uids[i] for i in lv], [sides[i] for i in lv],
                                 [pxs[i] for i in lv], [qtys[i] for i in lv], now)
        else:  # trades among them: the general path keeps their order with the depth messages
            market = rows[[i for i, k in enumerate(kinds) if k != eng.EV_EXEC]] if n_exec else rows
            self._market_events(eng.events_from_rows(market), now)

    def _level_rows(self, syms: list[int], uids: list[int], sides: list[int], pxs: list[int], qtys: list[int],
                    now: int) -> None:
        names = self._engine_syms
        n = len(syms)
        every = self.config.depth_every_batch
        touched: dict[str, int] = {}
        i = 0
        while i < n:  # runs of one symbol, in order
            s = syms[i]
            j = n if i == 0 and syms.count(s) == n else i + 1
            while j < n and syms[j] == s:
                j += 1
            sym = names[s]
            if i == 0 and j == n:
                u, sd, px, q = uids, sides, pxs, qtys
            else:
                u, sd, px, q = uids[i:j], sides[i:j], pxs[i:j], qtys[i:j]
            if not every:
                self._diff(self._pending_100, sym).add_columns(u, sd, px, q)
            self._diff(self._pending_1000, sym).add_columns(u, sd, px, q)
            touched[sym] = u[-1]
            if every:
                self._send_depth_columns(sym, u, sd, px, q, now)
            i = j
        self._touched(touched)

    def _touched(self, touched: dict[str, int]) -> None:
        for sym, uid in touched.items():
            self._last_id[sym] = uid
            self._book_ticker(sym, uid)

    @staticmethod
    def _diff(pending: dict[str, _Diff], sym: str) -> _Diff:
        d = pending.get(sym)
        if d is None:
            d = pending[sym] = _Diff()
        return d

    def _send_trade(self, e: TradePrint, now: int) -> None:
        spec = self.venue.symbols.get(e.symbol)
        if spec is not None:
            name = self._stream_names(e.symbol)[2]
            if self._has_subscriber(name):
                self._publish(name, proto.dumps(proto.trade_event(spec.instrument, e, now)))

    def _book_ticker(self, sym: str, uid: int) -> None:
        name = self._stream_names(sym)[3]
        if not self._has_subscriber(name):
            return
        snap = self.venue.depth(sym, 1)
        bid = snap.bids[0] if snap.bids else (0, 0)
        ask = snap.asks[0] if snap.asks else (0, 0)
        if self._last_bbo.get(sym) == (bid, ask):
            return
        self._last_bbo[sym] = (bid, ask)
        spec = self.venue.symbols[sym]
        self._publish(name, proto.dumps(proto.book_ticker(spec.instrument, uid, bid, ask)))

    def _send_depth(self, changes: list[LevelChange], now: int) -> None:
        """One real-time ``depthUpdate`` (``depth_every_batch``) of a batch of changes."""
        sym = changes[0].symbol
        if self.faults.drop_depth > 0:
            self.faults.drop_depth -= 1
            return
        spec = self.venue.symbols.get(sym)
        if spec is None:
            return
        self.sent_depth_messages += 1
        name = self._stream_names(sym)[0]
        if self._has_subscriber(name):
            self._publish(name, proto.depth_update_json(spec.instrument, changes, now))

    def _send_depth_columns(self, sym: str, uids: list[int], sides: list[int], pxs: list[int], qtys: list[int],
                            now: int) -> None:
        """:meth:`_send_depth` of each run of changes sharing an update id, given as columns."""
        spec = self.venue.symbols.get(sym)
        n = len(uids)
        n_msgs = n if len(set(uids)) == n else sum(1 for k in range(n) if k == 0 or uids[k] != uids[k - 1])
        drop = min(self.faults.drop_depth, n_msgs) if self.faults.drop_depth > 0 else 0
        self.faults.drop_depth -= drop
        if spec is None or drop == n_msgs:
            return
        self.sent_depth_messages += n_msgs - drop
        name = self._stream_names(sym)[0]
        if self._has_subscriber(name):
            payloads = proto.depth_updates_json(spec.instrument, uids, sides, pxs, qtys, now)
            self._publish_many(name, payloads[drop:] if drop else payloads)

    def _send_diff(self, sym: str, diff: _Diff, suffix_index: int, now: int) -> None:
        """One aggregated ``depthUpdate`` (100 ms or 1000 ms) of what a symbol's book did since the last one."""
        if self.faults.drop_depth > 0:
            self.faults.drop_depth -= 1
            return
        spec = self.venue.symbols.get(sym)
        if spec is None:
            return
        self.sent_depth_messages += 1
        name = self._stream_names(sym)[suffix_index]
        if self._has_subscriber(name):
            self._publish(name, proto.depth_diff_json(spec.instrument, diff.first, diff.last, diff.bids, diff.asks,
                                                      now))

    async def _depth_loop(self, interval_ms: int, pending: dict[str, _Diff], suffix: str) -> None:
        index = 0 if suffix == "@depth@100ms" else 1
        while True:
            await asyncio.sleep(interval_ms / 1000)
            now = self._wall()
            for sym, diff in list(pending.items()):
                if diff:
                    pending[sym] = _Diff()
                    if not (self.config.depth_every_batch and index == 0):
                        self._send_diff(sym, diff, index, now)

    async def _partial_loop(self, interval_ms: int) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            wanted: dict[tuple[str, int], str] = {}
            for c in self._clients:
                if c.stream is None:
                    continue
                for s in c.stream.streams:
                    if s.kind == "partialDepth" and s.interval_ms == interval_ms:
                        wanted[(s.symbol, s.levels)] = s.name
            for (sym, levels), name in wanted.items():
                spec = self.venue.symbols.get(sym)
                if spec is None:
                    continue
                payload = proto.dumps(proto.depth_levels(spec.instrument, self.venue.depth(sym, levels)))
                self._publish(name, payload)

    def _has_subscriber(self, stream: str) -> bool:
        for c in self._clients:
            s = c.stream
            if s is not None and s.wants(stream):
                return True
        return False

    def _publish(self, stream: str, payload: str) -> None:
        self._publish_many(stream, [payload])

    def _publish_many(self, stream: str, payloads: list[str]) -> None:
        """:meth:`_publish` of each payload (the same frames to each client, in order)."""
        faults = self.faults
        if faults.freeze_feed or faults._held:
            if faults.freeze_feed:
                faults._held.append((stream, payloads))
                return
            held, faults._held = faults._held, []
            for name, p in held:
                self._publish_many(name, p)
            if not payloads:
                return
        lat = self._lat
        delays = lat.feed.draw_many_ns(len(payloads)).tolist() if lat is not None else None
        for c in self._clients:
            s = c.stream
            if s is not None:
                frames = s.frames(stream, payloads)
                if frames is not None:
                    if delays is None:
                        c.push_many(frames)
                    else:
                        for f, d in zip(frames, delays):
                            self._push_late(c, [f], d)


class ThreadedVenue:
    """A :class:`VenueServer` on its own event loop (uvloop where installed) in a daemon thread: the embedded
    exchange for a notebook, a script or a test, next to an engine in the same process.

    >>> with ThreadedVenue(SyntheticVenue.default(), [key]) as tv:
    ...     tv.urls["ws_api"]

    The venue object belongs to the server's thread while it runs: read it from elsewhere only for checks
    (balances, open orders), and change it through the server's loop (:meth:`call`).
    """

    def __init__(self, venue: Venue, keys: Sequence[ApiKey], **server_kw) -> None:
        import threading

        self.venue = venue
        self.server: VenueServer | None = None
        self.urls: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(list(keys), server_kw), name="workbench-venue",
                                        daemon=True)

    def start(self, timeout: float = 30.0) -> "ThreadedVenue":
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the venue server did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop serving and end the thread. Idempotent."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)

    def call(self, fn: Callable[[], object], timeout: float = 10.0):
        """Run ``fn()`` on the server's loop (e.g. a fault: ``tv.call(lambda: tv.server.disconnect_all())``)."""
        async def run():
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def __enter__(self) -> "ThreadedVenue":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _main(self, keys, server_kw) -> None:
        async def serve():
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            async with VenueServer(self.venue, keys, **server_kw) as srv:
                self.server, self.urls = srv, srv.urls
                self._ready.set()
                await self._stop.wait()

        from workbench.aio import run

        try:
            run(serve())
        except BaseException as exc:  # a failed start is raised by start()
            self._error = exc
        finally:
            self._ready.set()
