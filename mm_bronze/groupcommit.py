"""Group commit: many concurrent callers, one transaction per flush, one flush at a time.

Callers ``await submit(item)``. A caller that finds no flush in flight runs ``flush`` for
its item itself, in its own task: a lone sender pays one round trip and no hand-off to
another task. Callers that arrive while a flush is in flight wait; everything that arrives
during a flush goes into the next one, which starts as the flush ends, in a task of its own
(one per batch, no long-lived flusher task), so that no waiting caller's cancellation (its
client gone) can fail or hold up the others. One flush in flight makes the groups as large as
the commit latency allows: fewer statements and fewer commits for the same items than
overlapping flushes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommitter(Generic[T]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[None]], max_batch: int = 256) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        # A flush runs or is about to: new callers wait for the next one.
        self._busy = False
        self._idle = asyncio.Event()  # set whenever no flush runs or is due (for close)
        self._idle.set()
        self._tasks: set[asyncio.Task[None]] = set()  # batch flushes running in tasks of their own
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        """Stop taking items; wait until every item submitted so far has been flushed."""
        if not self._open:
            return
        self._open = False
        await self._idle.wait()

    async def submit(self, item: T) -> None:
        """Return once ``item`` is committed; raise what the flush raised for it."""
        if not self._open:
            raise RuntimeError("GroupCommitter is not open")
        if not self._busy:
            # A lone caller flushes in its own task: cancelling it gives up only its item.
            self._busy = True
            self._idle.clear()
            try:
                await self._flush([item])
            finally:
                self._next()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        await future  # cancelled: the item still goes, its outcome unread

    async def _flush_batch(self) -> None:
        # Taken when the task starts: what arrived since the last flush ended joins too.
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        futures = [future for _, future in batch]
        try:
            await self._flush([item for item, _ in batch])
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else RuntimeError("flush cancelled")
            for future in futures:
                if not future.done():
                    future.set_exception(failure)
            raise
        else:
            for future in futures:
                if not future.done():
                    future.set_result(None)
        finally:
            self._next()

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # every caller of the batch was given it

    def _next(self) -> None:
        """Start the next flush, in a task of its own, if items wait; else become idle."""
        if self._pending:
            task = asyncio.get_running_loop().create_task(self._flush_batch(), name="group-commit")
            self._tasks.add(task)
            task.add_done_callback(self._settled)
        else:
            self._busy = False
            self._idle.set()
