"""A file opened for writing again: a handle that sends nothing, and the same bytes sent
again."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from typing import Any

import asyncssh

from tests.ingest.sftp.clients import sftp_session
from tests.ingest.sftp.conftest import SftpDoor
from tests.ingest.sftp.helpers import wait_paths
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
