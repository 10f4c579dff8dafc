"""hypercorn's keep-alive timer, re-armed lazily instead of once per request.

hypercorn stops a connection's idle timer when a request arrives and starts a new one when
its response is done: one task cancelled and awaited, another created (each under a lock)
for every request. ``DeferredIdleTask`` takes its place: a request only flips a flag and
notes the time, and one watcher task per connection wakes when the keep-alive timeout may
have run out (``GRACE`` late at most), re-arming itself from the last idle moment until the
connection has really been idle that long, or the server shuts down. Either way it closes
the connection as hypercorn's own timer does.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hypercorn.asyncio.tcp_server import TCPServer

GRACE = 0.5  # seconds an idle connection may outlive its keep-alive timeout


class DeferredIdleTask:
    """A drop-in for hypercorn's ``AsyncioSingleTask`` as a ``TCPServer``'s ``idle_task``."""

    def __init__(self, server: TCPServer) -> None:
        self._server = server
        self._idle = False
        self._since = 0.0
        self._task: asyncio.Task[None] | None = None

    async def restart(self, task_group: Any, action: Any) -> None:
        """The connection is idle from now (``action``, hypercorn's own timer, is not used)."""
        self._idle = True
        self._since = self._server.loop.time()
        if self._task is None:
            self._task = task_group._task_group.create_task(self._watch())

    async def stop(self) -> None:
        """A request is being served; when the connection is closing, the watcher ends."""
        self._idle = False
        task = self._task
        if task is not None and self._server.writer.is_closing():
            self._task = None
            if task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _watch(self) -> None:
        server = self._server
        timeout = server.config.keep_alive_timeout
        while True:
            left = timeout
            if self._idle:
                left = self._since + timeout - server.loop.time()
                if left <= 0:
                    break
            try:
                await asyncio.wait_for(server.context.terminated.wait(), left + GRACE)
            except TimeoutError:
                continue
            if not self._idle:
                return  # shutting down mid-request: hypercorn closes after the response
            break
        await asyncio.shield(server._initiate_server_close())


def check() -> None:
    """Raise ``RuntimeError`` unless hypercorn's ``TCPServer`` is what this module expects."""
    init_names = getattr(getattr(TCPServer.__init__, "__code__", None), "co_names", ())
    send_names = getattr(getattr(TCPServer.protocol_send, "__code__", None), "co_names", ())
    expected = {
        "TCPServer.__init__ sets idle_task, loop, writer, context, config": {
            "idle_task",
            "loop",
            "writer",
            "context",
            "config",
        }
        <= set(init_names),
        "TCPServer.protocol_send restarts and stops idle_task": {"idle_task", "restart", "stop"}
        <= set(send_names),
        "TCPServer._initiate_server_close exists": callable(
            getattr(TCPServer, "_initiate_server_close", None)
        ),
    }
    missing = [what for what, ok in expected.items() if not ok]
    if missing:
        raise RuntimeError(
            f"hypercorn's internals changed ({'; '.join(missing)}): update idle_timer.py"
        )


def install() -> None:
    """Give every new hypercorn connection a ``DeferredIdleTask``; raises as ``check`` does."""
    check()
    original = TCPServer.__init__
    if getattr(original, "deferred_idle", False):
        return

    def __init__(self: TCPServer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.idle_task = DeferredIdleTask(self)  # type: ignore[assignment]

    __init__.deferred_idle = True  # type: ignore[attr-defined]
    TCPServer.__init__ = __init__  # type: ignore[method-assign]
