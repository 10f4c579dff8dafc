"""Storage: fsspec object stores for raw objects and staged blobs."""

from __future__ import annotations

from typing import Any

from mm_bronze.storage.layout import check_template, object_key
from mm_bronze.storage.objects import ObjectStore
from mm_bronze.storage.staging import StagedBlob


class StorageRegistry:
    """The raw object store and the staging store, opened and closed together."""

    def __init__(
        self, raw_url: str, staging_url: str, path_template: str, options: dict[str, Any]
    ) -> None:
        check_template(path_template)
        self.path_template = path_template
        self.raw = ObjectStore(raw_url, options)
        self.staging = ObjectStore(staging_url, options)

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
