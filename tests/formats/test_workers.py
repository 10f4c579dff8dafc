"""Validation in worker processes gives exactly what validation in-process gives."""

from __future__ import annotations

import os
import signal

import pytest

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats import validator_for
from mm_bronze.formats.workers import DeferredValidator, ValidationWorkers

ENTRIES = ",".join(
    f'{{"resource": {{"resourceType": "Patient", "id": "p{i}", "gender": "female"}}}}'
    for i in range(2000)
)
VALID = f'{{"resourceType": "Bundle", "type": "collection", "entry": [{ENTRIES}]}}'.encode()
INVALID = VALID.replace(b'"gender": "female"}}]', b'"gender": "female", "colour": "red"}}]')


def inline(body: bytes) -> dict:
    validator = validator_for("fhir", "json", version="R4")
    validator.feed(body)
    return validator.finish()


def deferred(workers: ValidationWorkers) -> DeferredValidator:
    return DeferredValidator(
        validator_for("fhir", "json", version="R4"), ("fhir", "json", "R4", "strict"), workers
    )


async def test_worker_results_match_in_process_results() -> None:
    assert len(VALID) > 64 * 1024
    workers = ValidationWorkers(1)
    await workers.open()
    try:
        validator = deferred(workers)
        for start in range(0, len(VALID), 65536):
            validator.feed(VALID[start : start + 65536])
        assert await validator.finish_async() == inline(VALID)

        with pytest.raises(InvalidPayload) as in_process:
            inline(INVALID)
        validator = deferred(workers)
        validator.feed(INVALID)
        with pytest.raises(InvalidPayload) as in_worker:
            await validator.finish_async()
        assert in_worker.value.reason == in_process.value.reason
        assert in_worker.value.location == in_process.value.location
        assert in_worker.value.issues == in_process.value.issues
        assert "colour" in in_worker.value.reason
    finally:
        await workers.close()


async def test_a_killed_worker_is_answered_for_and_replaced() -> None:
    """A worker killed under a call (out of memory, say): that body is checked here
    instead, with the same verdict, and the next call gets a new worker."""
    workers = ValidationWorkers(1)
    await workers.open()
    try:
        job = ("fhir", "json", "R4", "strict")
        assert await workers.validate(job, VALID) == inline(VALID)
        pool = workers._running()
        (first,) = pool.pids()
        os.kill(first, signal.SIGKILL)
        assert await workers.validate(job, VALID) == inline(VALID)
        with pytest.raises(InvalidPayload):
            await workers.validate(job, INVALID)
        assert pool.pids() and first not in pool.pids()
    finally:
        await workers.close()
