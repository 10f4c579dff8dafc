"""Validation in worker processes, so large payloads are checked on every core.

Structure checks are pure Python: a 360 KB Synthea bundle costs tens of milliseconds of
CPU. Run in the event loop they serialise every request behind one core and stall the
loop; in a process pool they run in parallel and the loop stays responsive.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mm_bronze import collector
from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.base import PayloadValidator
from mm_bronze.formats.worker_pool import WorkerPool

Job = tuple[str, str, "str | None", str]  # format, content_type, version, level
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
BUFFER_LIMIT = 4 * 1024 * 1024  # bodies held whole for a worker; larger ones stream
READ_CHUNK = 1024 * 1024  # a staged file over BUFFER_LIMIT is read and checked in such pieces


def _start_worker(parent: int) -> None:
    """Worker set-up: die with the parent, leave Ctrl-C to it; collect as servers do."""
    collector.tune()
    # Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A SIGKILLed parent runs no clean-up: have the kernel kill this worker then
    # (PR_SET_PDEATHSIG), and exit now if the parent is already gone.
    exit_with_parent()
    if os.getppid() != parent:
        os._exit(1)


def exit_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _validate(job: Job, body: bytes) -> tuple[str, Any]:
    from mm_bronze.formats import validator_for

    format, content_type, version, level = job
    try:
        validator = validator_for(format, content_type, version=version, level=level)
        validator.feed(body)
        return ("ok", validator.finish())
    except InvalidPayload as exc:
        return _invalid(exc)


def _check_file(job: Job, path: str, size: int) -> tuple[str, Any]:
    """Hash and validate the ``size`` bytes staged at ``path``: ``("ok", (sha256, metadata))``
    or ``("invalid", ...)`` as ``_validate``. Up to ``BUFFER_LIMIT`` the file is read at once
    (one copy, no pipe); larger files are read and checked piece by piece (bounded memory)."""
    from mm_bronze.formats import validator_for

    format, content_type, version, level = job
    digest = hashlib.sha256()
    read = 0
    try:
        validator = validator_for(format, content_type, version=version, level=level)
        with open(path, "rb", buffering=0) as file:
            while read < size:
                piece = file.read(size if size <= BUFFER_LIMIT else READ_CHUNK)
                if not piece:
                    break
                read += len(piece)
                digest.update(piece)
                validator.feed(piece)
        if read != size:
            raise OSError(f"staged file holds {read} bytes, {size} were written")
        return ("ok", (digest.hexdigest(), validator.finish()))
    except InvalidPayload as exc:
        return _invalid(exc)


def _invalid(exc: InvalidPayload) -> tuple[str, Any]:
    """A worker's ``InvalidPayload`` as a picklable outcome; ``_raise_invalid`` undoes it."""
    return ("invalid", (exc.reason, exc.location, exc.issues, exc.code))


def _raise_invalid(value: Any) -> None:
    reason, location, issues, code = value
    raise InvalidPayload(reason, location=location, issues=issues, code=code)


class ValidationWorkers:
    """A pool of ``workers`` processes (started on first use); ``close`` stops them."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: WorkerPool | None = None

    async def open(self) -> None:
        if self._pool is None:
            self._pool = WorkerPool(
                self._workers, initializer=_start_worker, initargs=(os.getpid(),)
            )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _running(self) -> WorkerPool:
        if self._pool is None:
            raise RuntimeError("ValidationWorkers is not open")
        return self._pool

    async def validate(self, job: Job, body: bytes) -> dict[str, Any]:
        """Validate ``body`` in a worker: its metadata, or ``InvalidPayload`` as raised there."""
        return dict(await self._run(_validate, job, body))

    async def check_file(self, job: Job, path: str, size: int) -> tuple[str, dict[str, Any]]:
        """Hash and validate the ``size`` bytes written at ``path`` in a worker, which reads
        them from the file (the body never crosses the pipe): the sha256 and the metadata,
        or ``InvalidPayload`` as raised there."""
        sha256, metadata = await self._run(_check_file, job, path, size)
        return sha256, dict(metadata)

    async def _run(self, fn: Callable[..., tuple[str, Any]], *args: Any) -> Any:
        """``fn(*args)``'s value in a worker, or its ``InvalidPayload`` raised here."""
        try:
            outcome, value = await self._running().run(fn, *args)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): check in a thread this time; the pool
            # starts another worker in its place when one is needed.
            outcome, value = await asyncio.to_thread(fn, *args)
        if outcome == "invalid":
            _raise_invalid(value)
        return value


class DeferredValidator:
    """Wraps the request's ``validator``: buffers the body and validates it in ``workers``.

    Bodies under ``small`` bytes are checked here by ``validator`` (a worker round trip
    costs more than the check). A body over ``buffer_limit`` is streamed into ``validator``
    from then on, so memory stays bounded.
    """

    def __init__(
        self,
        validator: PayloadValidator,
        job: Job,
        workers: ValidationWorkers,
        *,
        small: int = 64 * 1024,
        buffer_limit: int = BUFFER_LIMIT,
    ) -> None:
        self._validator = validator
        self._job = job
        self._workers = workers
        self._small = small
        self._limit = buffer_limit
        self._chunks: list[bytes] = []
        self._size = 0
        self._streaming = False

    def feed(self, chunk: bytes) -> None:
        if self._streaming:
            self._validator.feed(chunk)
            return
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > self._limit:
            self._streaming = True
            for part in self._chunks:
                self._validator.feed(part)
            self._chunks = []

    def finish(self) -> dict[str, Any]:
        if not self._streaming:
            self._validator.feed(b"".join(self._chunks))
        return self._validator.finish()

    async def finish_async(self) -> dict[str, Any]:
        if self._streaming or self._size < self._small:
            return self.finish()
        return await self._workers.validate(self._job, b"".join(self._chunks))

    async def check_file(self, path: str, size: int) -> tuple[str, dict[str, Any]]:
        """The sha256 and metadata of a body written whole to the local file ``path`` (and
        never fed here): a worker reads, hashes and validates it."""
        return await self._workers.check_file(self._job, path, size)
