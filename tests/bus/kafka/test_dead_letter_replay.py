"""Dead letters on Kafka: read from the dead-letter topic, replayed to their source topic with
their key and headers, once; purged ones are no longer listed."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from mm_bronze.models import IngestEvent, encode_event
from tests.bus.kafka.conftest import kafka_env_for
from tests.bus.kafka.topic_reader import read_records
from tests.ingest.http.helpers import sha256, stored_bytes, wait_status
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze, run_cli

PAYLOAD = b'{"resourceType": "Patient", "id": "kafka-replayed"}'
TRACE = ("x-trace", b"trace-1")


@pytest.fixture(scope="module")
def env(kafka: str, module_dsn: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return kafka_env_for(kafka, module_dsn, MM_BRONZE_KAFKA_DLQ_GROUP=f"bronze-dlq-replay-{tag}")


@pytest.fixture(scope="module")
def bronze(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[MmBronze]:
    proc = MmBronze(tmp_path_factory.mktemp("kafka-dlq"), env=env)
    proc.start()
    yield proc
    proc.stop()


def dlq(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = run_cli("dlq", *args, env=env)
    return result.returncode, result.stdout, result.stderr


def listed(env: dict[str, str]) -> list[dict]:
    code, out, err = dlq(env, "list", "--json", "--limit", "1000")
    assert code == 0, err
    return json.loads(out)


def wait_dead_letter(
    env: dict[str, str], submission: str, timeout: float = 60, bronze: MmBronze | None = None
) -> dict:
    what = f"a dead letter for {submission}"
    if bronze is not None:  # the door's listing is cheaper to repeat than a command's start
        with httpx.Client(base_url=bronze.url, timeout=30) as client:
            wait_for(
                lambda: _listed_by_http(client, submission),
                timeout=timeout,
                every=0.25,
                what=what,
            )

    def letter() -> dict | None:
        return next((d for d in listed(env) if d["uuid"] == submission), None)

    found = wait_for(letter, lambda found: found is not None, timeout=timeout, every=0.5, what=what)
    assert found is not None
    return found


def _listed_by_http(client: httpx.Client, submission: str) -> bool:
    page = client.get("/dead-letters", params={"limit": 1000}).json()
    return submission in [letter["uuid"] for letter in page["dead_letters"]]


def produce_staged(
    servers: str, topic: str, bronze: MmBronze, payload: bytes = PAYLOAD
) -> tuple[IngestEvent, Path]:
    """A claim-checked event, with a header of its own, whose staged blob is not there
    (payloads not stored yet: a stored one needs no blob)."""
    submission = str(uuid.uuid4())
    blob = bronze.data_dir / "raw" / "_staging" / "api" / submission
    event = IngestEvent(
        uuid=submission,
        source="api",
        format="fhir",
        content_type="json",
        version="R4",
        subtype="patient",
        sha256=sha256(payload),
        size=len(payload),
        received_at=dt.datetime.now(dt.UTC),
        staged_path=blob.as_uri(),
    )
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True})
    producer.produce(topic, encode_event(event), key=event.sha256.encode(), headers=[TRACE])
    assert producer.flush(30) == 0
    return event, blob


def submissions_of(dsn: str, submission: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ingestion.submissions WHERE submission_id = %s", (submission,)
        ).fetchone()
    return int(row[0]) if row else 0


def committed(servers: str, env: dict[str, str], partition: int) -> int:
    consumer = Consumer(
        {"bootstrap.servers": servers, "group.id": env["MM_BRONZE_KAFKA_DLQ_GROUP"]}
    )
    try:
        tp = TopicPartition(env["MM_BRONZE_KAFKA_DLQ_TOPIC"], partition)
        return int(consumer.committed([tp], timeout=10)[0].offset)
    finally:
        consumer.close()


def records_of(servers: str, topic: str, submission: str) -> list[tuple[bytes | None, object]]:
    """(key, headers) of every record on ``topic`` carrying ``submission``."""
    records = read_records(
        servers,
        topic,
        want=1,
        quiet=3,
        timeout=30,
        keep=lambda msg: submission.encode() in (msg.value() or b""),
    )
    return [(msg.key(), msg.headers() or []) for msg in records]


def test_a_dead_letter_replayed_after_its_blob_is_restored_is_stored_once(
    kafka: str, env: dict[str, str], module_dsn: str, bronze: MmBronze
) -> None:
    topic = env["KAFKA_BRONZE_API_TOPIC"]
    event, blob = produce_staged(kafka, topic, bronze)
    letter = wait_dead_letter(env, event.uuid, bronze=bronze)
    assert letter["reason"] == f"staged payload is missing (looked for at {event.staged_path})"
    assert letter["topic"] == topic
    partition, _, offset = letter["id"].partition(":")
    assert partition.isdigit() and offset.isdigit()

    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(PAYLOAD)
    code, _out, err = dlq(env, "replay", letter["id"])
    assert code == 0, err
    with httpx.Client(base_url=bronze.url, timeout=30) as client:
        status = wait_status(client, event.uuid, {"stored", "duplicate"}, timeout=60)
    assert stored_bytes(status["storage_path"]) == PAYLOAD
    assert submissions_of(module_dsn, event.uuid) == 1
    assert letter["id"] not in [d["id"] for d in listed(env)]

    code, _, err = dlq(env, "replay", letter["id"])
    assert code == 1 and f"no dead letter {letter['id']}" in err
    assert submissions_of(module_dsn, event.uuid) == 1
    # The first dead letter of its partition is handled: the group's offset moved past it.
    assert committed(kafka, env, int(partition)) == int(offset) + 1

    # Back on the source topic once more, with its own key and header (and no DLQ headers).
    replayed = records_of(kafka, topic, event.uuid)
    assert len(replayed) == 2  # the original, and the replay
    for key, headers in replayed:
        assert key == event.sha256.encode()
        assert headers == [TRACE]


def test_purge_and_http_replay(
    kafka: str, env: dict[str, str], module_dsn: str, bronze: MmBronze
) -> None:
    topic = env["KAFKA_BRONZE_API_TOPIC"]
    purged_payload = b'{"resourceType": "Patient"}'
    purged_event, purged_blob = produce_staged(kafka, topic, bronze, purged_payload)
    kept_payload = b'{"resourceType": "Patient", "id": "kept"}'
    kept_event, blob = produce_staged(kafka, topic, bronze, kept_payload)
    purged = wait_dead_letter(env, purged_event.uuid, bronze=bronze)
    kept = wait_dead_letter(env, kept_event.uuid, bronze=bronze)

    purged_blob.parent.mkdir(parents=True, exist_ok=True)
    purged_blob.write_bytes(purged_payload)
    # The server's settings, so that it finds the staging store.
    code, _, err = dlq({**env, "MM_BRONZE_DATA_DIR": str(bronze.data_dir)}, "purge", purged["id"])
    assert code == 0, err
    assert purged["id"] not in [d["id"] for d in listed(env)]
    assert not purged_blob.exists()  # the staged payload goes with the dead letter
    code, _, err = dlq(env, "show", purged["id"])
    assert code == 1 and "no dead letter" in err

    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(kept_payload)
    with httpx.Client(base_url=bronze.url, timeout=60) as client:
        page = client.get("/dead-letters", params={"topic": topic}).json()
        assert kept["id"] in [d["id"] for d in page["dead_letters"]]
        for bad in ("12", "0:²"):
            assert client.get(f"/dead-letters/{bad}").json()["error"] == "invalid_id"
        response = client.post(f"/dead-letters/{kept['id']}/replay")
        assert response.status_code == 200, response.text
        assert response.json()["dead_letter"]["uuid"] == kept_event.uuid
        assert client.post(f"/dead-letters/{kept['id']}/replay").status_code == 404
        wait_status(client, kept_event.uuid, {"stored", "duplicate"}, timeout=60)
    assert submissions_of(module_dsn, kept_event.uuid) == 1

    # --all: every pending dead letter of the topic (these fail again: their blobs are gone).
    for n in range(2):
        produce_staged(
            kafka, topic, bronze, f'{{"resourceType": "Patient", "id": "a{n}"}}'.encode()
        )
    pending = wait_for(
        lambda: listed(env),
        lambda letters: len(letters) >= 2,
        timeout=60,
        every=0.5,
        what="two dead letters",
    )
    code, out, _ = dlq(env, "replay", "--all", "--topic", topic)
    assert code == 0 and out.strip() == f"{len(pending)} dead letters replayed"
    assert not {d["id"] for d in listed(env)} & {d["id"] for d in pending}
