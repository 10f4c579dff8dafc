"""When the database that knows the API clients cannot be read, every authenticated route
answers 503 with Retry-After (never a 500), and recovers without a restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg

from tests.services.mm_bronze import MmBronze, run_cli

UUID = "6f1c1a53-7c6b-4d7e-9a51-5f0a3c1b2d44"
REQUESTS = [
    ("POST", "/ingest/fhir/json/R4/patient"),
    ("GET", f"/ingest/{UUID}"),
    ("GET", f"/ingest/{UUID}/content"),
    ("GET", "/submissions"),
    ("GET", "/dead-letters"),
    ("GET", "/dead-letters/1"),
    ("DELETE", "/dead-letters/1"),
    ("POST", "/dead-letters/1/replay"),
    ("GET", "/metrics"),
]


def test_clients_unreadable_is_503_on_every_route_then_recovers(dsn: str, tmp_path: Path) -> None:
    env = {"POSTGRES_DSN": dsn}
    added = run_cli("clients", "add", "root", "--role", "admin", env=env)
    assert added.returncode == 0, added.stderr
    auth = {"Authorization": f"Bearer {added.stdout.strip()}"}
    body = b'{"resourceType": "Patient", "id": "db-down"}'
    with (
        MmBronze(tmp_path, env=env) as proc,
        httpx.Client(base_url=proc.url, headers=auth, timeout=30) as client,
        psycopg.connect(dsn, autocommit=True) as admin,
    ):
        admin.execute("ALTER TABLE ingestion.api_clients RENAME TO api_clients_away")
        try:
            for method, path in REQUESTS:
                response = client.request(method, path, content=body if method == "POST" else None)
                assert response.status_code == 503, (method, path, response.text)
                assert response.headers["retry-after"] == "5", (method, path)
                assert response.json()["error"] == "unavailable", (method, path)
        finally:
            admin.execute("ALTER TABLE ingestion.api_clients_away RENAME TO api_clients")
        assert client.post(REQUESTS[0][1], content=body).status_code == 202
        assert client.get("/submissions").status_code == 200
        assert client.get("/dead-letters").status_code == 200
