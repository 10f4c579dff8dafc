"""Finding submissions: GET /submissions filters, paging and scoping, and the stored bytes
of GET /ingest/{uuid}/content, against a real `serve --all` with a gzip-compressed store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.ingest.http.helpers import sha256, wait_status
from tests.ingest.sftp.helpers import write_users
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze, run_cli

ROUTE = "/ingest/fhir/json/R4/patient"
SFTP_PATH = "/results/2026-12-01.hl7"
ROLES = {"alice": "ingest", "bob": "ingest", "carol": "read", "root": "admin"}


def patient(name: str) -> bytes:
    return f'{{"resourceType": "Patient", "id": "{name}", "active": true}}'.encode()


@dataclass
class Landed:
    proc: MmBronze
    tokens: dict[str, str]
    bodies: dict[str, bytes]  # uuid → bytes sent
    owners: dict[str, str]  # uuid → client
    duplicate: str  # alice's copy of bob's payload
    bob_first: str
    sftp: str

    def client(self, name: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[name]}"}
        return httpx.Client(base_url=self.proc.url, headers=headers, timeout=30)


def listed(http: httpx.Client, **params: str | int) -> list[dict]:
    response = http.get("/submissions", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def upload(port: int, user: str, password: str, path: str, data: bytes) -> None:
    from tests.ingest.sftp.helpers import password_sftp

    async with password_sftp(port, user, password) as sftp:
        await sftp.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        async with sftp.open(path, "wb") as f:
            await f.write(data)


@pytest.fixture(scope="module")
def landed(
    tmp_path_factory: pytest.TempPathFactory, module_dsn: str, corpus: Path
) -> Iterator[Landed]:
    env = {"POSTGRES_DSN": module_dsn}
    tokens = {}
    for name, role in ROLES.items():
        result = run_cli("clients", "add", name, "--role", role, env=env)
        assert result.returncode == 0, result.stderr
        tokens[name] = result.stdout.strip()
    data_dir = tmp_path_factory.mktemp("finding")
    write_users(data_dir, {"lab1": ("lab1-pw", "read,write")})
    proc = MmBronze(data_dir, env={**env, "MM_BRONZE_STORAGE_COMPRESSION": "gzip"}).start()
    try:
        state = Landed(proc, tokens, {}, {}, "", "", "")

        def post(name: str, body: bytes) -> str:
            with state.client(name) as client:
                response = client.post(ROUTE, content=body)
                assert response.status_code == 202, response.text
                uuid = str(response.json()["uuid"])
                wait_status(client, uuid, {"stored", "duplicate"})
            state.bodies[uuid] = body
            state.owners[uuid] = name
            return uuid

        for i in range(3):
            post("alice", patient(f"alice-{i}"))
        state.bob_first = post("bob", patient("shared"))
        state.duplicate = post("alice", patient("shared"))
        hl7 = (corpus / "hl7v2" / "Lyme_HappyPath.txt").read_bytes()
        asyncio.run(upload(proc.sftp_port, "lab1", "lab1-pw", SFTP_PATH, hl7))
        with state.client("root") as root:
            (item,) = wait_for(
                lambda: listed(root, source="sftp"), timeout=60, what="the SFTP upload listed"
            )
        state.sftp = item["uuid"]
        state.bodies[state.sftp] = hl7
        state.owners[state.sftp] = "lab1"
        yield state
    finally:
        proc.stop()


def test_each_client_sees_its_own_admin_sees_all(landed: Landed) -> None:
    for name in ("alice", "bob", "carol", "root"):
        with landed.client(name) as client:
            items = listed(client)
        want = {u for u, owner in landed.owners.items() if name == "root" or owner == name}
        assert {i["uuid"] for i in items} == want, name
        seqs = [i["seq"] for i in items]
        assert seqs == sorted(seqs, reverse=True), "newest first by default"


def test_storage_paths_are_relative_and_lineage_is_scoped(landed: Landed) -> None:
    with landed.client("alice") as alice:
        items = listed(alice)
        (mine,) = [i for i in items if i["uuid"] == landed.duplicate]
        status = alice.get(f"/ingest/{landed.duplicate}").json()
        content = alice.get(f"/ingest/{landed.duplicate}/content")
    assert mine["status"] == status["status"] == "duplicate"
    # bob's uuid, and the path of bob's object (his route labels, his date), are not alice's
    assert mine["duplicate_of"] is None and status["duplicate_of"] is None
    assert mine["storage_path"] is None and status["storage_path"] is None
    assert content.content == patient("shared"), "the bytes stay hers to read"
    assert mine["compression"] == "gzip"
    for item in items:
        if item["uuid"] != landed.duplicate:
            assert item["storage_path"].startswith("fhir/json/R4/patient/date="), item
    with landed.client("bob") as bob:
        status = bob.get(f"/ingest/{landed.bob_first}").json()
    assert status["storage_path"].startswith("fhir/json/R4/patient/date=")
    with landed.client("root") as root:
        (seen,) = listed(root, status="duplicate")
        status = root.get(f"/ingest/{landed.duplicate}").json()
    assert seen["duplicate_of"] == status["duplicate_of"] == landed.bob_first
    assert seen["storage_path"].startswith("fhir/json/R4/patient/date=")
    assert status["storage_path"] == seen["storage_path"]


def test_filters(landed: Landed) -> None:
    shared = sha256(patient("shared"))
    with landed.client("root") as root:
        uuids = {u for u in landed.owners}

        def found(**params: str | int) -> set[str]:
            return {i["uuid"] for i in listed(root, **params)}

        assert found(client="alice") == {u for u in uuids if landed.owners[u] == "alice"}
        assert found(source="sftp") == {landed.sftp}
        assert found(source="api") == uuids - {landed.sftp}
        assert found(source="mllp") == set()
        assert found(format="hl7") == {landed.sftp}
        assert found(format="fhir") == uuids - {landed.sftp}
        assert found(status="duplicate") == {landed.duplicate}
        assert found(status="stored") == uuids - {landed.duplicate}
        assert found(sha256=shared) == {landed.bob_first, landed.duplicate}
        assert found(sha256=shared.upper(), client="bob") == {landed.bob_first}
        items = sorted(listed(root), key=lambda i: i["received_at"])
        middle = items[2]["received_at"]
        later = {i["uuid"] for i in items if i["received_at"] >= middle}
        assert found(since=middle) == later
        assert found(until=middle) == uuids - later
        assert found(since="2999-01-01") == set()
    with landed.client("alice") as alice:
        assert {i["uuid"] for i in listed(alice, sha256=shared)} == {landed.duplicate}
        assert listed(alice, client="bob") == []


def test_an_sftp_file_is_found_by_its_path(landed: Landed) -> None:
    with landed.client("root") as root:
        (item,) = listed(root, path=f"lab1:{SFTP_PATH}")
        assert listed(root, path=f"lab2:{SFTP_PATH}") == []
    assert item["uuid"] == landed.sftp
    assert item["path"] == f"lab1:{SFTP_PATH}"
    assert item["client"] == "lab1"
    accepted = [
        json.loads(line)
        for line in landed.proc.logs().splitlines()
        if '"sftp upload accepted"' in line
    ]
    assert [(e["uuid"], e["user"], e["path"]) for e in accepted] == [
        (landed.sftp, "lab1", SFTP_PATH)
    ]


def test_the_cli_finds_an_sftp_file_by_its_path(landed: Landed, module_dsn: str) -> None:
    env = {"POSTGRES_DSN": module_dsn}
    result = run_cli("submissions", "list", "--path", f"lab1:{SFTP_PATH}", env=env)
    assert result.returncode == 0, result.stderr
    _header, row = result.stdout.splitlines()
    assert row.split()[2] == landed.sftp
    assert row.split()[-1] == f"lab1:{SFTP_PATH}"


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_paging_has_no_gaps_or_repeats(landed: Landed, order: str) -> None:
    cursor_name = "before" if order == "desc" else "after"
    with landed.client("root") as root:
        everything = listed(root, order=order, limit=1000)
        seen: list[str] = []
        params: dict[str, str | int] = {"order": order, "limit": 2}
        while True:
            body = root.get("/submissions", params=params).json()
            seen += [i["uuid"] for i in body["items"]]
            if not body["items"] or body["next"] is None:
                break
            params = {cursor_name: body["next"], "limit": 2}
    assert seen == [i["uuid"] for i in everything]
    assert len(seen) == len(landed.owners)


def test_a_clients_feed_cursor_moves_past_other_clients_rows(landed: Landed) -> None:
    with landed.client("root") as root:
        newest = listed(root, limit=1)[0]["seq"]
    with landed.client("bob") as bob:
        page = bob.get("/submissions", params={"after": 0}).json()
    assert [i["uuid"] for i in page["items"]] == [landed.bob_first]
    assert page["next"] == newest > page["items"][0]["seq"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"source": "fax"}, "source"),
        ({"status": "failed"}, "status"),
        ({"status": "lost"}, "status"),
        ({"sha256": "abc"}, "sha256"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "²"}, "limit"),  # a digit to str.isdigit, not to int()
        ({"limit": "9" * 5000}, "limit"),  # more digits than int() converts
        ({"after": "-1"}, "after"),
        ({"after": "9" * 5000}, "after"),
        ({"before": "x"}, "before"),
        ({"after": "1", "before": "5"}, "before"),
        ({"order": "sideways"}, "order"),
        ({"order": "desc", "after": "3"}, "order"),
        ({"wait": "5"}, "wait"),
        ({"after": "0", "wait": "61"}, "wait"),
        ({"after": "0", "wait": "soon"}, "wait"),
        ({"path": "/results/x.hl7"}, "path"),
        ({"format": "fhir json"}, "format"),
        ({"client": "a\x00b"}, "client"),  # not a 503 from the database refusing it
        ({"path": "lab1:/a\x00"}, "path"),
        ({"colour": "blue"}, "colour"),
        ((("source", "api"), ("source", "sftp")), "source"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    landed: Landed, params: dict[str, str] | tuple[tuple[str, str], ...], name: str
) -> None:
    with landed.client("root") as root:
        response = root.get("/submissions", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_parameter"
    assert body["parameter"] == name
    assert body["message"].startswith(f"{name}: ")


def test_tokens_are_required(landed: Landed) -> None:
    some = next(iter(landed.owners))
    for path in ("/submissions", f"/ingest/{some}/content"):
        refused = httpx.get(landed.proc.url + path)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"] == "Bearer", path


def test_content_is_the_bytes_received(landed: Landed) -> None:
    for uuid, body in landed.bodies.items():
        owner = landed.owners[uuid]
        name = owner if owner in landed.tokens else "root"
        with landed.client(name) as client:
            response = client.get(f"/ingest/{uuid}/content")
        assert response.status_code == 200, response.text
        assert response.content == body
        assert response.headers["etag"] == f'"{sha256(body)}"'
        assert int(response.headers["content-length"]) == len(body)
        want = "x-application/hl7-v2+er7" if uuid == landed.sftp else "application/fhir+json"
        assert response.headers["content-type"].split(";")[0] == want
    with landed.client("root") as root:
        status = root.get(f"/ingest/{landed.sftp}").json()
        assert status["compression"] == "gzip"
        stored = landed.proc.data_dir / "raw" / status["storage_path"]
        assert stored.read_bytes() != landed.bodies[landed.sftp], "the store is compressed"


def test_content_revalidates_with_the_etag(landed: Landed) -> None:
    uuid = landed.bob_first
    with landed.client("bob") as bob:
        etag = bob.get(f"/ingest/{uuid}/content").headers["etag"]
        again = bob.get(f"/ingest/{uuid}/content", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    assert again.content == b""
    with landed.client("bob") as bob:
        head = bob.head(f"/ingest/{uuid}/content")
    assert head.status_code == 200
    assert head.headers["etag"] == etag
    assert head.content == b""


def test_content_of_another_client_is_404(landed: Landed) -> None:
    alice_own = next(u for u, owner in landed.owners.items() if owner == "alice")
    for name in ("bob", "carol"):
        with landed.client(name) as client:
            response = client.get(f"/ingest/{alice_own}/content")
        assert response.status_code == 404, name
        assert response.json()["error"] == "not_found"
    with landed.client("root") as root:
        assert root.get(f"/ingest/{alice_own}/content").status_code == 200


def test_content_of_unknown_or_bad_uuid(landed: Landed) -> None:
    with landed.client("root") as root:
        missing = root.get("/ingest/6f1c1a53-7c6b-4d7e-9a51-5f0a3c1b2d44/content")
        assert missing.status_code == 404
        bad = root.get("/ingest/not-a-uuid/content")
        assert bad.status_code == 400
        assert bad.json()["error"] == "invalid_uuid"
