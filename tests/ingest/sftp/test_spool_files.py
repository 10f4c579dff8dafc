"""The spool's own files: spare files made ahead and never leaked, large uploads written
back as they arrive, and the per-user file bound as files come and go and across restarts."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import asyncssh
import pytest

from mm_bronze.ingest.sftp.spare import SPARES
from tests.ingest.sftp.helpers import (
    stored_bytes,
    wait_paths,
    write_users,
)
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze

MAX_FILES = 3
PASSWORD = "quinn-pw"
HL7 = (
    b"MSH|^~\\&|LAB|HOSP|BRONZE|DATA|20250101120000||ORU^R01|SPOOL-%d|P|2.5.1\r"
    b"PID|1||SPOOL^^^HOSP^MR||Doe^Jane\r"
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("sftp-spool")
    write_users(data_dir, {"quinn": (PASSWORD, "read,write,delete")})
    return data_dir


@pytest.fixture(scope="module")
def env(module_dsn: str) -> dict[str, str]:
    return {"POSTGRES_DSN": module_dsn, "MM_BRONZE_SFTP_MAX_FILES_PER_USER": str(MAX_FILES)}


@pytest.fixture(scope="module")
def server(data_dir: Path, env: dict[str, str]) -> Iterator[MmBronze]:
    proc = MmBronze(data_dir, env=env)
    proc.start()
    yield proc
    proc.stop()


async def upload(sftp: asyncssh.SFTPClient, name: str, n: int) -> None:
    async with sftp.open(name, "wb") as f:
        await f.write(HL7 % n)


async def refused(sftp: asyncssh.SFTPClient, name: str) -> None:
    with pytest.raises(asyncssh.SFTPPermissionDenied, match="too many files"):
        await upload(sftp, name, 0)


def session(server: MmBronze) -> AbstractAsyncContextManager[asyncssh.SSHClientConnection]:
    return asyncssh.connect(
        "127.0.0.1",
        server.sftp_port,
        username="quinn",
        password=PASSWORD,
        known_hosts=None,
        client_keys=None,
        agent_path=None,
    )


def test_spare_files_are_made_at_start_handed_out_and_removed_at_stop(
    server: MmBronze, data_dir: Path, module_dsn: str
) -> None:
    spare = data_dir / "sftp" / "spare"
    home = data_dir / "sftp" / "home" / "quinn"
    server.stop()
    assert spare.is_dir() and not list(spare.iterdir()), "removed at stop"
    (spare / "spare-left-by-a-crash").write_bytes(b"")
    server.start()
    wait_for(lambda: len(list(spare.iterdir())) == SPARES, what="spares made at start")
    assert not (spare / "spare-left-by-a-crash").exists()
    since = dt.datetime.now(dt.UTC)

    async def run() -> None:
        async with session(server) as conn, conn.start_sftp_client() as sftp:
            for n in range(2 * SPARES + 1):  # more than the pool holds: it refills
                await upload(sftp, f"/s{n}.hl7", 300 + n)
                await sftp.remove(f"/s{n}.hl7")  # within the bound of files per user
            await upload(sftp, "/s0.hl7", 400)  # the same name again, then a rewrite of it
            await upload(sftp, "/s0.hl7", 401)

    asyncio.run(run())
    uploads = {f"/s{n}.hl7": 1 for n in range(2 * SPARES + 1)} | {"/s0.hl7": 3}
    rows = wait_paths(module_dsn, "quinn", uploads, since)
    assert rows.keys() == uploads.keys()
    for name, found in rows.items():
        n = int(name.removeprefix("/s").removesuffix(".hl7"))
        payloads = [stored_bytes(row["storage_path"]) for row in found]
        assert payloads == [HL7 % (300 + n)] + ([HL7 % 400, HL7 % 401] if n == 0 else [])
    wait_for(lambda: not list(home.rglob("*")), what="the session's copies removed")
    assert 0 < len(list(spare.iterdir())) <= SPARES
    server.stop()
    assert not list(spare.iterdir()), "no spare left behind"
    server.start()


def test_a_large_upload_written_back_as_it_arrives_lands_whole(
    server: MmBronze, module_dsn: str, tmp_path: Path
) -> None:
    since = dt.datetime.now(dt.UTC)
    local = tmp_path / "large.bin"
    local.write_bytes(os.urandom(21 * 1024 * 1024 + 5))  # several writebacks, then the fsync

    async def run() -> None:
        async with session(server) as conn, conn.start_sftp_client() as sftp:
            await sftp.put(str(local), "/large.bin")

    asyncio.run(run())
    rows = wait_paths(module_dsn, "quinn", {"/large.bin": 1}, since)
    assert rows.keys() == {"/large.bin"}
    [row] = rows["/large.bin"]
    assert row["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()
    assert stored_bytes(row["storage_path"]) == local.read_bytes()


def test_the_file_bound_follows_removals_replacements_and_rewrites(server: MmBronze) -> None:
    async def run() -> None:
        async with session(server) as conn, conn.start_sftp_client() as sftp:
            for n in range(MAX_FILES):  # uploaded files stay in the home until the session ends
                await upload(sftp, f"/f{n}.hl7", n)
            await refused(sftp, "/more.hl7")
            await upload(sftp, "/f0.hl7", 10)  # rewriting a file adds none
            await sftp.remove("/f0.hl7")
            await upload(sftp, "/g0.hl7", 11)  # the removed file's place
            await refused(sftp, "/more.hl7")
            await sftp.posix_rename("/f1.hl7", "/f2.hl7")  # replaces one: a place frees
            await upload(sftp, "/g1.hl7", 12)
            await refused(sftp, "/more.hl7")
        async with session(server) as conn, conn.start_sftp_client() as sftp:
            for n in range(MAX_FILES):  # the last session's copies are gone, and counted so
                await upload(sftp, f"/h{n}.hl7", 20 + n)
            await refused(sftp, "/more.hl7")

    asyncio.run(run())


def test_the_file_bound_holds_after_a_restart(
    server: MmBronze, data_dir: Path, env: dict[str, str]
) -> None:
    home = data_dir / "sftp" / "home" / "quinn"

    async def fill(proc: MmBronze, first: int) -> None:
        async with session(proc) as conn, conn.start_sftp_client() as sftp:
            for n in range(MAX_FILES):
                await upload(sftp, f"/r{first + n}.hl7", first + n)
            await refused(sftp, "/more.hl7")

    asyncio.run(fill(server, 100))
    server.stop()
    server.start()  # the spool is cleaned at start: the count begins from what is on disk
    assert not [p for p in home.rglob("*") if p.is_file()]
    asyncio.run(fill(server, 200))
