"""Messages that can never succeed are dead-lettered with their reason; the rest flows on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import msgspec
import psycopg
import pytest

from mm_bronze.models import IngestEvent, encode_event
from tests.events import fhir_event
from tests.ingest.http.helpers import wait_status
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[MmBronze]:
    """``serve --all`` with one persist pipeline: events enqueued together are then claimed in
    one batch (two pipelines claiming at once may each take one, ``SKIP LOCKED``)."""
    env = {"POSTGRES_DSN": module_dsn, "MM_BRONZE_CONSUMER_CONCURRENCY": "1"}
    proc = MmBronze(tmp_path_factory.mktemp("mmb"), env=env)
    proc.start()
    yield proc
    proc.stop()


def enqueue(dsn: str, value: bytes) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO bus.messages (topic, key, value) VALUES ('bronze-ingest-api', 'k', %s)",
            (value,),
        )


def enqueue_together(dsn: str, events: list[IngestEvent]) -> None:
    """In one transaction, so that the consumer claims them in one batch."""
    with psycopg.connect(dsn) as conn:
        for event in events:
            conn.execute(
                "INSERT INTO bus.messages (topic, key, value)"
                " VALUES ('bronze-ingest-api', 'k', %s)",
                (encode_event(event),),
            )


def dead_letters(dsn: str) -> list[tuple[str, int]]:
    with psycopg.connect(dsn) as conn:
        return [
            (r, a)
            for r, a in conn.execute(
                "SELECT reason, attempts FROM bus.dead_letters ORDER BY id"
            ).fetchall()
        ]


def wait_dead(dsn: str, n: int) -> list[tuple[str, int]]:
    return wait_for(
        lambda: dead_letters(dsn), lambda found: len(found) >= n, what=f"{n} dead letters"
    )


def test_undecodable_event_is_dead_lettered(server: MmBronze, module_dsn: str) -> None:
    before = len(dead_letters(module_dsn))
    enqueue(module_dsn, b"\x93not an event")
    found = wait_dead(module_dsn, before + 1)
    assert found[-1][0].startswith("undecodable event")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        after = client.post("/ingest/fhir/json/R4/patient", content=b'{"resourceType":"Patient"}')
        assert wait_status(client, after.json()["uuid"], {"stored", "duplicate"})


def test_missing_staged_blob_fails_the_submission(server: MmBronze, module_dsn: str) -> None:
    before = len(dead_letters(module_dsn))
    submission = str(uuid.uuid4())
    event = fhir_event(
        uuid=submission,
        client="lab9",
        subtype="bundle",
        sha256="ab" * 32,
        size=10,
        staged_path=(server.data_dir / "raw" / "_staging" / "api" / "gone").as_uri(),
    )
    enqueue(module_dsn, encode_event(event))
    found = wait_dead(module_dsn, before + 1)
    # The dead letter (for the operator) says where the blob was looked for; the client's
    # status does not name the store.
    assert found[-1][0] == f"staged payload is missing (looked for at {event.staged_path})"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        status = wait_status(client, submission, {"failed"})
    assert status["message"] == "staged payload is missing"
    # Never recorded: the failed entry names the sender, so only lab9 (or admin) sees it.
    assert status["client"] == "lab9"
    with psycopg.connect(module_dsn) as conn:
        logged = conn.execute(
            "SELECT status, client FROM ingestion.ingestion_log WHERE object_id = %s",
            (submission,),
        ).fetchall()
    assert logged == [("failed", "lab9")]


def test_an_event_not_keyed_by_a_uuid_and_sha256_is_undecodable(
    server: MmBronze, module_dsn: str
) -> None:
    """What a consumer keys a record and an object by is checked when the event is decoded: a
    forged one is a dead letter, never a failed INSERT retried or a key outside the layout."""
    event = fhir_event(b"{}")
    forged = [
        (msgspec.structs.replace(event, uuid="not-a-uuid"), "$.uuid"),
        (msgspec.structs.replace(event, sha256="../../../etc/passwd"), "$.sha256"),
    ]
    for bad, where in forged:
        before = len(dead_letters(module_dsn))
        enqueue(module_dsn, encode_event(bad))
        reason = wait_dead(module_dsn, before + 1)[-1][0]
        assert reason.startswith("undecodable event: Expected `str` matching regex"), reason
        assert reason.endswith(f"at `{where}`")
    assert "Traceback" not in server.logs()


def test_a_missing_blob_fails_only_when_no_event_in_the_batch_has_the_bytes(
    server: MmBronze, module_dsn: str
) -> None:
    """Two submissions of the same bytes in one batch: the first one's staged blob is gone,
    the second one's is there. The second writes the object and both are recorded; neither
    is failed (before, the first was the only writer tried and both were dead-lettered)."""
    payload = b'{"resourceType": "Patient", "id": "same-bytes-twice"}'
    staging = server.data_dir / "raw" / "_staging" / "api" / "same-bytes"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "present").write_bytes(payload)
    events = [
        fhir_event(payload, staged_path=(staging / blob).as_uri()) for blob in ("gone", "present")
    ]
    before = len(dead_letters(module_dsn))
    enqueue_together(module_dsn, events)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        statuses = [wait_status(client, e.uuid, {"stored", "duplicate", "failed"}) for e in events]
    assert sorted(s["status"] for s in statuses) == ["duplicate", "stored"], statuses
    assert len(dead_letters(module_dsn)) == before


def test_an_event_the_database_refuses_does_not_hold_back_its_batch(
    server: MmBronze, module_dsn: str
) -> None:
    """A batch that fails unexpectedly is retried event by event at once: the others are
    stored, and only the bad one waits for its lease (to be dead-lettered after
    max_attempts). Here the bad one's size is beyond PostgreSQL's bigint. (Last in this
    module: its dead letter comes minutes later.)"""
    bodies = [b'{"resourceType": "Patient", "id": "neighbour-%d"}' % n for n in range(3)]
    events = [fhir_event(bodies[0]), fhir_event(bodies[1], size=2**63), fhir_event(bodies[2])]
    enqueue_together(module_dsn, events)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for good in (events[0], events[2]):
            assert wait_status(client, good.uuid, {"stored"}, timeout=20)
        assert client.get(f"/ingest/{events[1].uuid}").json().get("status") != "stored"
        # While the bad one waits for its lease, the consumers are not ready (they were again
        # as soon as the next fetch came back empty).
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["consumers"].startswith("degraded"), ready.text
    assert "persist batch retried event by event" in server.logs()
