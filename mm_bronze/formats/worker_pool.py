"""A pool of worker processes that the event loop talks to over pipes, without threads.

``ProcessPoolExecutor`` hands each call to two threads of the serving process (one pickles
and writes it, one waits for the result), and every hand-over contends for the GIL with the
event loop. Here the loop writes the call to an idle worker's pipe itself (from a thread only
when the call is large) and reads the reply when the pipe is readable (``add_reader``).
A worker that dies fails its call with ``BrokenProcessPool`` and is replaced on demand.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from typing import Any

LARGE = 64 * 1024  # calls larger than this (pickled) are written to the pipe from a thread


def _serve(conn: Connection, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    """A worker: run each call received on ``conn`` and send back its result or exception."""
    initializer(*initargs)
    while True:
        try:
            fn, args = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            reply: tuple[bool, Any] = (True, fn(*args))
        except Exception as exc:
            reply = (False, exc)
        try:
            data = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an exception that does not pickle
            data = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
        try:
            conn.send_bytes(data)
        except OSError:
            return


class _Worker:
    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.reply: asyncio.Future[bytes] | None = None  # the call in progress


class WorkerPool:
    """Up to ``size`` processes (started on demand), each set up by ``initializer``."""

    def __init__(
        self,
        size: int,
        *,
        initializer: Callable[..., None],
        initargs: tuple[Any, ...] = (),
        context: str = "spawn",
    ) -> None:
        self._size = size
        self._initializer = initializer
        self._initargs = initargs
        self._context = multiprocessing.get_context(context)
        self._workers: set[_Worker] = set()
        self._idle: list[_Worker] = []
        self._waiters: deque[asyncio.Future[_Worker | None]] = deque()
        self._starting = 0
        self._closed = False

    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self._workers]

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker: its result, or the exception it raised there;
        ``BrokenProcessPool`` if the worker died."""
        data = pickle.dumps((fn, args), pickle.HIGHEST_PROTOCOL)
        worker = await self._acquire()
        # uvloop's add_reader leaves the pipe non-blocking, and a write larger than the
        # socket buffer would then fail half-way: each call writes in blocking mode.
        os.set_blocking(worker.conn.fileno(), True)
        try:
            if len(data) > LARGE:
                await asyncio.to_thread(worker.conn.send_bytes, data)
            else:
                worker.conn.send_bytes(data)
        except OSError:
            self._discard(worker)
            raise BrokenProcessPool("a worker process died") from None
        except BaseException:  # cancelled while writing: what the worker read is unknown
            self._discard(worker)
            raise
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[bytes] = loop.create_future()
        worker.reply = reply
        loop.add_reader(worker.conn.fileno(), self._readable, worker)
        ok, value = pickle.loads(await reply)  # cancelled: the reply is read and dropped
        if not ok:
            raise value
        return value

    def _readable(self, worker: _Worker) -> None:
        asyncio.get_running_loop().remove_reader(worker.conn.fileno())
        reply, worker.reply = worker.reply, None
        try:
            # The reply has begun to arrive and the worker writes it whole: read all of it
            # (a non-blocking read would fail on a reply larger than the socket buffer).
            os.set_blocking(worker.conn.fileno(), True)
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            self._discard(worker)
            if reply is not None and not reply.done():
                reply.set_exception(BrokenProcessPool("a worker process died"))
            return
        self._release(worker)
        if reply is not None and not reply.done():
            reply.set_result(data)

    async def _acquire(self) -> _Worker:
        while True:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            if self._idle:
                return self._idle.pop()
            if len(self._workers) + self._starting < self._size:
                self._starting += 1
                try:
                    worker = await asyncio.to_thread(self._start)
                finally:
                    self._starting -= 1
                self._workers.add(worker)
                return worker
            waiter: asyncio.Future[_Worker | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                given = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self._release(waiter.result())  # type: ignore[arg-type]
                raise
            if given is not None:
                return given
            # None: a worker died, its place is free: start one.

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(  # type: ignore[attr-defined]
            target=_serve, args=(theirs, self._initializer, self._initargs), daemon=True
        )
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def _release(self, worker: _Worker) -> None:
        if self._closed or worker not in self._workers:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def _discard(self, worker: _Worker) -> None:
        self._workers.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        worker.conn.close()
        if worker.process.is_alive():
            worker.process.kill()
        while self._waiters:  # the next waiter may start a worker in its place
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Stop every worker: calls in progress fail, waiting ones too."""
        self._closed = True
        loop = asyncio.get_running_loop()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the worker pool is closed"))
        self._waiters.clear()
        workers, self._workers, self._idle = list(self._workers), set(), []
        for worker in workers:
            if worker.reply is not None:
                loop.remove_reader(worker.conn.fileno())
                if not worker.reply.done():
                    worker.reply.set_exception(RuntimeError("the worker pool is closed"))
            worker.conn.close()  # an idle worker reads the end of its pipe and exits

        def join() -> None:
            for worker in workers:
                worker.process.join(5)
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()

        await asyncio.to_thread(join)
