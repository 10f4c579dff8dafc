"""A body staged on a local disk is hashed and validated by a worker from its file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats import validator_for
from mm_bronze.formats.workers import DeferredValidator, ValidationWorkers
from mm_bronze.ingest.http.body import receive_body
from mm_bronze.storage import ObjectStore
from tests.formats.test_workers import INVALID, VALID, inline


async def pieces(body: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


class NoPipe(ValidationWorkers):
    """Workers that refuse a body sent through the pipe: only its file may reach them."""

    async def validate(self, job: object, body: bytes) -> dict:
        raise AssertionError("the body was sent to a worker through the pipe")


async def receive(body: bytes, store: ObjectStore, workers: ValidationWorkers, key: str):
    validator = DeferredValidator(
        validator_for("fhir", "json", version="R4"), ("fhir", "json", "R4", "strict"), workers
    )
    return await receive_body(
        pieces(body),
        validator=validator,
        max_bytes=len(body) * 2,
        inline_limit=64 * 1024,
        staging=store,
        staging_key=key,
    )


async def test_staged_body_is_checked_from_its_file(tmp_path: Path) -> None:
    workers = NoPipe(1)
    await workers.open()
    try:
        async with ObjectStore(tmp_path.as_uri()) as store:
            body = await receive(VALID, store, workers, "api/valid")
            assert body.staged is not None and body.payload is None
            assert body.sha256 == hashlib.sha256(VALID).hexdigest()
            assert body.metadata == inline(VALID)
            assert (tmp_path / "api" / "valid").read_bytes() == VALID

            with pytest.raises(InvalidPayload) as rejected:
                await receive(INVALID, store, workers, "api/invalid")
            with pytest.raises(InvalidPayload) as in_process:
                inline(INVALID)
            assert rejected.value.reason == in_process.value.reason
            assert rejected.value.location == in_process.value.location
            assert not (tmp_path / "api" / "invalid").exists()  # nothing staged is left
    finally:
        await workers.close()


async def test_worker_reads_a_large_staged_file_in_pieces(tmp_path: Path) -> None:
    """Over 4 MiB the worker streams the file through the validator, as the door did."""
    entries = b",".join(b'{"resource": {"resourceType": "Basic", "id": "b%d", "code": {}}}' % i
                        for i in range(65_000))  # fmt: skip
    large = b'{"resourceType": "Bundle", "type": "collection", "entry": [' + entries + b"]}"
    assert len(large) > 4 * 1024 * 1024
    path = tmp_path / "large"
    path.write_bytes(large)
    workers = ValidationWorkers(1)
    await workers.open()
    try:
        sha256, metadata = await workers.check_file(
            ("fhir", "json", "R4", "strict"), os.fspath(path), len(large)
        )
        assert sha256 == hashlib.sha256(large).hexdigest()
        assert metadata == inline(large)
    finally:
        await workers.close()
