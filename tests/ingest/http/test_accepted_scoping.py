"""A submission is its client's from the 202 on: before it is recorded (``serve --http``
alone keeps it `accepted`), another client's uuid is a 404, as once it is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.services.mm_bronze import MmBronze, run_cli

ROUTE = "/ingest/fhir/json/R4/patient"
ROLES = {"alice": "ingest", "bob": "ingest", "root": "admin"}


def add_clients(env: dict[str, str]) -> dict[str, str]:
    """Create the clients of ``ROLES``: their tokens."""
    tokens = {}
    for name, role in ROLES.items():
        result = run_cli("clients", "add", name, "--role", role, env=env)
        assert result.returncode == 0, result.stderr
        tokens[name] = result.stdout.strip()
    return tokens


def check_accepted_are_scoped(url: str, tokens: dict[str, str]) -> None:
    """Alice and bob each send a lone submission and a concurrent group (one statement per
    group commit); each sees only its own while they are `accepted`, and root sees all."""

    def headers(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[name]}"}

    async def send(name: str, count: int) -> list[str]:
        async with httpx.AsyncClient(base_url=url, headers=headers(name), timeout=30) as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        ROUTE,
                        content=b'{"resourceType": "Patient", "id": "%s-%d"}' % (name.encode(), n),
                    )
                    for n in range(count)
                )
            )
        assert all(a.status_code == 202 for a in answers), [a.text for a in answers]
        return [a.json()["uuid"] for a in answers]

    owners = {}
    for name in ("alice", "bob"):
        for count in (1, 30):
            owners.update(dict.fromkeys(asyncio.run(send(name, count)), name))
    for name in ("alice", "bob", "root"):
        with httpx.Client(base_url=url, headers=headers(name), timeout=30) as client:
            for submission, owner in owners.items():
                status = client.get(f"/ingest/{submission}")
                content = client.get(f"/ingest/{submission}/content")
                if name in (owner, "root"):
                    assert status.status_code == 200, (name, status.text)
                    assert status.json()["status"] == "accepted"
                    assert status.json()["client"] == owner
                    assert content.status_code == 404
                    assert content.json()["error"] == "not_stored"
                else:
                    assert status.status_code == content.status_code == 404, name
                    assert status.json() == content.json()
                    assert status.json()["error"] == "not_found"
                    assert status.json()["message"] == f"no submission {submission}"


@pytest.fixture(scope="module")
def http_only(
    tmp_path_factory: pytest.TempPathFactory, module_dsn: str
) -> Iterator[tuple[MmBronze, dict[str, str]]]:
    env = {"POSTGRES_DSN": module_dsn}
    tokens = add_clients(env)
    proc = MmBronze(tmp_path_factory.mktemp("mmb-scoped"), "--http", env=env).start()
    yield proc, tokens
    proc.stop()


def test_another_clients_accepted_submission_is_404(
    http_only: tuple[MmBronze, dict[str, str]],
) -> None:
    proc, tokens = http_only
    check_accepted_are_scoped(proc.url, tokens)
