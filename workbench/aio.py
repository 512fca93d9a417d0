"""Event loops for the I/O layer: uvloop where it is installed (tens of microseconds less per message on loopback
than asyncio's own loop), asyncio's otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["loop_factory", "run"]


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(coro):
    """``asyncio.run(coro)`` on the loop of :func:`loop_factory`."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
