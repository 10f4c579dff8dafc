"""A successful close means durable: when the bus is down the close fails and nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path

import asyncssh
import paramiko
import pytest

from tests.ingest.sftp.helpers import (
    by_name,
    landed,
    markers,
    password_sftp,
    set_bus,
    stored_bytes,
    wait_landed,
    write_users,
)
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze

PASSWORD = "dora-pw"


@contextmanager
def paramiko_sftp(port: int) -> Iterator[paramiko.SFTPClient]:
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.connect(username="dora", password=PASSWORD)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        yield sftp
        sftp.close()
    finally:
        transport.close()


def spooled(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "sftp" / "home" / "dora").rglob("*") if p.is_file())


def dora_sftp(port: int) -> AbstractAsyncContextManager[asyncssh.SFTPClient]:
    return password_sftp(port, "dora", PASSWORD)


async def put(port: int, local: Path, remote: str) -> None:
    async with dora_sftp(port) as sftp:
        await sftp.put(str(local), remote)


async def reopen_unchanged(port: int, remote: str) -> None:
    """Open ``remote`` for writing (keeping its bytes) and close it without writing."""
    async with dora_sftp(port) as sftp:
        handle = await sftp.open(remote, asyncssh.FXF_WRITE, encoding=None)
        await handle.close()


async def test_bus_outage_fails_the_close_then_retry_and_restart_ingest_once(
    tmp_path_factory: pytest.TempPathFactory, dsn: str, corpus: Path
) -> None:
    data_dir = tmp_path_factory.mktemp("sftp-durable")
    write_users(data_dir, {"dora": (PASSWORD, "read,write,delete")})
    env = {
        "POSTGRES_DSN": dsn,
        "MM_BRONZE_SFTP_RETRY_SECONDS": "1",
        "MM_BRONZE_SFTP_INLINE_LIMIT": "65536",
        "MM_BRONZE_SFTP_MAX_CONCURRENT_UPLOADS_PER_USER": "2",
    }
    small = corpus / "fhir-r4-resources" / "json" / "patient-example.json"
    if not small.exists():
        small = next((corpus / "fhir-r4-resources" / "json").glob("*.json"))
    large = corpus / "fhir-r4-resources" / "json" / "binary-example.json"  # staged: > inline
    crashed = corpus / "hl7v2" / "sample_win.hl7"
    first = MmBronze(data_dir, env=env)
    second: MmBronze | None = None
    first.start()
    try:
        with paramiko_sftp(first.sftp_port) as sftp:
            # A per-user quota of concurrent uploads.
            handles = [sftp.open(f"/q{i}.part", "wb") for i in range(2)]
            with pytest.raises(OSError, match="too many concurrent uploads"):
                sftp.open("/q2.part", "wb")
            for handle in handles:
                handle.close()

        set_bus(dsn, up=False)
        for local, remote in ((small, "/a.json"), (large, "/b.json")):
            with pytest.raises(asyncssh.SFTPFailure, match="not ingested"):
                await put(first.sftp_port, local, remote)
        assert {"a.json", "b.json"} <= set(spooled(data_dir)), "kept for retry"
        assert len(markers(data_dir)) == 2
        assert landed(dsn, "dora") == []
        # A handle on a waiting file that writes nothing changes nothing: its close succeeds
        # and the upload waits on, under its own uuid.
        waiting = sorted(p.name for p in markers(data_dir))
        await reopen_unchanged(first.sftp_port, "/a.json")
        assert sorted(p.name for p in markers(data_dir)) == waiting

        set_bus(dsn, up=True)  # the retry loop publishes both, once
        rows = wait_landed(dsn, "dora", 2)
        wait_for(lambda: not markers(data_dir), what="journal drained")
        await asyncio.sleep(1.5)  # a few more retry rounds: nothing is published twice
        names = by_name(landed(dsn, "dora"))
        assert sorted(names) == ["/a.json", "/b.json"]
        assert stored_bytes(names["/a.json"][0]["storage_path"]) == small.read_bytes()
        assert stored_bytes(names["/b.json"][0]["storage_path"]) == large.read_bytes()
        assert len(rows) == 2

        # A crash while an upload waits for the bus: the next start publishes it.
        set_bus(dsn, up=False)
        with pytest.raises(asyncssh.SFTPFailure, match="not ingested"):
            await put(first.sftp_port, crashed, "/c.hl7")
        partial = data_dir / "sftp" / "home" / "dora" / "partial.json"
        partial.write_bytes(b'{"resourceType": "Pat')  # as left by a connection cut mid-file
        host_key = (data_dir / "sftp" / "ssh_host_ed25519_key").read_bytes()
        first.kill()
        set_bus(dsn, up=True)
        second = MmBronze(data_dir, env=env)
        second.start()
        rows = wait_landed(dsn, "dora", 3)
        await asyncio.sleep(1.5)
        names = by_name(landed(dsn, "dora"))
        assert sorted(names) == ["/a.json", "/b.json", "/c.hl7"]
        assert stored_bytes(names["/c.hl7"][0]["storage_path"]) == crashed.read_bytes()
        wait_for(lambda: spooled(data_dir) == [], what="spool cleaned at start")
        assert not markers(data_dir)
        assert (data_dir / "sftp" / "ssh_host_ed25519_key").read_bytes() == host_key
        host_key_lines = [r for r in second.log_records() if r.get("event") == "sftp host key"]
        assert host_key_lines and all(line["created"] is False for line in host_key_lines)
    finally:
        first.stop()
        if second is not None:
            second.stop()
