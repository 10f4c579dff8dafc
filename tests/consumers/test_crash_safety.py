"""Crash safety: whatever is killed, with SIGKILL, at any moment, nothing accepted is lost
or doubled once the platform runs again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from tests.ingest.http.helpers import post_many, wait_status
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze
from tests.services.postgres import stop_stale


def payload(i: int, pad: int = 0) -> bytes:
    note = f'"note": [{{"text": "n{"x" * pad}"}}]'
    fields = f'"status": "final", "code": {{"text": "crash"}}, {note}'
    return f'{{"resourceType": "Observation", "id": "crash-{i}", {fields}}}'.encode()


def count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def wait_count(
    dsn: str,
    sql: str,
    want: int,
    timeout: float = 180,
    every: float = 0.2,
    detail: Callable[[], object] | None = None,
) -> None:
    wait_for(
        lambda: count(dsn, sql),
        lambda got: got >= want,
        timeout=timeout,
        every=every,
        what=f"{sql!r} to reach {want}",
        detail=detail,
    )


def stored_objects(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "raw").rglob("*.json") if p.is_file()]


def assert_exactly_once(dsn: str, uuids: list[str], data_dir: Path) -> None:
    total = len(uuids)
    assert count(dsn, "SELECT count(*) FROM ingestion.raw_ingestion") == total
    assert count(dsn, "SELECT count(*) FROM ingestion.submissions") == total
    assert count(dsn, "SELECT count(*) FROM ingestion.submissions WHERE is_duplicate") == 0
    assert count(dsn, "SELECT count(*) FROM bus.messages") == 0
    assert count(dsn, "SELECT count(*) FROM bus.dead_letters") == 0
    with psycopg.connect(dsn) as conn:
        found = {str(u) for (u,) in conn.execute("SELECT submission_id FROM ingestion.submissions")}
    assert found == set(uuids)
    assert len(stored_objects(data_dir)) == total


def test_http_killed_then_consumers_store_everything(dsn: str, tmp_path: Path) -> None:
    env = {"POSTGRES_DSN": dsn}
    http = MmBronze(tmp_path, "--http", env=env).start()
    uuids = asyncio.run(post_many(http.url, [payload(i) for i in range(500)]))
    http.kill()
    assert count(dsn, "SELECT count(*) FROM bus.messages") == 500
    consumers = MmBronze(tmp_path, "--consumers", env=env).start()
    try:
        wait_count(dsn, "SELECT count(*) FROM ingestion.submissions", 500)
        wait_count(dsn, "SELECT 500 - count(*) FROM bus.messages", 500)
    finally:
        assert consumers.stop() == 0
    assert_exactly_once(dsn, uuids, tmp_path)


def test_consumer_killed_mid_batch_then_restarted(dsn: str, tmp_path: Path) -> None:
    env = {
        "POSTGRES_DSN": dsn,
        "MM_BRONZE_CONSUMER_BATCH_SIZE": "50",
        "MM_BRONZE_CONSUMER_LEASE_SECONDS": "2",
    }
    total = 1500
    with MmBronze(tmp_path, "--http", env=env) as http:
        uuids = asyncio.run(post_many(http.url, [payload(i, pad=20_000) for i in range(total)]))
    consumer = MmBronze(tmp_path, "--consumers", env=env).start()
    wait_count(  # kill it as soon as it has begun: most of the stream is still to come
        dsn,
        "SELECT count(*) FROM ingestion.submissions",
        100,
        timeout=120,
        every=0.005,
        detail=consumer.logs,
    )
    consumer.kill()
    at_kill = count(dsn, "SELECT count(*) FROM ingestion.submissions")
    assert at_kill < total, "consumer finished before it could be killed mid-stream"
    restarted = MmBronze(tmp_path, "--consumers", env=env).start()
    try:
        wait_count(dsn, "SELECT count(*) FROM ingestion.submissions", total)
        wait_count(dsn, f"SELECT {total} - count(*) FROM bus.messages", total)
    finally:
        assert restarted.stop() == 0
    assert_exactly_once(dsn, uuids, tmp_path)


def test_embedded_defaults_survive_sigkill(embedded_data_dir: Path) -> None:
    """No configuration at all: embedded PostgreSQL under the data dir, adopted after a kill,
    stopped cleanly by SIGTERM."""
    body = b'{"resourceType": "Patient", "id": "embedded"}'
    tmp_path = embedded_data_dir
    first = MmBronze(tmp_path).start()
    try:
        with httpx.Client(base_url=first.url, timeout=30) as client:
            one = client.post("/ingest/fhir/json/R4/patient", content=body).json()["uuid"]
            wait_status(client, one, {"stored"})
    finally:
        first.kill()
    pgdata = tmp_path / "pg"
    assert (pgdata / "postmaster.pid").exists(), "the killed process left its postmaster"
    second = MmBronze(tmp_path, http_port=first.http_port).start()
    try:
        with httpx.Client(base_url=second.url, timeout=30) as client:
            assert wait_status(client, one, {"stored"})["duplicate_of"] is None
            two = client.post("/ingest/fhir/json/R4/patient", content=body).json()["uuid"]
            assert wait_status(client, two, {"duplicate"})["duplicate_of"] == one
        assert second.stop() == 0
        assert "embedded postgres stopped" in second.logs()
        assert not (pgdata / "postmaster.pid").exists()
    finally:
        second.kill()
        stop_stale(pgdata)
