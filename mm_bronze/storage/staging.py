"""Claim check: stream a large payload into the staging area without holding it in memory."""

from __future__ import annotations

import asyncio
import os
from typing import IO, Any

from mm_bronze.errors import StorageUnavailable
from mm_bronze.storage.objects import ObjectStore

FLUSH_BYTES = 1024 * 1024


class StagedBlob:
    """A blob being written to ``staging`` under ``key``; ``commit`` makes it durable.

    Use as ``blob = await StagedBlob.create(...)``, then ``write`` chunks, then ``commit``
    or ``abort``. A blob that is neither committed nor aborted is removed by ``abort``.
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
            blob._file = await asyncio.to_thread(blob._open)
        except OSError as exc:
            raise StorageUnavailable(f"cannot open staging blob: {type(exc).__name__}") from exc
        return blob

    def _open(self) -> IO[bytes]:
        path = self.staging.path(self.key)
        if self.staging.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return open(path, "wb")
        fs: Any = self.staging.fs
        return fs.open(path, "wb")

    async def write(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= FLUSH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        assert self._file is not None
        try:
            await asyncio.to_thread(self._file.write, data)
        except OSError as exc:
            raise StorageUnavailable(f"staging write failed: {type(exc).__name__}") from exc

    async def commit(self) -> None:
        """Flush, make durable and close; after this the blob survives a crash."""
        await self._flush()
        file, self._file = self._file, None
        assert file is not None
        try:
            await asyncio.to_thread(self._finish, file)
        except OSError as exc:
            raise StorageUnavailable(f"staging commit failed: {type(exc).__name__}") from exc

    def _finish(self, file: IO[bytes]) -> None:
        if self.staging.is_local:
            file.flush()
            os.fsync(file.fileno())
        file.close()

    async def abort(self) -> None:
        """Discard the blob; safe to call more than once or after ``commit``."""
        file, self._file = self._file, None
        self._pending.clear()
        if file is not None:
            await asyncio.to_thread(file.close)
        await self.staging.remove(self.key)
