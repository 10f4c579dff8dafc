"""A NUL character in what the metadata quotes is recorded as U+FFFD: PostgreSQL's jsonb
cannot hold one, and one there failed the whole batch, other clients' submissions included."""

from __future__ import annotations

import asyncio

import httpx
import psycopg

from tests.ingest.http.helpers import sha256, stored_bytes, wait_status
from tests.services.mm_bronze import MmBronze

HL7 = b"MSH|^~\\&|LAB|FAC|EHR|FAC|20260101||ORU^R01|N\x00UL|P|2.5.1\rPID|1||123||Doe^Jane\r"
PROFILE = b'{"resourceType": "Patient", "meta": {"profile": ["http://x.org/a\\u0000b"]}}'
INNOCENT = b'{"resourceType": "Patient", "id": "innocent-bystander"}'


def test_nul_in_metadata_is_recorded_and_spoils_no_batch(server: MmBronze, module_dsn: str) -> None:
    async def send() -> tuple[httpx.Response, ...]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(  # together: one batch for the consumer
                client.post("/ingest/hl7/text/2.5.1/oru", content=HL7),
                client.post("/ingest/fhir/json/R4/patient", content=PROFILE),
                client.post("/ingest/fhir/json/R4/patient", content=INNOCENT),
            )

    answers = asyncio.run(send())
    assert [a.status_code for a in answers] == [202, 202, 202], [a.text for a in answers]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        statuses = [wait_status(client, a.json()["uuid"], {"stored", "failed"}) for a in answers]
    assert [s["status"] for s in statuses] == ["stored"] * 3, statuses
    for status, body in zip(statuses, (HL7, PROFILE, INNOCENT), strict=True):
        assert stored_bytes(status["storage_path"]) == body  # the bytes keep their NUL
        assert status["sha256"] == sha256(body)
    with psycopg.connect(module_dsn) as conn:
        row = conn.execute(
            "SELECT source_metadata -> 'format_metadata' ->> 'control_id'"
            " FROM ingestion.submissions WHERE submission_id = %s",
            (answers[0].json()["uuid"],),
        ).fetchone()
    assert row == ("N\ufffdUL",)
