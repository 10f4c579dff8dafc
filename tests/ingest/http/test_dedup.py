"""Exact, global deduplication with full lineage: one object, every submission resolvable."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import psycopg

from tests.ingest.http.helpers import sha256, stored_bytes, wait_status
from tests.services.mm_bronze import MmBronze


def object_files(server: MmBronze, digest: str) -> list[Path]:
    return [p for p in (server.data_dir / "raw").rglob(f"{digest}*") if p.is_file()]


def rows(dsn: str, digest: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        fp = bytes.fromhex(digest)
        raw = conn.execute(
            "SELECT count(*) FROM ingestion.raw_ingestion WHERE fingerprint = %s", (fp,)
        ).fetchone()
        subs = conn.execute(
            "SELECT count(*) FROM ingestion.submissions s JOIN ingestion.raw_ingestion r"
            " USING (object_id) WHERE r.fingerprint = %s",
            (fp,),
        ).fetchone()
    assert raw is not None and subs is not None
    return raw[0], subs[0]


def test_same_bytes_twice(server: MmBronze, module_dsn: str) -> None:
    body = f'{{"resourceType": "Patient", "id": "{uuid.uuid4().hex}"}}'.encode()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = client.post("/ingest/fhir/json/R4/patient", content=body).json()["uuid"]
        one = wait_status(client, first, {"stored"})
        second = client.post("/ingest/fhir/json/R4/patient", content=body).json()["uuid"]
        two = wait_status(client, second, {"duplicate"})
    assert one["duplicate_of"] is None
    assert two["duplicate_of"] == first
    assert two["storage_path"] == one["storage_path"]
    assert two["sha256"] == one["sha256"] == sha256(body)
    assert stored_bytes(two["storage_path"]) == body
    assert len(object_files(server, sha256(body))) == 1
    assert rows(module_dsn, sha256(body)) == (1, 2)


def test_twenty_concurrent_duplicates(server: MmBronze, module_dsn: str) -> None:
    code = '"status": "final", "code": {"text": "dedup"}'
    body = f'{{"resourceType": "Observation", "id": "{uuid.uuid4().hex}", {code}}}'.encode()

    async def post_all() -> list[str]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            responses = await asyncio.gather(
                *(client.post("/ingest/fhir/json/R4/observation", content=body) for _ in range(20))
            )
        assert all(r.status_code == 202 for r in responses)
        return [r.json()["uuid"] for r in responses]

    uuids = asyncio.run(post_all())
    assert len(set(uuids)) == 20
    with httpx.Client(base_url=server.url, timeout=30) as client:
        statuses = [wait_status(client, u, {"stored", "duplicate"}) for u in uuids]
    originals = [s for s in statuses if s["status"] == "stored"]
    assert len(originals) == 1
    original = originals[0]["uuid"]
    for status in statuses:
        if status["uuid"] != original:
            assert status["status"] == "duplicate"
            assert status["duplicate_of"] == original
        assert status["storage_path"] == originals[0]["storage_path"]
    assert len(object_files(server, sha256(body))) == 1
    assert rows(module_dsn, sha256(body)) == (1, 20)


def test_status_history_is_kept(server: MmBronze, module_dsn: str) -> None:
    body = f'{{"resourceType": "Patient", "id": "{uuid.uuid4().hex}"}}'.encode()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        submission = client.post("/ingest/fhir/json/R4/patient", content=body).json()["uuid"]
        wait_status(client, submission, {"stored"})
    with psycopg.connect(module_dsn) as conn:
        history = conn.execute(
            "SELECT status FROM ingestion.ingestion_log WHERE object_id = %s ORDER BY log_id",
            (submission,),
        ).fetchall()
    assert sorted(s for (s,) in history) == ["accepted", "stored"]
