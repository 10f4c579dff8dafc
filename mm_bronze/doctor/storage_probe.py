"""Write, read back and delete a probe object in the raw store and in the staging area."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from mm_bronze.doctor.check import Check, bounded, describe, failed, passed
from mm_bronze.settings import Settings
from mm_bronze.storage import ObjectStore, StagedBlob
from mm_bronze.storage.compression import decode

PROBE_DIR = "_doctor"
STORAGE_FIX = (
    "check storage.url (RAW_STORAGE_URL) and storage.options: the endpoint must be reachable "
    "from this host, the directory or bucket must exist and these credentials must allow "
    "writing, reading and deleting objects"
)
STAGING_FIX = (
    "check storage.staging_url (default: <storage.url>/_staging) and storage.options: the "
    "same rights are needed there; large payloads are staged before they are published"
)
# The probe tries each S3 call once and connects for at most this long: botocore's retries
# with backoff would spend ~5 s a call on an endpoint that refuses connections, the probe
# makes several calls, and the error is the same on every try. `serve` keeps the configured
# retries. (gcsfs and adlfs take no per-client retry setting: the check's timeout bounds them.)
PROBE_CONNECT_TIMEOUT = 3.0
PROBE_S3_RETRIES = {"mode": "standard", "total_max_attempts": 1}


async def check_storage(settings: Settings) -> list[Check]:
    """Two checks: ``storage`` (raw objects) and ``staging`` (claim-checked payloads)."""
    options, compression = settings.storage.options, settings.storage.compression
    raw = ObjectStore(
        settings.storage_url, probe_options(settings.storage_url, options), compression=compression
    )
    staging = ObjectStore(settings.staging_url, probe_options(settings.staging_url, options))
    # At the same time: a store that does not answer costs the doctor its timeout once, not twice.
    checks = await asyncio.gather(
        bounded("storage", lambda: _check_store("storage", raw, STORAGE_FIX), STORAGE_FIX),
        bounded("staging", lambda: _check_store("staging", staging, STAGING_FIX), STAGING_FIX),
    )
    return list(checks)


def probe_options(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for probing ``url``: on S3, one try per call and a short connect timeout."""
    if fsspec.core.split_protocol(url)[0] not in ("s3", "s3a"):
        return options
    config = dict(options.get("config_kwargs") or {})
    config["retries"] = PROBE_S3_RETRIES
    config["connect_timeout"] = min(
        config.get("connect_timeout", PROBE_CONNECT_TIMEOUT), PROBE_CONNECT_TIMEOUT
    )
    return {**options, "config_kwargs": config}


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
