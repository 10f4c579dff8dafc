"""`mm-bronze submissions list` and `get`, against the database and storage of a real serve."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.ingest.http.helpers import sha256, wait_status
from tests.services.mm_bronze import MmBronze, run_cli


@dataclass
class Served:
    proc: MmBronze
    env: dict[str, str]
    bodies: dict[str, bytes]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--data-dir", str(self.proc.data_dir), env=self.env)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[Served]:
    env = {"POSTGRES_DSN": module_dsn, "MM_BRONZE_STORAGE_COMPRESSION": "zstd"}
    proc = MmBronze(tmp_path_factory.mktemp("cli-subs"), env=env).start()
    bodies = {}
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as client:
            for i in range(3):
                body = f'{{"resourceType": "Patient", "id": "cli-{i}"}}'.encode()
                uuid = client.post("/ingest/fhir/json/R4/patient", content=body).json()["uuid"]
                wait_status(client, uuid, {"stored"})
                bodies[uuid] = body
        yield Served(proc, env, bodies)
    finally:
        proc.stop()


def test_list_prints_an_aligned_table_newest_first(served: Served) -> None:
    result = served.cli("submissions", "list")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == "time uuid client source format status size path".split()
    assert [row.split()[2] for row in rows] == list(reversed(served.bodies))
    assert len({row.index(row.split()[2]) for row in rows}) == 1, "uuid column aligned"
    assert all(row.split()[3:7] == ["-", "api", "fhir/json", "stored"] for row in rows)


def test_list_json_filters_and_pages(served: Served) -> None:
    uuids = list(served.bodies)
    result = served.cli("submissions", "list", "--json", "--limit", "2")
    page = json.loads(result.stdout)
    assert [i["uuid"] for i in page["items"]] == uuids[::-1][:2]
    rest = json.loads(
        served.cli("submissions", "list", "--json", "--before", str(page["next"])).stdout
    )
    assert [i["uuid"] for i in rest["items"]] == [uuids[0]]
    assert rest["next"] is None
    one = sha256(served.bodies[uuids[1]])
    found = json.loads(served.cli("submissions", "list", "--json", "--sha256", one).stdout)
    assert [i["uuid"] for i in found["items"]] == [uuids[1]]
    feed = json.loads(served.cli("submissions", "list", "--json", "--after", "0").stdout)
    assert [i["uuid"] for i in feed["items"]] == uuids
    none = served.cli("submissions", "list", "--source", "sftp")
    assert none.returncode == 0
    assert "no submissions match" in none.stderr


def test_list_rejects_bad_values_in_one_line(served: Served) -> None:
    for args in (
        ["--since", "yesterday"],
        ["--sha256", "abc"],
        ["--path", "/no/user.hl7"],
        ["--limit", "0"],
        ["--after", "1", "--before", "2"],
        ["--order", "desc", "--after", "1"],
        ["--source", "fax"],
    ):
        result = served.cli("submissions", "list", *args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr
        assert "error:" in result.stderr.splitlines()[-1], args


def test_get_writes_the_exact_bytes(served: Served, tmp_path: Path) -> None:
    for uuid, body in served.bodies.items():
        out = tmp_path / f"{uuid}.json"
        result = served.cli("submissions", "get", uuid, "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert out.read_bytes() == body
    uuid, body = next(iter(served.bodies.items()))
    piped = subprocess.run(
        [sys.executable, "-m", "mm_bronze", "submissions", "get", uuid],
        env={**os.environ, **served.env, "MM_BRONZE_DATA_DIR": str(served.proc.data_dir)},
        capture_output=True,
        timeout=60,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == body


def test_get_refuses_to_write_to_a_terminal(served: Served) -> None:
    uuid = next(iter(served.bodies))
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "mm_bronze", "submissions", "get", uuid],
            env={**os.environ, **served.env, "MM_BRONZE_DATA_DIR": str(served.proc.data_dir)},
            stdout=follower,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        "mm-bronze: error: refusing to write a payload to the terminal: "
        "use --out FILE or redirect stdout"
    )


def test_get_unknown_uuid_is_one_line(served: Served) -> None:
    result = served.cli("submissions", "get", "6f1c1a53-7c6b-4d7e-9a51-5f0a3c1b2d44")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "mm-bronze: error: no submission 6f1c1a53-7c6b-4d7e-9a51-5f0a3c1b2d44"
    )
    bad = served.cli("submissions", "get", "nope")
    assert bad.returncode == 2
