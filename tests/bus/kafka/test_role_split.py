"""Scale out: one HTTP process, two consumer processes, one Kafka, one PostgreSQL, one store.

A consumer process is killed (SIGKILL) mid-stream; its partitions move to the survivor,
which redelivers what was not committed. Every payload ends stored exactly once.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import psycopg

from tests.bus.kafka.conftest import kafka_env_for
from tests.ingest.http.helpers import sha256
from tests.polling import wait_for_async
from tests.services.mm_bronze import MmBronze

PAYLOADS = 2000
KILL_AFTER = 600
CONCURRENCY = 32
SAMPLE_EVERY = 20
ROUTE = "/ingest/fhir/json/R4/resource"


def payload(n: int) -> bytes:
    return b'{"resourceType": "Patient", "id": "split-%d", "active": true}' % n


async def test_http_and_two_consumer_processes_survive_a_killed_consumer(
    tmp_path: Path, kafka: str, dsn: str
) -> None:
    raw = tmp_path / "raw"
    env = kafka_env_for(
        kafka, dsn, RAW_STORAGE_URL=raw.as_uri(), MM_BRONZE_KAFKA_LAG_LOG_INTERVAL="2"
    )
    http = MmBronze(tmp_path / "http", "--http", env=env)
    survivor = MmBronze(tmp_path / "c1", "--consumers", env=env)
    victim = MmBronze(tmp_path / "c2", "--consumers", env=env)
    try:
        for proc in (http, survivor, victim):
            proc.start(wait=False)
        for proc in (http, survivor, victim):
            proc.wait_ready(90)
        await _wait_assigned(victim, env["KAFKA_BRONZE_API_TOPIC"])

        bodies = [payload(n) for n in range(PAYLOADS)]
        accepted: dict[int, str] = {}
        async with httpx.AsyncClient(base_url=http.url, timeout=60) as client:
            gate = asyncio.Semaphore(CONCURRENCY)

            async def post(n: int) -> None:
                async with gate:
                    response = await client.post(ROUTE, content=bodies[n])
                assert response.status_code == 202, response.text
                accepted[n] = response.json()["uuid"]
                if len(accepted) == KILL_AFTER:
                    victim.kill()

            await asyncio.gather(*(post(n) for n in range(PAYLOADS)))
            assert victim.proc is not None and victim.proc.returncode is not None

            await _wait_recorded(dsn, PAYLOADS, timeout=180)
            # Every submission resolves through the API; a sample goes over HTTP, all via SQL.
            sample = list(accepted.items())[::SAMPLE_EVERY]
            statuses = await _statuses(client, [uuid for _, uuid in sample])

        for n, uuid in sample:
            assert statuses[uuid]["status"] == "stored"
            assert statuses[uuid]["sha256"] == sha256(bodies[n])
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT count(*), count(DISTINCT fingerprint) FROM ingestion.raw_ingestion"
            ).fetchone()
            resolved = conn.execute(
                "SELECT s.submission_id::text, encode(r.fingerprint, 'hex') FROM"
                " ingestion.submissions s JOIN ingestion.raw_ingestion r USING (object_id)"
                " WHERE NOT s.is_duplicate"
            ).fetchall()
        assert rows == (PAYLOADS, PAYLOADS)
        assert dict(resolved) == {uuid: sha256(bodies[n]) for n, uuid in accepted.items()}
        objects = [p for p in raw.rglob("*.json") if "_staging" not in p.parts]
        assert len(objects) == PAYLOADS
        assert {p.stem for p in objects} == {sha256(b) for b in bodies}
        # Operators see how far behind the consumers are.
        assert '"kafka consumer lag"' in survivor.logs()
    finally:
        for proc in (http, survivor, victim):
            proc.stop()


async def _wait_assigned(proc: MmBronze, topic: str, timeout: float = 60) -> None:
    """Wait until ``proc`` owns partitions of ``topic``, so the kill takes work away."""

    def assigned() -> bool:
        for line in proc.logs().splitlines():
            if line.startswith("{") and '"kafka partitions assigned"' in line:
                entry = json.loads(line)
                if entry["topic"] == topic and entry["partitions"]:
                    return True
        return False

    await wait_for_async(
        assigned,
        timeout=timeout,
        every=0.2,
        what=f"partitions of {topic} assigned",
        detail=proc.logs,
    )


async def _wait_recorded(dsn: str, count: int, timeout: float) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:

        async def recorded() -> int:
            cur = await conn.execute("SELECT count(*) FROM ingestion.submissions")
            row = await cur.fetchone()
            return row[0] if row else 0

        await wait_for_async(
            recorded,
            lambda seen: seen >= count,
            timeout=timeout,
            every=0.5,
            what=f"{count} submissions recorded",
        )


async def _statuses(client: httpx.AsyncClient, uuids: list[str]) -> dict[str, dict]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(uuid: str) -> tuple[str, dict]:
        async with gate:
            response = await client.get(f"/ingest/{uuid}")
        assert response.status_code == 200, response.text
        return uuid, response.json()

    return dict(await asyncio.gather(*(one(u) for u in uuids)))
