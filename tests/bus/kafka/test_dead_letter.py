"""Poison messages: an undecodable event lands in the dead-letter topic; the consumer goes on."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka import Message, Producer

from mm_bronze.models import encode_event
from tests.bus.kafka.conftest import kafka_env_for
from tests.bus.kafka.topic_reader import read_records
from tests.events import fhir_event
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze

POISON = b"\xc1 this is not msgpack"


@pytest.fixture
def env(kafka: str, dsn: str) -> dict[str, str]:
    return kafka_env_for(kafka, dsn)


@pytest.fixture
def consumers(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[MmBronze]:
    proc = MmBronze(tmp_path_factory.mktemp("dlq"), "--consumers", env=env)
    proc.start()
    yield proc
    proc.stop()


def test_undecodable_event_is_dead_lettered_and_the_consumer_keeps_going(
    kafka: str, dsn: str, env: dict[str, str], consumers: MmBronze
) -> None:
    topic = env["KAFKA_BRONZE_API_TOPIC"]
    event = fhir_event(b'{"resourceType": "Patient", "id": "after-poison"}', subtype="resource")
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
    # Same key, so both land on one partition: the valid event waits behind the poison.
    producer.produce(topic, POISON, key=event.sha256.encode())
    producer.produce(topic, encode_event(event), key=event.sha256.encode())
    assert producer.flush(30) == 0

    _wait_stored(dsn, event.uuid)
    dead = _read_one(kafka, env["MM_BRONZE_KAFKA_DLQ_TOPIC"])
    assert dead.value() == POISON
    raw = dead.headers() or []
    assert isinstance(raw, list)
    headers = {k: v.decode() for k, v in raw if isinstance(v, bytes)}
    assert len(headers) == len(raw)  # every header a distinct name with a bytes value
    assert headers["reason"].startswith("undecodable event")
    assert headers["source.topic"] == topic
    assert int(headers["source.offset"]) >= 0
    assert consumers.proc is not None and consumers.proc.poll() is None


def test_an_event_that_keeps_failing_is_dead_lettered_after_max_attempts(
    kafka: str, dsn: str, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """An event whose batch fails unexpectedly (here PostgreSQL refuses its size) comes back
    with each attempt counted and is dead-lettered after consumer.max_attempts, its neighbour
    stored; left unacknowledged, Kafka would never have delivered it again in this process."""
    topic = env["KAFKA_BRONZE_API_TOPIC"]
    bad = fhir_event(b'{"resourceType": "Patient", "id": "kafka-bad"}', size=2**63)
    events = [bad, fhir_event(b'{"resourceType": "Patient"}')]
    quick = {"MM_BRONZE_CONSUMER_MAX_ATTEMPTS": "3", "MM_BRONZE_CONSUMER_RETRY_BACKOFF_MAX": "0.5"}
    with MmBronze(tmp_path_factory.mktemp("again"), "--consumers", env={**env, **quick}):
        producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
        for event in events:  # one partition: the good event waits behind the bad one
            producer.produce(topic, encode_event(event), key=b"same")
        assert producer.flush(30) == 0
        _wait_stored(dsn, events[1].uuid)
        dead = _read_one(kafka, env["MM_BRONZE_KAFKA_DLQ_TOPIC"])
    raw = dead.headers() or []
    assert isinstance(raw, list)
    headers = {k: v.decode() for k, v in raw if isinstance(v, bytes)}
    assert headers["reason"] == "gave up after 3 deliveries"
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status FROM ingestion.ingestion_log WHERE object_id = %s"
            " ORDER BY log_time DESC LIMIT 1",
            (events[0].uuid,),
        ).fetchone()
    assert row == ("failed",)


def _wait_stored(dsn: str, submission: str, timeout: float = 60) -> None:
    sql = "SELECT 1 FROM ingestion.submissions WHERE submission_id = %s"
    with psycopg.connect(dsn, autocommit=True) as conn:
        wait_for(
            lambda: conn.execute(sql, (submission,)).fetchone(),
            timeout=timeout,
            what=f"{submission} stored",
        )


def _read_one(servers: str, topic: str, timeout: float = 60) -> Message:
    records = read_records(servers, topic, want=1, quiet=0, timeout=timeout)
    assert records, f"nothing arrived on {topic}"
    return records[0]
