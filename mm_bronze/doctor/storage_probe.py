"""Write, read back and delete a probe object in the raw store and in the staging area."""

from __future__ import annotations

import os
import uuid

from mm_bronze.doctor.check import Check, describe, failed, passed
from mm_bronze.settings import Settings
from mm_bronze.storage import ObjectStore, StagedBlob, StorageRegistry
from mm_bronze.storage.compression import decode

PROBE_DIR = "_doctor"
STORAGE_FIX = (
    "check storage.url (RAW_STORAGE_URL) and storage.options: the directory or bucket must "
    "exist and these credentials must allow writing, reading and deleting objects"
)
STAGING_FIX = (
    "check storage.staging_url (default: <storage.url>/_staging) and storage.options: the "
    "same rights are needed there; large payloads are staged before they are published"
)


async def check_storage(settings: Settings) -> list[Check]:
    """Two checks: ``storage`` (raw objects) and ``staging`` (claim-checked payloads)."""
    registry = StorageRegistry(
        settings.storage_url,
        settings.staging_url,
        settings.storage.path_template,
        settings.storage.options,
        compression=settings.storage.compression,
    )
    try:
        await registry.open()
    except Exception as exc:
        detail = f"cannot open {settings.storage_url}: {describe(exc)}"
        return [failed("storage", detail, STORAGE_FIX), failed("staging", detail, STAGING_FIX)]
    try:
        return [
            await _probe("storage", registry.raw, raw=True, fix=STORAGE_FIX),
            await _probe("staging", registry.staging, raw=False, fix=STAGING_FIX),
        ]
    finally:
        await registry.close()


async def _probe(name: str, store: ObjectStore, *, raw: bool, fix: str) -> Check:
    data = os.urandom(32) + b" mm-bronze doctor probe"
    key = f"{PROBE_DIR}/probe-{uuid.uuid4().hex}{store.codec.suffix}"
    step = "write"
    try:
        if raw:
            await store.put_bytes(key, data)
        else:
            blob = await StagedBlob.create(store, key)
            await blob.write(data)
            await blob.commit()
        step = "read"
        stored = await store.read_bytes(key)
        if b"".join(decode(store.codec.name, (stored,))) != data:
            return failed(name, f"{store.url}: the probe object read back differs", fix)
        step = "delete"
        await store.remove(key)
        if await store.exists(key):
            return failed(name, f"{store.url}: the probe object is still there after delete", fix)
    except Exception as exc:
        await _clean(store, key)
        return failed(name, f"{store.url}: {step} failed: {describe(exc)}", fix)
    await _clean(store, key)
    codec = f", {store.codec.name} compression" if store.codec.name != "none" else ""
    return passed(name, f"{store.url}: write, read and delete of a probe object{codec}")


async def _clean(store: ObjectStore, key: str) -> None:
    """Remove what the probe left: its object and, on a filesystem, its empty directory."""
    try:
        await store.remove(key)
        if store.is_local:
            os.rmdir(store.path(PROBE_DIR))
    except Exception:
        # Another run's probe may share the directory; a store that fails here has already
        # failed the check, which says so.
        pass
