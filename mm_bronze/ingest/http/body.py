"""Read a request body once: enforce the limit, hash, validate, and claim-check large bodies."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from mm_bronze.errors import InvalidPayload, PayloadTooLarge
from mm_bronze.formats import PayloadValidator
from mm_bronze.formats.workers import DeferredValidator
from mm_bronze.storage import ObjectStore, StagedBlob


@dataclass
class ReceivedBody:
    sha256: str
    size: int
    metadata: dict[str, Any]
    payload: bytes | None = None
    staged: StagedBlob | None = None


async def receive_body(
    chunks: AsyncIterator[bytes],
    *,
    validator: PayloadValidator,
    max_bytes: int,
    inline_limit: int,
    staging: ObjectStore,
    staging_key: str,
) -> ReceivedBody:
    """Consume ``chunks`` and return the body's hash, size and metadata.

    Bodies up to ``inline_limit`` are returned in memory; larger ones are streamed to a
    committed staged blob. Raises ``PayloadTooLarge`` as soon as ``max_bytes`` is crossed,
    ``InvalidPayload`` for an empty or invalid body, ``StorageUnavailable`` if staging
    fails; no staged blob is left behind when it raises.

    With validation workers (a ``DeferredValidator``) and staging on a local disk, a staged
    body is neither hashed nor validated here: a worker reads it back from the file while the
    file is made durable, and both are done before this returns.
    """
    digest = hashlib.sha256()
    by_file = isinstance(validator, DeferredValidator) and staging.is_local
    size = 0
    buffered: list[bytes] = []
    staged: StagedBlob | None = None
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(max_bytes)
            if not by_file:
                digest.update(chunk)
                validator.feed(chunk)
            if staged is None and size > inline_limit:
                staged = await StagedBlob.create(staging, staging_key)
                for part in buffered:
                    await staged.write(part)
                buffered = []
            if staged is None:
                buffered.append(chunk)
            else:
                await staged.write(chunk)
        if size == 0:
            raise InvalidPayload("empty body")
        if by_file and staged is not None:
            assert isinstance(validator, DeferredValidator)
            sha256, metadata = await check_staged(staged, validator, size)
        else:
            for part in buffered if by_file else ():  # held in memory after all
                digest.update(part)
                validator.feed(part)
            if isinstance(validator, DeferredValidator):
                metadata = await validator.finish_async()
            else:
                metadata = validator.finish()
            if staged is not None:
                await staged.commit()
            sha256 = digest.hexdigest()
    except BaseException:
        if staged is not None:
            await staged.abort()
        raise
    payload = b"".join(buffered) if staged is None else None
    return ReceivedBody(sha256, size, metadata, payload=payload, staged=staged)


async def check_staged(
    staged: StagedBlob, validator: DeferredValidator, size: int
) -> tuple[str, dict[str, Any]]:
    """Hash and validate the ``size`` bytes of local ``staged`` in a worker while they are
    made durable: the sha256 and metadata once both are done, or the first error."""
    path = staged.local_path
    assert path is not None
    written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    durable = asyncio.ensure_future(staged.commit(written=written))
    try:
        await asyncio.wait((written, durable), return_when=asyncio.FIRST_COMPLETED)
        if not written.done():
            await durable  # failed before every byte was written: raises
        checked = await validator.check_file(path, size)
    except BaseException:
        await asyncio.gather(durable, return_exceptions=True)  # closed before it is removed
        raise
    await durable
    return checked
