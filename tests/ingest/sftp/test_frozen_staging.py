"""The spool's replay of a kept upload on a staging store that hangs instead of failing (its
moto stopped with SIGSTOP): each call has ``storage.staging_timeout`` seconds, the upload stays
kept for the next replay, the door starts and stops without waiting for the store, and the
upload lands once the store answers again.

A kept upload above the inline limit points at its staged blob; replaying it first asks the
staging store whether the blob is still there, and that is the call a frozen S3 leaves
unanswered.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import asyncssh
import httpx
import pytest

from tests.ingest.sftp.helpers import (
    landed,
    markers,
    password_sftp,
    set_bus,
    wait_landed,
    write_users,
)
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze, exit_time
from tests.services.object_stores import S3Service

PASSWORD = "dora-pw"
STAGING_TIMEOUT = 2
INLINE_LIMIT = 64 * 1024
HEAD = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01|FROZEN|P|2.5.1\r"
LARGE = HEAD + b"NTE|1||" + b"x" * 300_000 + b"\r"  # above the inline limit: staged


def door(
    data_dir: Path, s3: S3Service, bucket: str, dsn: str, timeout: float, **env: str
) -> MmBronze:
    """``serve --sftp --consumers`` with its raw and staging stores on ``s3``."""
    return MmBronze(
        data_dir,
        "--sftp",
        "--consumers",
        env={
            "POSTGRES_DSN": dsn,
            "RAW_STORAGE_URL": f"s3://{bucket}/raw",
            "MM_BRONZE_STORAGE_OPTIONS": json.dumps(s3.options),
            "MM_BRONZE_STORAGE_STAGING_TIMEOUT": str(timeout),
            "MM_BRONZE_SFTP_RETRY_SECONDS": "1",
            "MM_BRONZE_SFTP_INLINE_LIMIT": str(INLINE_LIMIT),
            **env,
        },
    )


async def put(port: int, remote: str, data: bytes) -> None:
    async with (
        password_sftp(port, "dora", PASSWORD) as sftp,
        sftp.open(remote, "wb") as file,
    ):
        await file.write(data)


async def keep_an_upload(server: MmBronze, dsn: str) -> None:
    """With the bus down, a staged upload's close fails and the upload is kept for retry."""
    set_bus(dsn, up=False)
    with pytest.raises(asyncssh.SFTPFailure, match="not ingested"):
        await put(server.sftp_port, "/large.hl7", LARGE)
    assert len(markers(server.data_dir)) == 1


def spool_copy(data_dir: Path) -> Path:
    return data_dir / "sftp" / "home" / "dora" / "large.hl7"


def replays_given_up(server: MmBronze) -> int:
    return sum(
        1
        for line in server.log_records()
        if line.get("event") == "sftp retry failed"
        and f"did not answer within {STAGING_TIMEOUT} seconds" in line.get("error", "")
    )


def assert_landed(s3: S3Service, dsn: str, data_dir: Path) -> None:
    (row,) = wait_landed(dsn, "dora", 1)
    assert s3.filesystem().cat_file(row["storage_path"]) == LARGE
    wait_for(lambda: not markers(data_dir), what="the journal drained")
    wait_for(lambda: not spool_copy(data_dir).exists(), what="the spool copy removed")


async def test_a_replay_on_a_frozen_staging_store_gives_up_in_time_and_keeps_the_upload(
    s3_alone: S3Service, dsn: str, tmp_path: Path
) -> None:
    bucket = s3_alone.new_bucket()
    data_dir = tmp_path / "mmb"
    write_users(data_dir, {"dora": (PASSWORD, "read,write")})
    first = door(data_dir, s3_alone, bucket, dsn, STAGING_TIMEOUT)
    second = door(data_dir, s3_alone, bucket, dsn, STAGING_TIMEOUT)
    first.start()
    try:
        await keep_an_upload(first, dsn)
        with s3_alone.frozen():
            set_bus(dsn, up=True)
            # The retry loop (every second) asks the frozen store, and gives up in time.
            wait_for(
                lambda: replays_given_up(first) >= 2,
                timeout=3 * (STAGING_TIMEOUT + 1) + 5,
                what="two replays given up on the frozen store",
                detail=first.run_logs,
            )
            assert len(markers(data_dir)) == 1
            assert spool_copy(data_dir).read_bytes() == LARGE
            assert landed(dsn, "dora") == []
            assert exit_time(first, 30) < STAGING_TIMEOUT + 5
            # A start replays the kept upload before the door listens: it gives up in time too.
            started = time.monotonic()
            second.start(timeout=60)
            assert time.monotonic() - started < STAGING_TIMEOUT + 20
            assert replays_given_up(second) == 1  # the start's, before the door listened
            assert len(markers(data_dir)) == 1
        # The store answers again: the next replay publishes the upload, stored once.
        assert_landed(s3_alone, dsn, data_dir)
        assert s3_alone.filesystem().find(f"{bucket}/raw/_staging") == []
        for server in (first, second):  # no payload in the log
            assert "NTE|1||xxx" not in server.logs() and "FROZEN" not in server.logs()
    finally:
        first.stop()
        second.stop()
    assert len(landed(dsn, "dora")) == 1


async def test_a_replay_waiting_on_a_frozen_staging_store_does_not_hold_a_stop(
    s3_alone: S3Service, dsn: str, tmp_path: Path
) -> None:
    # A deadline longer than the test waits for a stop: the stop must not wait for it.
    long_timeout = 120
    bucket = s3_alone.new_bucket()
    data_dir = tmp_path / "mmb"
    write_users(data_dir, {"dora": (PASSWORD, "read,write")})
    servers = [door(data_dir, s3_alone, bucket, dsn, long_timeout) for _ in range(3)]
    running, starting, after = servers
    running.start()
    try:
        await keep_an_upload(running, dsn)
        with s3_alone.frozen():
            set_bus(dsn, up=True)
            await asyncio.sleep(2.5)  # the retry loop now waits on the frozen store
            assert exit_time(running, 30) < 10
            assert "sftp replay stopped" in running.run_logs()
            # A start whose replay waits on the frozen store, stopped before the door listens.
            starting.start(wait=False)
            wait_for(lambda: "mm-bronze started" in starting.run_logs(), timeout=60)
            await asyncio.sleep(1.5)
            assert "sftp listening" not in starting.run_logs()
            assert exit_time(starting, 30) < 10
            assert "sftp replay stopped" in starting.run_logs()
            assert len(markers(data_dir)) == 1
            assert spool_copy(data_dir).read_bytes() == LARGE
        after.start()
        assert_landed(s3_alone, dsn, data_dir)
    finally:
        for server in servers:
            server.stop()
    assert len(landed(dsn, "dora")) == 1


async def test_readyz_says_the_sftp_door_is_starting_while_its_replay_waits(
    s3_alone: S3Service, dsn: str, tmp_path: Path
) -> None:
    """/readyz names the SFTP door as starting from the start, not only once the replay of
    kept uploads is done: before, it left the door out and could answer ready meanwhile."""
    bucket = s3_alone.new_bucket()
    data_dir = tmp_path / "mmb"
    write_users(data_dir, {"dora": (PASSWORD, "read,write")})
    running = door(data_dir, s3_alone, bucket, dsn, 120)
    running.start()
    try:
        await keep_an_upload(running, dsn)
    finally:
        running.stop()
    starting = door(data_dir, s3_alone, bucket, dsn, 120)
    starting.roles = ("--http", *starting.roles)
    after = door(data_dir, s3_alone, bucket, dsn, 120)
    try:
        with s3_alone.frozen():
            set_bus(dsn, up=True)
            starting.start(wait=False)  # its replay waits on the frozen store
            ready = wait_for(
                lambda: _readyz(starting),
                lambda response: response is not None,
                timeout=60,
                what="/readyz to answer",
                detail=starting.run_logs,
            )
            assert ready is not None
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"]["sftp"] == "degraded (starting)", ready.text
            assert "sftp listening" not in starting.run_logs()
            assert exit_time(starting, 30) < 10
        after.start()
        assert_landed(s3_alone, dsn, data_dir)
    finally:
        starting.stop()
        after.stop()
    assert len(landed(dsn, "dora")) == 1


def _readyz(server: MmBronze) -> httpx.Response | None:
    try:
        return httpx.get(f"{server.url}/readyz", timeout=30)
    except httpx.HTTPError:
        return None


async def test_a_kept_upload_is_staged_again_when_the_staging_url_changed(
    s3_alone: S3Service, dsn: str, tmp_path: Path
) -> None:
    """A kept upload's staged blob lies under the staging URL of the run that kept it; a start
    with another staging URL stages it again from the spool copy (it used to stop the door)."""
    bucket = s3_alone.new_bucket()
    data_dir = tmp_path / "mmb"
    write_users(data_dir, {"dora": (PASSWORD, "read,write")})
    first = door(data_dir, s3_alone, bucket, dsn, 30)
    moved = f"s3://{bucket}/moved-staging"
    second = door(data_dir, s3_alone, bucket, dsn, 30, MM_BRONZE_STORAGE_STAGING_URL=moved)
    first.start()
    try:
        await keep_an_upload(first, dsn)
        first.stop()
        set_bus(dsn, up=True)
        second.start(timeout=60)
        assert_landed(s3_alone, dsn, data_dir)
        assert any(
            line.get("event")
            == "sftp kept upload staged elsewhere; staged again from its spool copy"
            for line in second.log_records()
        )
        assert s3_alone.filesystem().find(f"{bucket}/moved-staging") == []
    finally:
        first.stop()
        second.stop()
