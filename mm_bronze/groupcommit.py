"""Group commit: many concurrent callers, one transaction per flush, one flush at a time.

Callers ``await submit(item)``. A caller that finds no flush in flight runs ``flush`` for
its item itself, in its own task: a lone sender pays one round trip and no hand-off to
another task. Callers that arrive while a flush is in flight wait; everything that arrives
during a flush goes into the next one. When a flush ends, every caller of its batch gets
its outcome and the oldest waiting caller leads the next flush (it was waiting to be woken
anyway): no flusher task runs between flushes. A flush that other callers wait on runs in a
task of its own, one per batch, so that cancelling its leader cannot leave them without an
answer. One flush in flight makes the groups as large as the commit latency allows: fewer
statements and fewer commits for the same items than overlapping flushes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_LEAD = object()  # a waiting caller's future result: run the next flush


class GroupCommitter(Generic[T]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[None]], max_batch: int = 256) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[object]]] = []
        # A flush runs, or a waiting caller was told to lead the next one: new callers wait.
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
            self._busy = True
            self._idle.clear()
            await self._lead([item], [])
            return
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        try:
            outcome = await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result() is _LEAD:
                self._lead_in_task()  # chosen to lead, then cancelled: the batch still goes
            raise
        if outcome is _LEAD:
            batch = self._take()
            await self._lead([entry[0] for entry in batch], [entry[1] for entry in batch])

    def _take(self) -> list[tuple[T, asyncio.Future[object]]]:
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        return batch

    async def _lead(self, items: list[T], futures: list[asyncio.Future[object]]) -> None:
        """Flush ``items``, resolve the callers waiting on ``futures``, pass the lead on.

        A lone caller's flush runs in its own task: cancelling it gives up only its own
        item. A flush that other callers wait on runs in a task of its own, so that a
        leader cancelled mid-flush (its client gone) cannot leave them without an answer.
        A caller that is gone (cancelled) has its future done already: its item still goes.
        """
        if not futures:
            try:
                await self._flush(items)
            finally:
                self._pass_lead()
            return
        task = asyncio.get_running_loop().create_task(
            self._flush_for(items, futures), name="group-commit"
        )
        self._tasks.add(task)
        task.add_done_callback(self._settled)
        await asyncio.shield(task)

    async def _flush_for(self, items: list[T], futures: list[asyncio.Future[object]]) -> None:
        try:
            await self._flush(items)
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
            self._pass_lead()

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # every caller of the batch was given it

    def _pass_lead(self) -> None:
        """Hand the next flush to the oldest waiting caller, or become idle."""
        if not self._pending:
            self._busy = False
            self._idle.set()
        elif self._pending[0][1].done():  # its caller is gone: a task of its own leads
            self._lead_in_task()
        else:
            self._pending[0][1].set_result(_LEAD)

    def _lead_in_task(self) -> None:
        async def lead() -> None:
            batch = self._take()
            try:
                await self._lead([entry[0] for entry in batch], [entry[1] for entry in batch])
            except Exception:
                pass  # every waiting caller of the batch got the error; nobody else is owed it

        task = asyncio.get_running_loop().create_task(lead(), name="group-commit")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
