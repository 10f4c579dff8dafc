"""The 202 and what it promises: the event is on the bus and the submission reads `accepted`.

``serve --http`` alone (no consumers) keeps submissions at `accepted`, so these tests see
the state the door itself records, in the same commit as the event on the embedded bus.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.services.mm_bronze import MmBronze


@pytest.fixture(scope="module")
def http_only(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[MmBronze]:
    proc = MmBronze(tmp_path_factory.mktemp("mmb-http"), "--http", env={"POSTGRES_DSN": module_dsn})
    proc.start()
    yield proc
    proc.stop()


def patient() -> bytes:
    return f'{{"resourceType": "Patient", "id": "{uuid.uuid4().hex}"}}'.encode()


def test_accepted_at_once_with_its_event_on_the_bus(http_only: MmBronze, module_dsn: str) -> None:
    with httpx.Client(base_url=http_only.url, timeout=30) as client:
        answer = client.post("/ingest/fhir/json/R4/patient", content=patient())
        assert answer.status_code == 202
        submission = answer.json()["uuid"]
        status = client.get(f"/ingest/{submission}")
    assert status.status_code == 200
    assert status.json()["status"] == "accepted"
    with psycopg.connect(module_dsn) as conn:
        history = conn.execute(
            "SELECT status FROM ingestion.ingestion_log WHERE object_id = %s", (submission,)
        ).fetchall()
        queued = conn.execute(
            "SELECT count(*) FROM bus.messages WHERE position(%s::bytea IN value) > 0",
            (submission.encode(),),
        ).fetchone()
    assert history == [("accepted",)]
    assert queued == (1,)


def test_many_concurrent_submissions_each_read_accepted(http_only: MmBronze) -> None:
    async def post_all() -> list[str]:
        async with httpx.AsyncClient(base_url=http_only.url, timeout=30) as client:
            answers = await asyncio.gather(
                *(client.post("/ingest/fhir/json/R4/patient", content=patient()) for _ in range(40))
            )
        assert all(a.status_code == 202 for a in answers)
        return [a.json()["uuid"] for a in answers]

    uuids = asyncio.run(post_all())
    with httpx.Client(base_url=http_only.url, timeout=30) as client:
        assert {client.get(f"/ingest/{u}").json()["status"] for u in uuids} == {"accepted"}


def test_request_id_is_echoed_on_every_answer(http_only: MmBronze) -> None:
    with httpx.Client(base_url=http_only.url, timeout=30) as client:
        headers = {"X-Request-ID": "trace-42"}
        accepted = client.post("/ingest/fhir/json/R4/patient", content=patient(), headers=headers)
        refused = client.post("/ingest/fhir/json/R4/patient", content=b"{", headers=headers)
        fresh = client.post("/ingest/fhir/json/R4/patient", content=patient())
    assert accepted.status_code == 202
    assert accepted.headers["x-request-id"] == "trace-42"
    assert accepted.headers["content-type"] == "application/json"
    assert refused.status_code == 422
    assert refused.headers["x-request-id"] == "trace-42"
    assert len(fresh.headers["x-request-id"]) == 32


def test_other_methods_and_paths_keep_their_answers(http_only: MmBronze) -> None:
    with httpx.Client(base_url=http_only.url, timeout=30) as client:
        wrong_method = client.get("/ingest/fhir/json/R4/patient")
        too_short = client.post("/ingest/fhir/json/R4", content=patient())
        empty_segment = client.post("/ingest/fhir//R4/patient", content=patient())
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
    assert wrong_method.headers["allow"] == "POST"
    assert too_short.status_code == 404
    assert empty_segment.status_code == 404
    assert "x-request-id" in wrong_method.headers


def test_log_of_accepted_submissions_names_no_payload(http_only: MmBronze) -> None:
    marker = uuid.uuid4().hex
    body = f'{{"resourceType": "Patient", "id": "{marker}"}}'.encode()
    with httpx.Client(base_url=http_only.url, timeout=30) as client:
        assert client.post("/ingest/fhir/json/R4/patient", content=body).status_code == 202
    assert marker not in Path(http_only.log_path).read_text(errors="replace")
