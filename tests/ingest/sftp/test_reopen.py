"""A file opened for writing again: resume (OpenSSH ``reput``), append, a handle that sends
nothing, and the same bytes sent again."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.ingest.sftp.clients import sftp_session
from tests.ingest.sftp.conftest import MAX_FILE_SIZE, SftpDoor
from tests.ingest.sftp.helpers import openssh_sftp, stored_bytes, wait_paths
from tests.polling import wait_for


def spooled(door: SftpDoor, user: str) -> list[str]:
    return sorted(p.name for p in door.home(user).rglob("*") if p.is_file())


def settled(
    door: SftpDoor, user: str, counts: dict[str, int], since: dt.datetime
) -> dict[str, list[dict[str, Any]]]:
    """The user's submissions since ``since`` by path, once ``counts`` landed and the
    session ended, looked at again a second later: an extra one would have landed too."""
    wait_paths(door.dsn, user, counts, since)
    wait_for(lambda: spooled(door, user) == [], what="the session's spool copies removed")
    time.sleep(1)
    return wait_paths(door.dsn, user, counts, since)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_reput_resumes_an_upload_under_a_temporary_name_into_one_submission(
    door: SftpDoor, corpus: Path, tmp_path: Path
) -> None:
    """An upload stopped part way under a temporary name is finished with ``reput`` and
    renamed: one submission, of the whole file; the part was never recorded."""
    source = corpus / "ndjson" / "Condition.000.ndjson"
    whole = source.read_bytes()
    part = tmp_path / "part.ndjson"
    part.write_bytes(whole[:200_000])  # as left by an interrupted put: ends mid-line
    since = dt.datetime.now(dt.UTC)
    result = openssh_sftp(
        door.port,
        "ossh",
        door.keys["ossh"],
        [
            f"put {part} /conditions.ndjson.part",
            f"reput {source} /conditions.ndjson.part",
            "rename /conditions.ndjson.part /conditions.ndjson",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    paths = settled(door, "ossh", {"/conditions.ndjson": 1}, since)
    assert list(paths) == ["/conditions.ndjson"]
    (row,) = paths["/conditions.ndjson"]
    assert row["sha256"] == sha256(whole)
    assert stored_bytes(row["storage_path"]) == whole
    assert (row["format"], row["content_type"], row["subtype"]) == ("fhir", "ndjson", "bulk")


def test_reput_completes_a_file_closed_part_way_and_keeps_the_part_as_recorded(
    door: SftpDoor, corpus: Path, tmp_path: Path
) -> None:
    """Under a final name the part was an upload when its handle closed (the server cannot
    tell an interrupted close from a finished one); ``reput`` appends the rest to a copy, so
    the part stays stored as it was and the whole file is one more submission."""
    source = corpus / "ndjson" / "Immunization.000.ndjson"
    whole = source.read_bytes()
    part = tmp_path / "part.ndjson"
    part.write_bytes(whole[:100_000])  # above the inline limit: staged from the spool file
    since = dt.datetime.now(dt.UTC)
    result = openssh_sftp(
        door.port,
        "ossh",
        door.keys["ossh"],
        [f"put {part} /immunizations.ndjson", f"reput {source} /immunizations.ndjson"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    paths = settled(door, "ossh", {"/immunizations.ndjson": 2}, since)
    rows = paths["/immunizations.ndjson"]
    assert [r["sha256"] for r in rows] == [sha256(part.read_bytes()), sha256(whole)]
    assert [stored_bytes(r["storage_path"]) for r in rows] == [part.read_bytes(), whole]


async def test_an_upload_cut_off_leaves_nothing_to_resume_and_records_nothing(
    door: SftpDoor, corpus: Path, tmp_path: Path
) -> None:
    source = corpus / "ndjson" / "Patient.000.ndjson"
    since = dt.datetime.now(dt.UTC)
    conn = await asyncssh.connect(
        "127.0.0.1",
        door.port,
        username="ossh",
        client_keys=[str(door.keys["ossh"])],
        known_hosts=None,
        agent_path=None,
    )
    sftp = await conn.start_sftp_client()
    remote = await sftp.open("/patients.ndjson", "wb")
    await remote.write(source.read_bytes()[:20_000])
    conn.abort()  # the connection drops with the file open: the part is discarded
    await asyncio.to_thread(
        wait_for, lambda: spooled(door, "ossh") == [], what="the partial file removed"
    )
    resumed = await asyncio.to_thread(
        openssh_sftp,
        door.port,
        "ossh",
        door.keys["ossh"],
        [f"reput {source} /patients.ndjson"],
        tmp_path,
    )
    assert resumed.returncode != 0
    assert "No such file" in resumed.stderr
    sent = await asyncio.to_thread(
        openssh_sftp,
        door.port,
        "ossh",
        door.keys["ossh"],
        [f"put {source} /patients.ndjson"],
        tmp_path,
    )
    assert sent.returncode == 0, sent.stderr[-2000:]
    paths = await asyncio.to_thread(settled, door, "ossh", {"/patients.ndjson": 1}, since)
    (row,) = paths["/patients.ndjson"]
    assert stored_bytes(row["storage_path"]) == source.read_bytes()


async def test_append_mode_writes_at_the_end_whatever_the_offset(door: SftpDoor) -> None:
    """asyncssh's client sends offset 0 for every write of a file opened with ``"ab"``:
    the server appends, as SFTP's append flag says. Each close that wrote is an upload."""
    head, tail = b'{"resourceType": "Patient", "id": "app', b'end1"}'
    since = dt.datetime.now(dt.UTC)
    async with sftp_session(door, "alice") as (_conn, sftp):
        async with sftp.open("/append.json", "wb") as remote:
            await remote.write(head)
        async with sftp.open("/append.json", "ab") as remote:
            await remote.write(tail[:3])
            await remote.write(tail[3:])
        async with sftp.open("/big.json", "wb") as remote:
            await remote.write(b"[" + b"0" * (MAX_FILE_SIZE - 10))
        with pytest.raises(asyncssh.SFTPFailure, match="maximum size"):
            async with sftp.open("/big.json", "ab") as remote:
                await remote.write(b",1]" * 10)  # past the limit, though written at offset 0
    paths = await asyncio.to_thread(
        settled, door, "alice", {"/append.json": 2, "/big.json": 1}, since
    )
    assert [stored_bytes(r["storage_path"]) for r in paths["/append.json"]] == [head, head + tail]
    assert [r["payload_size"] for r in paths["/big.json"]] == [MAX_FILE_SIZE - 9]


async def test_a_handle_that_sends_nothing_records_nothing_and_a_resend_is_a_duplicate(
    door: SftpDoor,
) -> None:
    """Opening a file for writing and closing it without writing or changing its size (or
    only setting its times) is not an upload. Sending the same bytes again, by a new put or
    by rewriting them in place, is: a submission marked duplicate, pointing at the object
    stored once."""
    body = b'{"resourceType": "Patient", "id": "reopened"}'
    since = dt.datetime.now(dt.UTC)
    async with sftp_session(door, "alice") as (_conn, sftp):
        async with sftp.open("/same.json", "wb") as remote:
            await remote.write(body)
        await (await sftp.open("/same.json", asyncssh.FXF_WRITE, encoding=None)).close()
        async with sftp.open("/same.json", "r+b") as remote:
            assert await remote.read() == body
            await remote.utime((1_000_000_000, 1_000_000_000))
            await remote.truncate(len(body))  # the size it has: nothing changes
        assert (await sftp.stat("/same.json")).size == len(body)
        async with sftp.open("/same.json", asyncssh.FXF_WRITE, encoding=None) as remote:
            await remote.write(body, 0)  # the same bytes sent again, in place
        async with sftp.open("/same.json", "wb") as remote:
            await remote.write(body)  # and by a new put
    paths = await asyncio.to_thread(settled, door, "alice", {"/same.json": 3}, since)
    rows = paths["/same.json"]
    # One stored, two duplicates of it (which one is stored is the one recorded first).
    assert sorted(r["is_duplicate"] for r in rows) == [False, True, True]
    assert {r["sha256"] for r in rows} == {sha256(body)}
    assert len({r["storage_path"] for r in rows}) == 1
