"""Tenants kept apart: a client sees its own submissions; lineage across clients is admin's."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.ingest.http.helpers import wait_status
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze, run_cli

ROUTE = "/ingest/fhir/json/R4/patient"


def body(tag: str) -> bytes:
    return b'{"resourceType": "Patient", "id": "%s"}' % tag.encode()


@pytest.fixture(scope="module")
def tokens(module_dsn: str) -> dict[str, str]:
    out = {}
    for name, role in (
        ("alice", "ingest"),
        ("bob", "ingest"),
        ("auditor", "read"),
        ("ops", "admin"),
    ):
        result = run_cli("clients", "add", name, "--role", role, env={"POSTGRES_DSN": module_dsn})
        assert result.returncode == 0, result.stderr
        out[name] = result.stdout.strip()
    return out


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_dsn: str, tokens: dict[str, str]
) -> Iterator[MmBronze]:
    proc = MmBronze(tmp_path_factory.mktemp("tenants"), env={"POSTGRES_DSN": module_dsn})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def as_client(server: MmBronze, tokens: dict[str, str]) -> Iterator[dict[str, httpx.Client]]:
    clients = {
        name: httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        for name, token in tokens.items()
    }
    yield clients
    for client in clients.values():
        client.close()


def submit(client: httpx.Client, data: bytes) -> str:
    response = client.post(ROUTE, content=data)
    assert response.status_code == 202, response.text
    return str(response.json()["uuid"])


def test_roles_are_listed(module_dsn: str, tokens: dict[str, str]) -> None:
    listed = run_cli("clients", "list", env={"POSTGRES_DSN": module_dsn})
    roles = {line.split("\t")[0]: line.split("\t")[1] for line in listed.stdout.splitlines()}
    assert roles == {"alice": "ingest", "auditor": "read", "bob": "ingest", "ops": "admin"}


def test_a_client_sees_only_its_own_submissions(as_client: dict[str, httpx.Client]) -> None:
    uuid = submit(as_client["alice"], body("alice-only"))
    own = wait_status(as_client["alice"], uuid, {"stored"})
    assert own["client"] == "alice"
    # The storage path is relative to the store, never a host path or URL.
    assert own["storage_path"].startswith("fhir/json/R4/patient/date="), own["storage_path"]
    for other in ("bob", "auditor"):
        response = as_client[other].get(f"/ingest/{uuid}")
        assert response.status_code == 404, (other, response.text)
        assert response.json()["error"] == "not_found"
    seen = as_client["ops"].get(f"/ingest/{uuid}").json()
    assert seen["client"] == "alice" and seen["sha256"] == own["sha256"]


def test_lineage_across_clients_is_visible_to_admin_only(
    as_client: dict[str, httpx.Client],
) -> None:
    data = body("sent-by-both")
    first = submit(as_client["alice"], data)
    wait_status(as_client["alice"], first, {"stored"})
    second = submit(as_client["bob"], data)
    seen_by_bob = wait_status(as_client["bob"], second, {"duplicate"})
    assert seen_by_bob["duplicate_of"] is None  # who sent it first is not bob's to know
    seen_by_ops = as_client["ops"].get(f"/ingest/{second}").json()
    assert seen_by_ops["duplicate_of"] == first
    # A client's own resend still points at its own first submission.
    third = submit(as_client["alice"], data)
    assert wait_status(as_client["alice"], third, {"duplicate"})["duplicate_of"] == first


def test_read_role_may_not_submit(as_client: dict[str, httpx.Client]) -> None:
    response = as_client["auditor"].post(ROUTE, content=body("not-allowed"))
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "message": "client 'auditor' has role 'read', which may not submit",
    }


def test_unknown_role_is_refused(module_dsn: str) -> None:
    result = run_cli("clients", "add", "eve", "--role", "root", env={"POSTGRES_DSN": module_dsn})
    assert result.returncode == 2
    assert "invalid choice: 'root'" in result.stderr


def test_removing_the_last_client_does_not_reopen_the_door(
    tmp_path_factory: pytest.TempPathFactory, dsn: str
) -> None:
    env = {"POSTGRES_DSN": dsn}
    server = MmBronze(tmp_path_factory.mktemp("last-client"), env=env)
    with server:
        assert httpx.post(server.url + ROUTE, content=body("open")).status_code == 202
        assert run_cli("clients", "add", "only", env=env).returncode == 0
        removed = run_cli("clients", "remove", "only", env=env)
        assert removed.returncode == 0
        assert "last API client" in removed.stderr
        wait_for(  # the server re-reads the access policy every 5 s
            lambda: httpx.post(server.url + ROUTE, content=body("closed")).status_code,
            lambda status: status == 401,
            timeout=20,
            every=0.5,
            what="anonymous access refused",
        )
    restarted = MmBronze(server.data_dir, env=env)
    with restarted:
        assert httpx.post(restarted.url + ROUTE, content=body("closed")).status_code == 401
        assert "no API clients left: every request is refused" in restarted.logs()
