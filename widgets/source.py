"""Where the panels get snapshots and send commands: an engine in this kernel, or one elsewhere over its control plane.

Both sources have the same two calls: :meth:`latest` (the newest :class:`~workbench.live.Snapshot`, or None) and
:meth:`command` (send ``kill`` / ``pause`` / ``resume`` / ``flatten`` / ``set_params`` without waiting; returns a
``concurrent.futures.Future``). Neither touches a widget: panels poll them from the kernel's own loop.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import itertools
import logging
import threading

import orjson

from workbench.live import Engine, Snapshot

__all__ = ["EngineSource", "RemoteSource", "SnapshotSource"]

log = logging.getLogger("workbench.widgets")


class SnapshotSource(abc.ABC):
    """The interface of a source (see the module docstring)."""

    @abc.abstractmethod
    def latest(self) -> Snapshot | None:
        """The newest snapshot, or None before the first."""

    @abc.abstractmethod
    def command(self, name: str, **params) -> concurrent.futures.Future:
        """Send a command without waiting; the future holds the engine's answer."""

    def close(self) -> None:
        pass


class EngineSource(SnapshotSource):
    """An :class:`~workbench.live.Engine` running in this process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __repr__(self) -> str:
        return f"EngineSource({self.engine!r})"

    def latest(self) -> Snapshot | None:
        return self.engine.snapshot()

    def command(self, name: str, **params) -> concurrent.futures.Future:
        return self.engine.command(name, **params)


class RemoteSource(SnapshotSource):
    """An engine elsewhere, through its control plane at ``url`` with ``token`` (kept out of the repr).

    A daemon thread runs the websocket client on a loop of its own, keeps the newest snapshot and reconnects (with
    backoff) when the engine goes away, so a dashboard outlives an engine restart.
    """

    def __init__(self, url: str, token: str, *, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self._token = token
        self._latest: Snapshot | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, concurrent.futures.Future] = {}
        self._ws = None
        self._stop = threading.Event()
        self._connected = threading.Event()
        self.error: str | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="workbench-remote-source", daemon=True)
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        if not self._connected.wait(connect_timeout_s):
            self.close()
            raise ConnectionError(f"could not reach the engine's control plane at {url}: {self.error or 'timeout'}")

    def __repr__(self) -> str:
        return f"RemoteSource({self.url!r}, connected={self._connected.is_set()})"

    def latest(self) -> Snapshot | None:
        return self._latest

    def command(self, name: str, **params) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if self._stop.is_set():
            fut.set_exception(RuntimeError("the source is closed"))
            return fut
        self._loop.call_soon_threadsafe(self._send, name, params, fut)
        return fut

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()

        async def _close():
            self._task.cancel()
            if self._ws is not None:
                await self._ws.close()

        try:
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(5)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # -- the client's loop ---------------------------------------------------------------------------------------------
    def _send(self, name: str, params: dict, fut: concurrent.futures.Future) -> None:
        if self._ws is None:
            fut.set_exception(ConnectionError("not connected to the engine"))
            return
        i = next(self._ids)
        self._pending[i] = fut
        asyncio.ensure_future(self._ws.send(orjson.dumps({"id": i, "cmd": name, "params": params}).decode()))

    async def _run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        backoff = 0.2
        while not self._stop.is_set():
            try:
                async with connect(self.url, additional_headers={"Authorization": f"Bearer {self._token}"},
                                   max_size=2**24, open_timeout=5) as ws:
                    self._ws, backoff, self.error = ws, 0.2, None
                    async for raw in ws:
                        msg = orjson.loads(raw)
                        if msg.get("type") == "snapshot":
                            msg.pop("type")
                            self._latest = Snapshot.from_dict(msg)
                            self._connected.set()
                        elif "id" in msg:
                            fut = self._pending.pop(msg["id"], None)
                            if fut is not None and not fut.done():
                                if msg.get("ok"):
                                    fut.set_result(msg.get("result"))
                                else:
                                    fut.set_exception(RuntimeError(msg.get("error", "refused")))
                    self.error = "the engine closed the control-plane connection"
            except InvalidStatus as exc:
                self.error = f"refused by the control plane (HTTP {exc.response.status_code}): check the token"
                log.warning("%s", self.error)
                if exc.response.status_code == 401:
                    return  # a wrong token will not get better by retrying
            except (OSError, ConnectionClosed, asyncio.TimeoutError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(ConnectionError("the connection to the engine closed"))
                self._pending.clear()
            if not self._stop.is_set():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
