"""The control plane: a websocket on 127.0.0.1 to watch and command a running engine from elsewhere.

A dashboard in another kernel, or ``workbench kill``, connects to ``ws://127.0.0.1:PORT/`` with the engine's token
in an ``Authorization: Bearer <token>`` header (or ``?token=`` in the URL, for browsers). A missing or wrong token
is refused at the handshake (HTTP 401) and logged, without the token. Once in, the client receives the engine's
snapshots as ``{"type": "snapshot", ...}`` (latest wins: a slow client gets fewer, never stale ones) and may send
commands ``{"id": 1, "cmd": "kill" | "pause" | "resume" | "flatten" | "stop" | "set_params" | "snapshot",
"params": {...}}``, answered ``{"id": 1, "ok": true, "result": ...}`` or ``{"id": 1, "ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from workbench.exceptions import ConfigError

__all__ = ["ControlServer", "COMMANDS", "new_token"]

log = logging.getLogger("workbench.control")

COMMANDS = ("kill", "pause", "resume", "flatten", "stop", "set_params", "snapshot")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _fields(obj) -> dict:
    """A snapshot (or any dataclass) as a shallow dict: ``to_dict()`` where there is one (no deep copy on the
    engine's loop), else ``dataclasses.asdict``."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def _json(obj) -> bytes:
    return orjson.dumps(_fields(obj), option=orjson.OPT_NON_STR_KEYS)


class ControlServer:
    """Serve ``commands`` (name -> coroutine function taking the params dict) and ``snapshot()`` to token holders.

    Runs on the caller's event loop (the engine's). ``token``: given, or a new random one.
    """

    def __init__(self, commands: dict[str, Callable[[dict], Awaitable[object]]], snapshot: Callable[[], object], *,
                 host: str = "127.0.0.1", port: int = 0, token: str | None = None, snapshot_hz: float = 10.0):
        if token is not None and len(token) < 16:
            raise ConfigError("a control token must be at least 16 characters")
        self.token = token or new_token()
        self.commands = commands
        self.snapshot = snapshot
        self.host, self.port = host, port
        self.snapshot_hz = snapshot_hz
        self.refused = 0
        self._server: Server | None = None
        self._clients: set[ServerConnection] = set()

    def __repr__(self) -> str:
        return f"ControlServer({self.url})"

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    async def start(self) -> "ControlServer":
        self._server = await serve(self._handler, self.host, self.port, process_request=self._check,
                                   compression=None, server_header="workbench-engine",
                                   logger=logging.getLogger("workbench.control.ws"))
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        got = ""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            got = auth[7:].strip()
        else:
            got = (parse_qs(urlsplit(request.path).query).get("token") or [""])[0]
        if got and hmac.compare_digest(got.encode(), self.token.encode()):
            return None
        self.refused += 1
        peer = conn.remote_address[0] if conn.remote_address else "?"
        log.warning("control plane: refused a connection from %s (%s token)", peer, "wrong" if got else "no")
        body = b'{"error":"a valid token is required"}'
        return Response(401, HTTPStatus(401).phrase,
                        Headers({"Content-Type": "application/json", "Content-Length": str(len(body))}), body)

    async def _handler(self, conn: ServerConnection) -> None:
        self._clients.add(conn)
        pusher = asyncio.create_task(self._push(conn))
        try:
            async for text in conn:
                await conn.send((await self._command(text)).decode())
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(conn)
            pusher.cancel()

    async def _push(self, conn: ServerConnection) -> None:
        # each new snapshot once, soon after it is published (the engine publishes at snapshot_hz at most); a
        # fixed-rate timer of its own would beat against the engine's and send some twice and skip others
        poll = min(0.005, 1 / (4 * self.snapshot_hz))
        last = None
        try:
            while True:
                snap = self.snapshot()
                if snap is not None and snap is not last:
                    last = snap
                    msg = {"type": "snapshot", **_fields(snap)}
                    await conn.send(_json(msg).decode())  # waits for a slow reader: it skips snapshots, never queues
                await asyncio.sleep(poll)
        except (ConnectionClosed, asyncio.CancelledError):
            pass

    async def _command(self, text) -> bytes:
        try:
            msg = orjson.loads(text)
            rid, cmd, params = msg.get("id"), msg.get("cmd"), msg.get("params") or {}
        except (ValueError, AttributeError):
            return _json({"id": None, "ok": False, "error": "malformed JSON command"})
        fn = self.commands.get(cmd)
        if fn is None:
            return _json({"id": rid, "ok": False, "error": f"unknown command {cmd!r} (one of {', '.join(COMMANDS)})"})
        if not isinstance(params, dict):
            return _json({"id": rid, "ok": False, "error": "params must be an object"})
        try:
            result = await fn(params)
        except Exception as exc:  # a bad parameter value: the answer says why; the engine goes on
            return _json({"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        log.info("control plane: %s done", cmd)
        return _json({"id": rid, "ok": True, "result": result})
