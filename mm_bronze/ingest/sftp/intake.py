"""An uploaded file's bytes on their way in: hash, kind and the copy the bus event carries.

Small files travel inline in the event; larger ones go through a staged blob (claim
check): streamed into it as they arrive, or, when staging is on the local disk, the
finished spool file is hard-linked into it. A sequentially written file is never read back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from mm_bronze.ingest.sftp.digest import Digest
from mm_bronze.ingest.sftp.kind import Kind, KindDetector
from mm_bronze.storage import ObjectStore, StagedBlob

READ_CHUNK = 1024 * 1024


@dataclass
class Intake:
    """A complete file: its SHA-256, size, kind, and either inline bytes or a committed blob.

    Neither is set when the builder did not stage (``stage=False``) and the file is larger
    than the inline limit: the caller then stages the finished file.
    """

    sha256: str
    size: int
    kind: Kind
    payload: bytes | None = None
    staged: StagedBlob | None = None

    async def discard(self) -> None:
        if self.staged is not None:
            await self.staged.abort()


class IntakeBuilder:
    """Fed the file's bytes in order; ``finish`` commits the staged copy and returns the Intake.

    Raises ``StorageUnavailable`` when staging fails; ``abort`` removes any staged blob.
    """

    def __init__(
        self,
        name: str,
        *,
        staging: ObjectStore,
        staging_key: str,
        inline_limit: int,
        fhir_version: str,
        stage: bool = True,
    ) -> None:
        self._stage = stage
        self._staging = staging
        self._staging_key = staging_key
        self._inline_limit = inline_limit
        self._digest = Digest()
        self._detector = KindDetector(name, fhir_version)
        self._buffer: list[bytes] = []
        self._staged: StagedBlob | None = None
        self.size = 0

    def feed(self, chunk: bytes) -> Awaitable[None] | None:
        """Take ``chunk``; None when done, else an awaitable to await before the next feed.

        Without staging nothing waits but the hashing (see ``Digest.update``), so most
        feeds finish at once.
        """
        if not chunk:
            return None
        self.size += len(chunk)
        hashing = self._digest.update(chunk)
        self._detector.feed(chunk)
        if self._stage:
            return self._stage_chunk(chunk, hashing)
        # The caller stages the finished file itself (by hard link); keep only what could
        # still travel inline.
        if self.size <= self._inline_limit:
            self._buffer.append(chunk)
        elif self._buffer:
            self._buffer = []
        return hashing

    async def _stage_chunk(self, chunk: bytes, hashing: Awaitable[None] | None) -> None:
        if hashing is not None:
            await hashing
        if self._staged is None and self.size > self._inline_limit:
            self._staged = await StagedBlob.create(self._staging, self._staging_key)
            buffered, self._buffer = self._buffer, []
            for part in buffered:
                await self._staged.write(part)
        if self._staged is None:
            self._buffer.append(chunk)
        else:
            await self._staged.write(chunk)

    async def finish(self) -> Intake:
        kind = self._detector.finish()
        sha256 = await self._digest.hexdigest()
        if self._staged is not None:
            await self._staged.commit()
            return Intake(sha256, self.size, kind, staged=self._staged)
        if self.size > self._inline_limit:
            return Intake(sha256, self.size, kind)  # caller stages it
        return Intake(sha256, self.size, kind, payload=b"".join(self._buffer))

    async def abort(self) -> None:
        self._buffer = []
        await self._digest.close()
        if self._staged is not None:
            await self._staged.abort()
            self._staged = None


async def intake_from_file(path: Path, builder: IntakeBuilder) -> Intake:
    """Read ``path`` once through ``builder`` (used when the writes were not sequential)."""
    file = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
            if (pending := builder.feed(chunk)) is not None:
                await pending
        return await builder.finish()
    except BaseException:
        await builder.abort()
        raise
    finally:
        await asyncio.to_thread(file.close)
