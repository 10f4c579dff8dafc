"""Storage: fsspec object stores for raw objects and staged blobs."""

from __future__ import annotations

from typing import Any

from mm_bronze.models import IngestEvent
from mm_bronze.storage.compression import codec_for
from mm_bronze.storage.layout import check_template, object_key
from mm_bronze.storage.objects import ObjectStore
from mm_bronze.storage.staging import StagedBlob


class StorageRegistry:
    """The raw object store and the staging store, opened and closed together.

    Raw objects are compressed with ``compression`` (``none``, ``gzip``, ``zstd``); staged
    blobs never are, since they are read back once and removed. ``staging_timeout`` bounds
    each call a door makes to a staged blob (see ``StagedBlob``).
    """

    def __init__(
        self,
        raw_url: str,
        staging_url: str,
        path_template: str,
        options: dict[str, Any],
        *,
        compression: str = "none",
        staging_timeout: float | None = None,
    ) -> None:
        check_template(path_template)
        self.path_template = path_template
        self.compression = codec_for(compression).name
        self.raw = ObjectStore(raw_url, options, compression=compression)
        self.staging = ObjectStore(staging_url, options, call_timeout=staging_timeout)

    def object_key(self, event: IngestEvent) -> str:
        """The raw object key of ``event``'s payload, with the compression suffix."""
        return object_key(self.path_template, event) + self.raw.codec.suffix

    async def open(self) -> None:
        await self.raw.open()
        await self.staging.open()

    async def close(self) -> None:
        await self.staging.close()
        await self.raw.close()

    async def __aenter__(self) -> StorageRegistry:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["ObjectStore", "StagedBlob", "StorageRegistry", "check_template", "object_key"]
