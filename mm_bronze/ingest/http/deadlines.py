"""Deadlines for many waits on one shared timer, a cheap stand-in for ``asyncio.timeout``.

``asyncio.timeout`` schedules and cancels a timer handle for every wait it bounds: for the
door, one per chunk of every request body. ``SharedDeadlines`` keeps one timer for all of
them instead, ticking every ``TICK`` seconds only while some wait is armed; a wait whose
deadline has passed at a tick is cancelled and ``Deadline`` turns that into ``TimeoutError``.
A deadline thus fires up to ``TICK`` seconds late, never early.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

TICK = 0.25


class SharedDeadlines:
    """The timer shared by every ``Deadline`` made from it (one event loop)."""

    def __init__(self, tick: float = TICK) -> None:
        self.tick = tick
        self._armed: set[Deadline] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def deadline(self, timeout: float) -> Deadline:
        """A deadline of ``timeout`` seconds for each wait of the current task."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs a running task")
        if self._loop is None:
            self._loop = task.get_loop()
        return Deadline(self, task, timeout)

    def _arm(self, deadline: Deadline) -> None:
        loop = self._loop
        assert loop is not None
        deadline.due = loop.time() + deadline.timeout
        self._armed.add(deadline)
        if self._handle is None:
            self._handle = loop.call_later(self.tick, self._on_tick)

    def _on_tick(self) -> None:
        self._handle = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        for deadline in [d for d in self._armed if d.due <= now]:
            self._armed.discard(deadline)
            deadline.expired = True
            deadline.task.cancel()
        if self._armed:
            self._handle = loop.call_later(self.tick, self._on_tick)


class Deadline:
    """``with deadline:`` bounds one wait by ``timeout`` seconds (``TimeoutError`` past it);
    the same deadline serves the task's next wait again."""

    __slots__ = ("_shared", "due", "expired", "task", "timeout")

    def __init__(self, shared: SharedDeadlines, task: asyncio.Task[object], timeout: float):
        self._shared = shared
        self.task = task
        self.timeout = timeout
        self.due = 0.0
        self.expired = False

    def __enter__(self) -> Deadline:
        self.expired = False
        self._shared._arm(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._shared._armed.discard(self)
        if self.expired and kind is asyncio.CancelledError and self.task.uncancel() == 0:
            raise TimeoutError() from exc
