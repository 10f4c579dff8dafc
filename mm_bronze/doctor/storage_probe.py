"""Write, read back and delete a probe object in the raw store and in the staging area."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from mm_bronze.doctor.check import Check, bounded, describe, failed, passed
from mm_bronze.settings import Settings
from mm_bronze.storage import ObjectStore, StagedBlob
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
    options, compression = settings.storage.options, settings.storage.compression
    raw = ObjectStore(settings.storage_url, options, compression=compression)
    staging = ObjectStore(settings.staging_url, options)
    return [
        await bounded("storage", lambda: _check_store("storage", raw, STORAGE_FIX), STORAGE_FIX),
        await bounded(
            "staging", lambda: _check_store("staging", staging, STAGING_FIX), STAGING_FIX
        ),
    ]


async def _check_store(name: str, store: ObjectStore, fix: str) -> Check:
    missing = _not_created(store.url)
    if missing is not None:
        # Opening the store would create its directory: the doctor leaves that to `serve`.
        return _creatable(name, store.url, missing, fix)
    try:
        await store.open()
    except Exception as exc:
        return failed(name, f"cannot open {store.url}: {describe(exc)}", fix)
    try:
        return await _probe(name, store, raw=name == "storage", fix=fix)
    finally:
        await store.close()


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


def _not_created(url: str) -> Path | None:
    """The local directory of ``url`` when it does not exist yet, else None."""
    if (fsspec.core.split_protocol(url)[0] or "file") not in ("file", "local"):
        return None
    path = Path(LocalFileSystem._strip_protocol(url))
    return None if path.exists() else path


def _creatable(name: str, url: str, missing: Path, fix: str) -> Check:
    """A directory that does not exist yet passes when `serve` will be able to create it."""
    parent = missing.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return passed(name, f"{url}: not created yet; `mm-bronze serve` creates it in {parent}")
    return failed(name, f"{url}: does not exist and cannot be created in {parent}", fix)
