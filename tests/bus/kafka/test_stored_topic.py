"""The stored topic: on Kafka, one event per recorded submission, keyed by SHA-256."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.bus.kafka.conftest import kafka_env_for
from tests.bus.kafka.topic_reader import read_records
from tests.ingest.http.helpers import sha256, wait_status
from tests.services.mm_bronze import MmBronze

FIRST = b'{"resourceType": "Patient", "id": "stored-topic-1"}'
SECOND = b'{"resourceType": "Patient", "id": "stored-topic-2", "gender": "other"}'


@pytest.fixture(scope="module")
def env(kafka: str, module_dsn: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return kafka_env_for(kafka, module_dsn, MM_BRONZE_KAFKA_STORED_TOPIC=f"bronze-stored-{tag}")


@pytest.fixture(scope="module")
def bronze(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[MmBronze]:
    proc = MmBronze(tmp_path_factory.mktemp("stored-topic"), env=env)
    proc.start()
    yield proc
    proc.stop()


def read_topic(
    servers: str, topic: str, want: int, timeout: float = 60
) -> list[tuple[bytes, dict]]:
    """(key, decoded value) of the records on ``topic``, once ``want`` have arrived and no
    more follow for a moment."""
    records = read_records(servers, topic, want=want, quiet=2, timeout=timeout)
    return [(msg.key() or b"", json.loads(msg.value() or b"")) for msg in records]


def test_each_recorded_submission_is_announced_once_with_its_lineage(
    kafka: str, env: dict[str, str], bronze: MmBronze
) -> None:
    route = "/ingest/fhir/json/R4/resource"
    with httpx.Client(base_url=bronze.url, timeout=30) as client:
        first = client.post(route, content=FIRST).json()["uuid"]
        original = wait_status(client, first, {"stored"})
        again = client.post(route, content=FIRST).json()["uuid"]
        other = client.post(route, content=SECOND).json()["uuid"]
        statuses = {u: wait_status(client, u, {"stored", "duplicate"}) for u in (again, other)}
    statuses[first] = original

    events = read_topic(kafka, env["MM_BRONZE_KAFKA_STORED_TOPIC"], want=3)
    by_uuid = {value["uuid"]: (key, value) for key, value in events}
    assert sorted(value["uuid"] for _, value in events) == sorted([first, again, other])

    for submission, (key, value) in by_uuid.items():
        status = statuses[submission]
        assert key == status["sha256"].encode()
        assert value["sha256"] == status["sha256"]
        assert value["storage_path"] == status["storage_path"]
        assert (value["format"], value["content_type"], value["version"], value["subtype"]) == (
            "fhir",
            "json",
            "R4",
            "resource",
        )
        assert value["source"] == "api" and value["client"] is None
        received = dt.datetime.fromisoformat(value["received_at"])
        assert received <= dt.datetime.fromisoformat(value["stored_at"])
        assert "payload" not in value
    assert by_uuid[first][1]["duplicate_of"] is None
    assert by_uuid[again][1]["duplicate_of"] == first
    assert by_uuid[other][1]["duplicate_of"] is None
    assert by_uuid[other][1]["sha256"] == sha256(SECOND)
