"""Upload patterns: oversize, aborted, temp name then rename, overwrite, many clients."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from pathlib import Path

import asyncssh
import paramiko
import pytest

from tests.ingest.sftp.clients import sftp_session
from tests.ingest.sftp.conftest import MAX_FILE_SIZE, PASSWORDS, SftpDoor
from tests.ingest.sftp.helpers import (
    by_name,
    landed,
    stored_bytes,
    wait_landed,
    wait_paths,
)
from tests.polling import wait_for_async


def spool_files(door: SftpDoor, user: str) -> list[str]:
    return sorted(p.name for p in door.home(user).rglob("*") if p.is_file())


async def test_oversize_upload_is_refused_during_the_write(door: SftpDoor, tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b"{" + b" " * (MAX_FILE_SIZE + 10) + b"}")
    async with sftp_session(door, "alice") as (_conn, sftp):
        with pytest.raises(asyncssh.SFTPFailure, match="maximum size"):
            await sftp.put(str(big), "/big.json")
        assert "big.json" not in await sftp.listdir("/")
    assert "big.json" not in spool_files(door, "alice")
    assert all(r["source_metadata"]["file_name"] != "big.json" for r in landed(door.dsn, "alice"))


async def test_aborted_upload_leaves_nothing(door: SftpDoor) -> None:
    conn = await asyncssh.connect(
        "127.0.0.1",
        door.port,
        username="carol",
        password=PASSWORDS["carol"],
        known_hosts=None,
        client_keys=None,
        agent_path=None,
    )
    sftp = await conn.start_sftp_client()
    remote = await sftp.open("/half.ndjson", "wb")
    await remote.write(b'{"resourceType": "Patient", "id": "1"}\n' * 5000)
    assert "half.ndjson" in spool_files(door, "carol")
    conn.abort()  # the connection drops with the file still open
    await wait_for_async(
        lambda: "half.ndjson" not in spool_files(door, "carol"), what="the partial file removed"
    )
    await asyncio.sleep(1)
    assert all(
        r["source_metadata"]["file_name"] != "half.ndjson" for r in landed(door.dsn, "carol")
    )


def test_temp_name_then_rename_ingests_once_under_the_final_name(
    door: SftpDoor, corpus: Path
) -> None:
    source = corpus / "hl7v2" / "sample_win.hl7"
    since = dt.datetime.now(dt.UTC)
    transport = paramiko.Transport(("127.0.0.1", door.port))
    try:
        transport.connect(username="para", password=PASSWORDS["para"])
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        for temp, final in (
            ("/lab.hl7.filepart", "/lab.hl7"),
            ("/lab2.hl7.part", "/lab2.hl7"),
            ("/lab3.hl7.tmp", "/lab3.hl7"),
        ):
            sftp.put(str(source), temp)
            sftp.posix_rename(temp, final)
        sftp.rename("/lab.hl7", "/renamed-again.hl7")  # a final name renamed: not re-ingested
        sftp.close()
    finally:
        transport.close()
    finals = ["/lab.hl7", "/lab2.hl7", "/lab3.hl7"]
    names = wait_paths(door.dsn, "para", dict.fromkeys(finals, 1), since)
    # Neither a temporary name nor the second rename of a final name is ingested.
    assert sorted(names) == finals
    for (row,) in names.values():
        assert (row["format"], row["content_type"]) == ("hl7", "text")
        assert stored_bytes(row["storage_path"]) == source.read_bytes()


async def test_overwrite_ingests_each_version_and_never_alters_a_stored_one(
    door: SftpDoor, tmp_path: Path
) -> None:
    padding = " " * 100_000  # above the inline limit: staged from the spool file itself
    first, second = tmp_path / "v1.json", tmp_path / "v2.json"
    first.write_bytes(f'{{"resourceType": "Patient", "id": "v1"{padding}}}'.encode())
    second.write_bytes(
        f'{{"resourceType": "Patient", "id": "v2", "active": true{padding}}}'.encode()
    )
    async with sftp_session(door, "carol") as (_conn, sftp):
        await sftp.put(str(first), "/patient.json")
        await sftp.put(str(second), "/patient.json")
        async with sftp.open("/patient.json", "r+b") as remote:  # update in place, no truncate
            await remote.write(b"{", 0)
            await remote.write(b'"resourceType": "Patient", "id": "v3"', 1)
    third = bytearray(second.read_bytes())
    update = b'"resourceType": "Patient", "id": "v3"'
    third[1 : 1 + len(update)] = update
    rows = await asyncio.to_thread(wait_landed, door.dsn, "carol", 3)
    versions = [r for r in rows if r["source_metadata"]["path"] == "/patient.json"]
    assert [stored_bytes(r["storage_path"]) for r in versions] == [
        first.read_bytes(),
        second.read_bytes(),
        bytes(third),
    ]


async def test_twenty_clients_five_files_each_all_land_once(door: SftpDoor) -> None:
    async def client(n: int) -> None:
        async with sftp_session(door, "bob") as (_conn, sftp):
            for i in range(5):
                body = f'{{"resourceType": "Observation", "id": "c{n}-f{i}"}}\n'.encode()
                async with sftp.open(f"/c{n:02d}-f{i}.json", "wb") as remote:
                    await remote.write(body)

    await asyncio.gather(*(client(n) for n in range(20)))
    await asyncio.to_thread(wait_landed, door.dsn, "bob", 100)
    await asyncio.sleep(1)
    rows = landed(door.dsn, "bob")
    names = by_name(rows)
    assert len(names) == 100
    for path, found in names.items():
        assert len(found) == 1, path
        n, i = path[2:4], path[6]
        expected = f'{{"resourceType": "Observation", "id": "c{int(n)}-f{i}"}}\n'.encode()
        assert found[0]["sha256"] == hashlib.sha256(expected).hexdigest()
        assert (found[0]["format"], found[0]["subtype"]) == ("fhir", "resource")


async def test_two_opens_of_one_existing_file_at_once_let_one_write_it(door: SftpDoor) -> None:
    """Opening an existing file without truncating it works on a copy, made in a thread. A
    second open arriving meanwhile was let through too: both handles then wrote one path,
    one close stored the other's bytes under its own hash, and a put acknowledged was lost.
    Now the second is refused as any concurrent upload of a file is."""
    original = b"[" + b"0" * 900_000 + b"]"
    async with (
        sftp_session(door, "alice") as (_c1, first),
        sftp_session(door, "alice") as (_c2, second),
    ):
        async with first.open("/race.json", "wb") as remote:
            await remote.write(original)
        for attempt in range(5):
            opened = await asyncio.gather(
                first.open("/race.json", asyncssh.FXF_WRITE, encoding=None),
                second.open("/race.json", asyncssh.FXF_WRITE, encoding=None),
                return_exceptions=True,
            )
            handles = [h for h in opened if not isinstance(h, BaseException)]
            refused = [e for e in opened if isinstance(e, BaseException)]
            assert len(handles) == 1, (attempt, opened)
            assert isinstance(refused[0], asyncssh.SFTPFailure)
            assert "being uploaded by another session" in str(refused[0])
            await handles[0].write(b"%d" % attempt, 1)
            await handles[0].close()
    rows = await asyncio.to_thread(wait_landed, door.dsn, "alice", 6)
    for row in [r for r in rows if r["source_metadata"]["path"] == "/race.json"]:
        data = stored_bytes(row["storage_path"])
        assert hashlib.sha256(data).hexdigest() == row["sha256"]


async def test_a_file_with_the_longest_name_can_be_updated_in_place(door: SftpDoor) -> None:
    """The copy an update in place works on once had the file's name in its own, and a
    name near the 255-byte limit made it too long ('File name too long')."""
    name = "/" + "u" * 245 + ".json"
    since = dt.datetime.now(dt.UTC)
    async with sftp_session(door, "carol") as (_conn, sftp):
        async with sftp.open(name, "wb") as remote:
            await remote.write(b'{"resourceType": "Patient", "id": "long1"}')
        async with sftp.open(name, asyncssh.FXF_WRITE, encoding=None) as remote:
            await remote.write(b"2", len(b'{"resourceType": "Patient", "id": "long'))
    paths = await asyncio.to_thread(wait_paths, door.dsn, "carol", {name: 2}, since)
    updated = paths[name][-1]["storage_path"]
    assert stored_bytes(updated) == b'{"resourceType": "Patient", "id": "long2"}'
