"""Claim check: stream a large payload into the staging area without holding it in memory."""

from __future__ import annotations

import asyncio
import os
from typing import IO

from mm_bronze.storage.local import fsync_directory
from mm_bronze.storage.objects import ObjectStore, discard_upload, is_write_outage, unavailable

FLUSH_BYTES = 1024 * 1024


class StagedBlob:
    """A blob being written to ``staging`` under ``key``; ``commit`` makes it durable.

    Use as ``blob = await StagedBlob.create(...)``, then ``write`` chunks, then ``commit``
    or ``abort``. A blob that is neither committed nor aborted is removed by ``abort``.
    On an object store the blob is a multipart upload: it exists only once committed.
    """

    def __init__(self, staging: ObjectStore, key: str) -> None:
        self.staging = staging
        self.key = key
        self.url = staging.url_for(key)
        self._file: IO[bytes] | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0

    @classmethod
    async def create(cls, staging: ObjectStore, key: str) -> StagedBlob:
        blob = cls(staging, key)
        try:
            blob._file = await asyncio.to_thread(staging.open_upload, key)
        except Exception as exc:
            if is_write_outage(exc):
                raise unavailable("cannot open staging blob", exc) from exc
            raise
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
        try:
            await asyncio.to_thread(self._file.write, data)
        except Exception as exc:
            if is_write_outage(exc):
                raise unavailable("staging write failed", exc) from exc
            raise

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

        try:
            await asyncio.to_thread(finish)
        except Exception as exc:
            await asyncio.to_thread(discard_upload, file)
            if is_write_outage(exc):
                raise unavailable("staging commit failed", exc) from exc
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

    async def abort(self) -> None:
        """Discard the blob; safe to call more than once or after ``commit``."""
        file, self._file = self._file, None
        self._pending.clear()
        if file is not None:
            await asyncio.to_thread(discard_upload, file)
        await self.staging.remove(self.key)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
