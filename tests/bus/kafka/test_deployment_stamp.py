"""Events on Kafka carry their deployment's id: a consumer that records to another database
(as one started without the deployment's ``postgres.dsn`` does, on an embedded database of its
own) refuses them before it stores anything, and the deployment's own consumers store every
one. A database that replaces the deployment's takes its id over (``mm-bronze db adopt``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import psycopg

from mm_bronze.bus.stamp import HEADER
from tests.bus.kafka.conftest import kafka_env_for
from tests.bus.kafka.topic_reader import read_records
from tests.polling import wait_for_async
from tests.services.mm_bronze import MmBronze, run_cli
from tests.services.postgres import create_database

PAYLOADS = 40
ROUTE = "/ingest/fhir/json/R4/resource"


def payload(n: int) -> bytes:
    return b'{"resourceType": "Patient", "id": "stamp-%d", "active": true}' % n


def count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def deployment_of(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT id::text FROM ingestion.deployment").fetchone()
    assert row is not None
    return str(row[0])


async def test_a_consumer_on_another_database_refuses_the_deployments_events(
    tmp_path: Path, kafka: str, dsn: str, pg_admin_dsn: str
) -> None:
    raw = tmp_path / "raw"
    env = kafka_env_for(kafka, dsn, RAW_STORAGE_URL=raw.as_uri())
    topic = env["KAFKA_BRONZE_API_TOPIC"]
    with MmBronze(tmp_path / "http", "--http", env=env) as http:
        async with httpx.AsyncClient(base_url=http.url, timeout=60) as client:
            answers = await asyncio.gather(
                *(client.post(ROUTE, content=payload(n)) for n in range(PAYLOADS))
            )
    assert [answer.status_code for answer in answers] == [202] * PAYLOADS
    deployment = deployment_of(dsn)
    records = read_records(kafka, topic, want=PAYLOADS, quiet=0.5)
    assert len(records) == PAYLOADS
    assert {dict(record.headers() or [])[HEADER] for record in records} == {deployment.encode()}

    other = create_database(pg_admin_dsn)
    # One consumer per topic: it has all the partitions when it refuses. A member that leaves
    # the group while another of its process still joins it can hold the broker's group in a
    # rebalance (Tansu) long after the process is gone.
    stray_env = {**env, "POSTGRES_DSN": other, "MM_BRONZE_CONSUMER_CONCURRENCY": "1"}
    stray = MmBronze(tmp_path / "stray", "--consumers", env=stray_env)
    stray.start(wait=False)
    assert stray.proc is not None
    try:
        assert stray.proc.wait(timeout=120) == 2
    finally:
        stray.stop()  # a consumer that did not refuse is not left running
    refusal = next(line for line in stray.logs().splitlines() if line.startswith("mm-bronze:"))
    assert refusal.startswith(
        f"mm-bronze: wrong database: the events on {topic} were accepted by the processes of "
        f"deployment {deployment}, and this process records to the database of deployment "
        f"{deployment_of(other)}"
    )
    assert refusal.endswith(f"run `mm-bronze db adopt {deployment}`")
    # Its other pipelines stop with it, without retrying on closed consumers.
    assert "persist retrying" not in stray.logs()
    assert count(other, "SELECT count(*) FROM ingestion.submissions") == 0
    assert not [path for path in raw.rglob("*") if path.is_file()]  # nothing stored either

    with MmBronze(tmp_path / "own", "--consumers", env=env):
        await _wait_recorded(dsn, PAYLOADS)
    assert count(dsn, "SELECT count(*) FROM ingestion.submissions") == PAYLOADS
    assert count(dsn, "SELECT count(DISTINCT fingerprint) FROM ingestion.raw_ingestion") == (
        PAYLOADS
    )


def test_db_adopt_gives_a_database_the_deployments_id(tmp_path: Path, dsn: str) -> None:
    env = {"POSTGRES_DSN": dsn}
    first = "6f1c8e5e-2c36-4d1e-9a59-2d0b0f6f7a11"
    adopted = run_cli("db", "adopt", first, "--data-dir", str(tmp_path), env=env)
    assert adopted.returncode == 0, adopted.stderr
    assert adopted.stdout.strip() == f"this database is deployment {first}'s"
    second = "0b6c3f0e-8f8e-4e4b-8d0e-3f5a9c1d2e77"
    adopted = run_cli("db", "adopt", second, "--data-dir", str(tmp_path), env=env)
    assert adopted.stdout.strip() == f"this database is deployment {second}'s (was {first})"
    assert deployment_of(dsn) == second
    refused = run_cli("db", "adopt", "not-an-id", "--data-dir", str(tmp_path), env=env)
    assert refused.returncode == 2
    assert "invalid UUID value: 'not-an-id'" in refused.stderr


async def _wait_recorded(dsn: str, expected: int) -> None:
    async def recorded() -> int:
        return count(dsn, "SELECT count(*) FROM ingestion.submissions")

    await wait_for_async(recorded, lambda seen: seen >= expected, timeout=120, every=0.5)
