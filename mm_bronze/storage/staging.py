"""Claim check: stream a large payload into the staging area without holding it in memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import IO, Any

import structlog

from mm_bronze.errors import StorageUnavailable
from mm_bronze.storage.local import fsync_directory
from mm_bronze.storage.objects import ObjectStore, discard_upload, is_write_outage, unavailable

log = structlog.get_logger(__name__)

FLUSH_BYTES = 1024 * 1024


class StagedBlob:
    """A blob being written to ``staging`` under ``key``; ``commit`` makes it durable.

    Use as ``blob = await StagedBlob.create(...)``, then ``write`` chunks, then ``commit``
    or ``abort``. A blob that is neither committed nor aborted is removed by ``abort``.
    On an object store the blob is a multipart upload: it exists only once committed.

    On a remote store each call is bounded by the store's ``call_timeout``: past it the door
    answers "unavailable" (``StorageUnavailable``) instead of waiting for a store that does
    not answer. The call goes on on its thread; a commit that ends after the blob was aborted
    removes what it published. Calls to a local disk have no deadline: a commit's fsync
    takes as long as the body is large.
    """

    def __init__(self, staging: ObjectStore, key: str) -> None:
        self.staging = staging
        self.key = key
        self.url = staging.url_for(key)
        self._file: IO[bytes] | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._aborted = False
        self._stuck = False  # a call was given up (deadline, cancel) and may still be running

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the staging store's threads, within its ``call_timeout`` if it is
        remote; an outage (or no answer in time) raised as ``StorageUnavailable``."""
        try:
            return await self.staging.call(what, fn, *args, timeout=self.staging.deadline)
        except (StorageUnavailable, asyncio.CancelledError):
            self._stuck = True  # the deadline, or the request cancelled: the call goes on
            raise
        except Exception as exc:
            if is_write_outage(exc):
                raise unavailable(what, exc) from exc
            raise

    @classmethod
    async def create(cls, staging: ObjectStore, key: str) -> StagedBlob:
        blob = cls(staging, key)
        blob._file = await blob._call("cannot open staging blob", staging.open_upload, key)
        return blob

    async def write(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= FLUSH_BYTES:
            await self._flush()

    @property
    def local_path(self) -> str | None:
        """The blob's file while it is written on a local disk (else None)."""
        return self.staging.path(self.key) if self.staging.is_local else None

    def _take_pending(self) -> bytes:
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        return data

    async def _flush(self) -> None:
        if not self._pending:
            return
        data = self._take_pending()
        assert self._file is not None
        await self._call("staging write failed", self._file.write, data)

    async def commit(self, written: asyncio.Future[None] | None = None) -> None:
        """Flush, make durable and close; after this the blob survives a crash.

        ``written``, if given, is resolved once every byte is in the file, before it is
        durable: from then on another process can read them at ``local_path``. One trip to
        a thread does both.
        """
        data = self._take_pending()
        file, self._file = self._file, None
        assert file is not None
        loop = asyncio.get_running_loop()

        def finish() -> None:
            if data:
                file.write(data)
            if written is not None:
                if self.staging.is_local:
                    file.flush()
                loop.call_soon_threadsafe(_resolve, written)
            self._finish(file)
            if self._aborted:  # a commit that outlived its deadline: nobody will read it
                self._remove_late()

        try:
            await self._call("staging commit failed", finish)
        except Exception:
            if not self._stuck:  # else the file is still being closed, on its thread
                with contextlib.suppress(Exception):
                    await self._call("cannot discard staging blob", discard_upload, file)
            raise

    def _finish(self, file: IO[bytes]) -> None:
        if self.staging.is_local:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            # The file's name is durable only once its directory is.
            fsync_directory(os.path.dirname(file.name))
            return
        file.close()

    def _remove_late(self) -> None:
        try:
            self.staging.remove_blocking(self.key)
        except Exception as exc:
            log.warning("aborted staging blob not removed", key=self.key, error=type(exc).__name__)

    def _discard_late(self, file: IO[bytes] | None) -> None:
        if file is not None:
            discard_upload(file)
        self._remove_late()

    async def abort(self) -> None:
        """Discard the blob; safe to call more than once or after ``commit``.

        Never raises for an outage. When a call was given up (the store did not answer in
        time, or the caller was cancelled: a shutdown), the removal is left to the store's
        threads for when it answers (a commit still running then removes its own blob), and
        ``abort`` returns at once; an unfinished upload left behind expires by itself."""
        self._aborted = True  # before any removal: a commit still running removes its blob
        file, self._file = self._file, None
        self._pending.clear()
        if self._stuck:
            self.staging.call_later(self._discard_late, file)
            log.warning("staging blob to be removed once the store answers", key=self.key)
            return
        try:
            if file is not None:
                await self._call("cannot discard staging blob", discard_upload, file)
            await self._call("cannot remove staging blob", self.staging.remove_blocking, self.key)
        except StorageUnavailable as exc:
            log.warning("staging blob not removed", key=self.key, error=str(exc))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
