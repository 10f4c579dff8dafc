"""Read a request body once: enforce the limit, hash, validate, and claim-check large bodies."""

from __future__ import annotations

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
    """
    digest = hashlib.sha256()
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
        if isinstance(validator, DeferredValidator):
            metadata = await validator.finish_async()
        else:
            metadata = validator.finish()
        if staged is not None:
            await staged.commit()
    except BaseException:
        if staged is not None:
            await staged.abort()
        raise
    payload = b"".join(buffered) if staged is None else None
    return ReceivedBody(digest.hexdigest(), size, metadata, payload=payload, staged=staged)
