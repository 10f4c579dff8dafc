"""When the bus cannot make an event durable, the sender gets 503 + Retry-After, never 202."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg

from tests.ingest.http.helpers import wait_status
from tests.services.mm_bronze import MmBronze


def test_bus_down_answers_503_then_recovers(dsn: str, tmp_path: Path) -> None:
    small = b'{"resourceType": "Patient", "id": "bus-down"}'
    large = (
        b'{"resourceType": "Binary", "contentType": "text/plain", "data": "'
        + b"Q" * 400_000
        + b'"}'
    )
    with (
        MmBronze(tmp_path, env={"POSTGRES_DSN": dsn}) as proc,
        httpx.Client(base_url=proc.url, timeout=60) as client,
        psycopg.connect(dsn, autocommit=True) as admin,
    ):
        # Make the queue table unreachable: every publish fails inside PostgreSQL.
        admin.execute("ALTER TABLE bus.messages RENAME TO messages_away")
        try:
            for body in (small, large):
                response = client.post("/ingest/fhir/json/R4/patient", content=body)
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "5"
                assert response.json()["error"] == "unavailable"
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["bus"].startswith("unavailable")
        finally:
            admin.execute("ALTER TABLE bus.messages_away RENAME TO messages")
        staged = tmp_path / "raw" / "_staging"
        assert not staged.exists() or not [p for p in staged.rglob("*") if p.is_file()]
        assert admin.execute("SELECT count(*) FROM ingestion.submissions").fetchone() == (0,)
        # The same door recovers without a restart.
        response = client.post("/ingest/fhir/json/R4/patient", content=small)
        assert response.status_code == 202, response.text
        assert wait_status(client, response.json()["uuid"], {"stored"})
