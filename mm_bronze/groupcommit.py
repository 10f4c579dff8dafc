"""Group commit: many concurrent callers, one transaction per flush.

Callers ``await submit(item)``. A caller that finds nothing pending and no flush in flight
(a group of one) runs ``flush([item])`` itself, in its own task: a lone sender pays one
round trip and no hand-off to another task. Otherwise the item joins the next group: a
flusher task takes everything pending (up to ``max_batch``), runs ``flush(items)`` once,
and resolves every caller with its outcome. While flushes run, the next batch gathers:
throughput rises with concurrency. Up to ``max_in_flight`` flushes (inline ones included)
run at once, so a batch does not wait for the previous one's commit (its WAL flush) to end
before starting: the database then flushes their commits together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommitter(Generic[T]):
    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[None]],
        max_batch: int = 256,
        max_in_flight: int = 2,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight = 0  # flushes running, inline or in the flusher's tasks
        self._flushes: set[asyncio.Task[None]] = set()
        self._inline: set[asyncio.Future[None]] = set()  # resolved when an inline flush ends
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="group-commit")

    async def close(self) -> None:
        """Flush what is pending, wait for every flush in flight (inline ones too), stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wakeup.set()
        await task
        if self._inline:
            await asyncio.gather(*self._inline)

    async def submit(self, item: T) -> None:
        """Return once ``item`` is committed; raise what the flush raised for it."""
        if self._task is None or self._closing:
            raise RuntimeError("GroupCommitter is not open")
        if self._in_flight == 0 and not self._pending:
            await self._flush_inline(item)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wakeup.set()
        await future

    async def _flush_inline(self, item: T) -> None:
        # A free slot is taken without waiting: nothing is in flight.
        await self._slots.acquire()
        self._in_flight += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inline.add(done)
        try:
            await self._flush([item])
        finally:
            self._in_flight -= 1
            self._slots.release()
            self._inline.discard(done)
            done.set_result(None)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                # Wait for a free slot first: the batch keeps growing meanwhile.
                await self._slots.acquire()
                self._in_flight += 1
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                flush = asyncio.create_task(self._flush_batch(batch))
                self._flushes.add(flush)
                flush.add_done_callback(self._flushes.discard)
            if self._closing:
                await asyncio.gather(*self._flushes)
                return

    async def _flush_batch(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self._flush([item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
        finally:
            self._in_flight -= 1
            self._slots.release()
