"""API tokens: created by `mm-bronze clients add`, stored hashed, required once a client exists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.ingest.http.helpers import wait_status
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze, free_port, run_cli
from tests.services.postgres import create_database

BODY = b'{"resourceType": "Patient", "id": "auth"}'
ROUTE = "/ingest/fhir/json/R4/patient"


@pytest.fixture(scope="module")
def tokens(module_dsn: str) -> dict[str, str]:
    out = {}
    for name in ("alice", "bob"):
        result = run_cli("clients", "add", name, env={"POSTGRES_DSN": module_dsn})
        assert result.returncode == 0, result.stderr
        out[name] = result.stdout.strip()
        assert out[name].startswith("mmb_")
    return out


@pytest.fixture(scope="module")
def authed(
    tmp_path_factory: pytest.TempPathFactory, module_dsn: str, tokens: dict[str, str]
) -> Iterator[MmBronze]:
    proc = MmBronze(tmp_path_factory.mktemp("auth"), env={"POSTGRES_DSN": module_dsn})
    proc.start()
    yield proc
    proc.stop()


def test_tokens_are_stored_hashed(module_dsn: str, tokens: dict[str, str]) -> None:
    with psycopg.connect(module_dsn) as conn:
        stored = conn.execute("SELECT token_hash FROM ingestion.api_clients").fetchall()
    assert len(stored) == 2
    for (digest,) in stored:
        assert tokens["alice"].encode() not in bytes(digest)
    listed = run_cli("clients", "list", env={"POSTGRES_DSN": module_dsn})
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["alice", "bob"]
    assert "mmb_" not in listed.stdout


def test_missing_token_is_401(authed: MmBronze) -> None:
    response = httpx.post(authed.url + ROUTE, content=BODY)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in response.json()["message"]
    status = httpx.get(authed.url + "/ingest/6f1c1a53-7c6b-4d7e-9a51-5f0a3c1b2d44")
    assert status.status_code == 401
    assert status.headers["www-authenticate"] == "Bearer"


def test_wrong_token_is_401(authed: MmBronze) -> None:
    for header in ("Bearer mmb_wrong", "Basic YWxpY2U6c2VjcmV0", "Bearer"):
        response = httpx.post(authed.url + ROUTE, content=BODY, headers={"Authorization": header})
        assert response.status_code == 401, header


def test_token_identifies_its_client(authed: MmBronze, tokens: dict[str, str]) -> None:
    for name, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=authed.url, headers=headers, timeout=30) as client:
            response = client.post(ROUTE, content=BODY)
            assert response.status_code == 202, response.text
            status = wait_status(client, response.json()["uuid"], {"stored", "duplicate"})
        assert status["client"] == name


def test_removed_client_is_refused(authed: MmBronze, module_dsn: str) -> None:
    result = run_cli("clients", "add", "carol", env={"POSTGRES_DSN": module_dsn})
    token = result.stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.post(authed.url + ROUTE, content=BODY, headers=headers).status_code == 202
    assert run_cli("clients", "remove", "carol", env={"POSTGRES_DSN": module_dsn}).returncode == 0
    # Tokens are cached for a few seconds; poll until the removal takes effect.
    wait_for(
        lambda: httpx.post(authed.url + ROUTE, content=BODY, headers=headers).status_code,
        lambda status: status == 401,
        timeout=20,
        every=0.5,
        what="the removed client's token to be refused",
    )


def test_a_token_is_checked_before_the_query_parameters(
    authed: MmBronze, tokens: dict[str, str]
) -> None:
    """A submission's routes take no query parameter: without a token a request is a 401
    whatever it asks, with one an unknown parameter is a 400 naming it."""
    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    with httpx.Client(base_url=authed.url, headers=headers, timeout=30) as client:
        uuid = client.post(ROUTE, content=BODY).json()["uuid"]
        wait_status(client, uuid, {"stored", "duplicate"})
    for path in (f"/ingest/{uuid}", f"/ingest/{uuid}/content"):
        anonymous = httpx.get(authed.url + path + "?sinse=2026-12-01")
        assert anonymous.status_code == 401, path
        refused = httpx.get(authed.url + path + "?sinse=2026-12-01", headers=headers)
        assert refused.status_code == 400, path
        assert refused.json() == {
            "error": "invalid_parameter",
            "message": "sinse: unknown parameter; this route takes none",
            "parameter": "sinse",
        }
        assert httpx.get(authed.url + path, headers=headers).status_code == 200, path


def test_public_bind_without_clients_refuses_to_start(pg_admin_dsn: str, tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        "--http",
        "--http-host",
        "0.0.0.0",
        "--http-port",  # not the default: a `make run` beside the tests holds it
        str(free_port()),
        "--data-dir",
        str(tmp_path),
        env={"POSTGRES_DSN": create_database(pg_admin_dsn)},
    )
    assert result.returncode == 2, result.stderr
    assert "clients add" in result.stderr
