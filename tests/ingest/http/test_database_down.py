"""When the database that knows the API clients cannot be read, every authenticated route
answers 503 with Retry-After (never a 500), and recovers without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg
import psycopg.conninfo

from tests.polling import wait_for
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


def test_postgresql_unreachable_is_a_503_within_the_connection_wait(
    dsn: str, pg_admin_dsn: str, tmp_path: Path
) -> None:
    """With PostgreSQL refusing every connection, a request that needs one gets its 503 once
    the pool's wait (10 s) is over, not after psycopg's default 30 s, which outlasts most
    clients' own timeouts."""
    env = {"POSTGRES_DSN": dsn}
    added = run_cli("clients", "add", "root", "--role", "admin", env=env)
    assert added.returncode == 0, added.stderr
    auth = {"Authorization": f"Bearer {added.stdout.strip()}"}
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with (
        MmBronze(tmp_path, env=env) as proc,
        httpx.Client(base_url=proc.url, headers=auth, timeout=60) as client,
        psycopg.connect(pg_admin_dsn, autocommit=True) as admin,
    ):
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            # The first requests get the pool's broken connections and fail at once; the
            # next ones wait for a new connection that cannot be made.
            waits: list[float] = []
            while len(waits) < 6 and not any(w > 5 for w in waits):
                started = time.monotonic()
                response = client.get("/submissions")  # the token is never cached
                waits.append(time.monotonic() - started)
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "5"
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert max(waits) > 5, waits  # some did wait for a connection
        assert max(waits) < 20, waits
        recovered = wait_for(
            lambda: client.get("/submissions").status_code, lambda code: code == 200, every=0.5
        )
        assert recovered == 200
