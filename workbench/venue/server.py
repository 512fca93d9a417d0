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

Faults (:class:`ServerFaults`, from code or ``workbench venue --fault``): drop depth events, serve a stale
snapshot, disconnect clients, send ``serverShutdown``; error answers and "execution status unknown" come from
``protocol.faults``.
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

from workbench.venue import protocol as proto
from workbench.venue.api import ExecutionReport, LevelChange, TradePrint, Venue
from workbench.venue.keys import ApiKey

__all__ = ["ServerConfig", "ServerFaults", "VenueClock", "VenueServer"]

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
    _stale_bodies: dict = field(default_factory=dict, repr=False)


class _Client:
    """One connection: its outbox and what it is subscribed to."""

    __slots__ = ("conn", "outbox", "wake", "stream", "api", "limit", "dropped")

    def __init__(self, conn: ServerConnection, limit: int):
        self.conn = conn
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.stream: proto.StreamSession | None = None
        self.api: proto.ApiSession | None = None
        self.limit = limit
        self.dropped = False

    def push(self, frame: str) -> None:
        if self.dropped:
            return
        if len(self.outbox) >= self.limit:
            # a client that does not read: cut it off rather than hold memory or slow anyone down
            self.dropped = True
            self.outbox.clear()
            log.warning("disconnecting %s: %d frames unread", self.conn.remote_address, self.limit)
            transport = self.conn.transport
            if transport is not None:
                transport.abort()
            return
        self.outbox.append(frame)
        self.wake.set()


class VenueServer:
    """Serve ``venue`` on ``config.host:config.port`` until :meth:`stop`.

    ``keys``: the API keys clients sign with (each bound to a venue account). Use as an async context manager or
    call :meth:`start` / :meth:`stop`.
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
    ) -> None:
        self.venue = venue
        self.config = config
        self.clock = clock or VenueClock(wall=wall)
        self._wall = wall
        kw = {"config": protocol_config} if protocol_config is not None else {}
        self.protocol = proto.Protocol(venue, keys=list(keys), **kw)
        self.faults = ServerFaults()
        self._server: Server | None = None
        self._tasks: list[asyncio.Task] = []
        self._clients: set[_Client] = set()
        self._api_clients: dict[proto.ApiSession, _Client] = {}
        self._pending_100: dict[str, list[LevelChange]] = {}
        self._pending_1000: dict[str, list[LevelChange]] = {}
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
            if client.api is not None:
                self._api_clients.pop(client.api, None)
                self.protocol.close_session(client.api)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer

    async def _writer(self, client: _Client) -> None:
        conn = client.conn
        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                while client.outbox:
                    await conn.send(client.outbox.popleft())
        except ConnectionClosed:
            pass

    async def _serve_api(self, client: _Client) -> None:
        host = client.conn.remote_address[0] if client.conn.remote_address else "127.0.0.1"
        session = self.protocol.open_session(self._wall(), client=host)
        client.api = session
        self._api_clients[session] = client
        async for message in client.conn:
            replies = self.protocol.handle_ws_api(session, message, self._wall())
            for r in replies:
                await client.conn.send(r)
            # what the request set off (fills, reports, book changes) goes out now, not at the next tick
            self._dispatch(self.venue.poll())

    async def _serve_stream(self, client: _Client) -> None:
        assert client.stream is not None
        async for message in client.conn:
            for r in client.stream.handle_control(message):
                client.push(r)

    # -- market data ------------------------------------------------------------------------------------------------
    async def _market_loop(self) -> None:
        tick = self.config.tick_ms / 1000
        flat_out = math.isinf(self.clock.speed)
        t = getattr(self.venue, "start_ns", None)
        while True:
            if flat_out:
                # replay as fast as the clients take it: one slice of the recording per pass, then yield
                t = (t if t is not None else 0) + 10_000_000
                self.venue.advance(t)
                self._dispatch(self.venue.poll())
                await self._wait_for_outboxes()
                if getattr(self.venue, "finished", False):
                    await asyncio.sleep(tick)
                continue
            self.venue.advance(self.clock.now_ns())
            self._dispatch(self.venue.poll())
            if tick:
                await asyncio.sleep(tick)
            else:  # flat out (tick 0): paced by the readers, like a flat-out replay
                await self._wait_for_outboxes()

    async def _wait_for_outboxes(self) -> None:
        # flat-out replay must not outrun the slowest *reading* client's outbox, nor starve the loop
        while any(len(c.outbox) > self.config.outbox_frames // 2 for c in self._clients if not c.dropped):
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)

    def _dispatch(self, events: list) -> None:
        if not events:
            return
        now = self._wall()
        reports = [e for e in events if isinstance(e, ExecutionReport)]
        if reports:
            for session, frames in self.protocol.render_user_events(reports, now).items():
                c = self._api_clients.get(session)
                if c is not None:
                    for f in frames:
                        c.push(f)
        touched: dict[str, int] = {}
        batch: list[LevelChange] = []
        for e in events:
            if isinstance(e, LevelChange):
                self._pending_100.setdefault(e.symbol, []).append(e)
                self._pending_1000.setdefault(e.symbol, []).append(e)
                touched[e.symbol] = e.update_id
                if self.config.depth_every_batch:
                    if batch and (batch[-1].update_id != e.update_id or batch[-1].symbol != e.symbol):
                        self._send_depth(batch, "@depth@100ms", now)
                        batch = []
                    batch.append(e)
            elif isinstance(e, TradePrint):
                spec = self.venue.symbols.get(e.symbol)
                if spec is not None:
                    self._publish(f"{e.symbol.lower()}@trade", proto.dumps(proto.trade_event(spec.instrument, e, now)))
        if batch:
            self._send_depth(batch, "@depth@100ms", now)
        if self.config.depth_every_batch:
            for sym in touched:
                self._pending_100[sym] = []
        for sym, uid in touched.items():
            self._last_id[sym] = uid
            self._book_ticker(sym, uid)

    def _book_ticker(self, sym: str, uid: int) -> None:
        name = f"{sym.lower()}@bookTicker"
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

    def _send_depth(self, changes: list[LevelChange], suffix: str, now: int) -> None:
        sym = changes[0].symbol
        if self.faults.drop_depth > 0:
            self.faults.drop_depth -= 1
            return
        spec = self.venue.symbols.get(sym)
        if spec is None:
            return
        self.sent_depth_messages += 1
        self._publish(f"{sym.lower()}{suffix}", proto.depth_update_json(spec.instrument, changes, now))

    async def _depth_loop(self, interval_ms: int, pending: dict[str, list[LevelChange]], suffix: str) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            now = self._wall()
            for sym, changes in list(pending.items()):
                if changes:
                    pending[sym] = []
                    if not (self.config.depth_every_batch and suffix == "@depth@100ms"):
                        self._send_depth(changes, suffix, now)

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
        return any(c.stream is not None and c.stream.wants(stream) for c in self._clients)

    def _publish(self, stream: str, payload: str) -> None:
        for c in self._clients:
            s = c.stream
            if s is not None:
                frame = s.frame(stream, payload)
                if frame is not None:
                    c.push(frame)
