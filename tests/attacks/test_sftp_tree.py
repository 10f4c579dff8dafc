"""SFTP: bounded directory trees, clean errors for odd names and renames, and a start-up
that survives whatever a user left in their home."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import asyncssh
import httpx
import pytest

from tests.attacks.helpers import sftp_session
from tests.ingest.sftp.helpers import landed, write_users
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze

MAX_DEPTH = 32
MAX_DIRECTORIES = 40
MAX_FILES = 5
HL7 = (
    b"MSH|^~\\&|LAB|HOSP|BRONZE|DATA|20250101120000||ORU^R01|TREE-%d|P|2.5.1\r"
    b"PID|1||TREE^^^HOSP^MR||Doe^Jane\rOBR|1||F1|12345^Test^LN\r"
    b"OBX|1|ST|12345^Test^LN||value||||||F\r"
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("sftp-tree")
    write_users(data_dir, {"lab1": ("lab1-pw", "read,write,delete")})
    return data_dir


@pytest.fixture(scope="module")
def env(module_dsn: str) -> dict[str, str]:
    return {
        "POSTGRES_DSN": module_dsn,
        "MM_BRONZE_SFTP_MAX_DIRECTORIES_PER_USER": str(MAX_DIRECTORIES),
        "MM_BRONZE_SFTP_MAX_FILES_PER_USER": str(MAX_FILES),
    }


@pytest.fixture(scope="module")
def server(data_dir: Path, env: dict[str, str]) -> Iterator[MmBronze]:
    proc = MmBronze(data_dir, env=env)
    proc.start()
    yield proc
    proc.stop()


def session(server: MmBronze) -> AbstractAsyncContextManager[asyncssh.SFTPClient]:
    return sftp_session(server, "lab1", "lab1-pw")


def test_directory_depth_is_bounded(server: MmBronze) -> None:
    async def run() -> None:
        async with session(server) as sftp:
            path = ""
            for _level in range(MAX_DEPTH):
                path += "/d"
                await sftp.mkdir(path)
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="too deep"):
                await sftp.mkdir(path + "/d")
            await sftp.rmtree("/d")

    asyncio.run(run())


def test_a_directory_moved_under_another_keeps_within_the_bounds(server: MmBronze) -> None:
    """Each level is checked where it is made; a tree moved under another is checked whole:
    deeper than mkdir allows, or paths longer than the system takes, is refused."""

    async def run() -> None:
        async with session(server) as sftp:
            await sftp.mkdir("/deep")
            path = "/deep"
            for _level in range(MAX_DEPTH // 2):
                path += "/d"
                await sftp.mkdir(path)
            await sftp.mkdir("/tree")
            branch = "/tree"
            for _level in range(MAX_DEPTH // 2):
                branch += "/t"
                await sftp.mkdir(branch)
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="too deep"):
                await sftp.rename("/tree", path + "/moved")
            await sftp.rename("/tree", "/deep/d/moved")  # deep enough and no more: allowed
            await sftp.rmtree("/deep")

            long = "n" * 250  # 18 levels once moved: within the depth, not the path limit
            await sftp.mkdir("/" + long)
            at = "/" + long
            for _level in range(7):
                at += "/" + long
                await sftp.mkdir(at)
            await sftp.mkdir("/x")
            below = "/x"
            for _level in range(9):
                below += "/" + long
                await sftp.mkdir(below)
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="too long"):
                await sftp.rename("/x", at + "/x")
            await sftp.rmtree("/x")
            await sftp.rmtree("/" + long)

    asyncio.run(run())


def test_copies_and_temp_files_in_a_renamed_directory_go_at_the_end_of_the_session(
    server: MmBronze,
) -> None:
    """The session tracked them by path; a directory renamed over them left both behind for
    good (visible, and counted against the user's files)."""
    home = server.data_dir / "sftp" / "home" / "lab1"

    async def run() -> None:
        async with session(server) as sftp:
            await sftp.mkdir("/dA")
            async with sftp.open("/dA/t1.tmp", "wb") as f:
                await f.write(b"never renamed")
            async with sftp.open("/dA/p1.hl7", "wb") as f:
                await f.write(HL7 % 4)
            await sftp.rename("/dA", "/dB")
        async with session(server) as sftp:
            assert set(await sftp.listdir("/dB")) <= {".", ".."}
            await sftp.rmdir("/dB")

    asyncio.run(run())
    assert not (home / "dB").exists()


def test_directories_per_user_are_bounded(server: MmBronze) -> None:
    async def run() -> None:
        async with session(server) as sftp:
            for n in range(MAX_DIRECTORIES):
                await sftp.mkdir(f"/many-{n}")
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="too many directories"):
                await sftp.mkdir("/one-more")
            for n in range(MAX_DIRECTORIES):
                await sftp.rmdir(f"/many-{n}")

    asyncio.run(run())


def test_files_per_user_are_bounded(server: MmBronze) -> None:
    async def run() -> None:
        async with session(server) as sftp:
            # Uploaded files stay in the home until the session ends.
            for n in range(MAX_FILES):
                async with sftp.open(f"/file-{n}.hl7", "wb") as f:
                    await f.write(HL7 % (100 + n))
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="too many files"):
                async with sftp.open("/one-more.hl7", "wb") as f:
                    await f.write(HL7 % 200)
        async with session(server) as sftp:  # the last session's copies are gone
            async with sftp.open("/next-session.hl7", "wb") as f:
                await f.write(HL7 % 201)

    asyncio.run(run())


def test_nul_in_a_file_name_is_a_clean_error(server: MmBronze) -> None:
    async def run() -> None:
        async with session(server) as sftp:
            with pytest.raises(asyncssh.SFTPError, match="NUL"):
                async with sftp.open("/bad\x00name.hl7", "wb") as f:
                    await f.write(HL7 % 0)

    asyncio.run(run())
    assert "Uncaught exception" not in server.logs()


def test_a_name_that_is_not_utf8_is_a_clean_error_and_leaves_nothing_stuck(
    server: MmBronze,
) -> None:
    """Such a name once failed the close with an uncaught UnicodeEncodeError (logged
    nowhere), and the file then stayed 'being uploaded' until the process ended."""

    async def run() -> None:
        async with session(server) as sftp:
            with pytest.raises(asyncssh.SFTPError, match="must be UTF-8"):
                async with sftp.open(b"/bad\xffname.hl7", "wb") as f:
                    await f.write(HL7 % 2)
            async with sftp.open("/fine.tmp", "wb") as f:
                await f.write(HL7 % 3)
            with pytest.raises(asyncssh.SFTPError, match="must be UTF-8"):
                await sftp.rename("/fine.tmp", b"/fin\xff.hl7")
            with pytest.raises(asyncssh.SFTPError, match="must be UTF-8"):
                await sftp.mkdir(b"/dir\xff")
            await sftp.rename("/fine.tmp", "/fine.hl7")  # nothing was left stuck
            assert "fine.hl7" in await sftp.listdir("/")

    asyncio.run(run())
    assert "Uncaught exception" not in server.logs()


def test_rename_into_a_missing_directory_ingests_nothing(server: MmBronze, module_dsn: str) -> None:
    body = HL7 % 1  # no other upload of this module sends these bytes

    async def run() -> None:
        async with session(server) as sftp:
            async with sftp.open("/up.part", "wb") as f:
                await f.write(body)
            with pytest.raises(asyncssh.SFTPNoSuchFile):
                await sftp.rename("/up.part", "/no-such-dir/up.hl7")
            await sftp.rename("/up.part", "/up.hl7")

    asyncio.run(run())
    # Submissions are told apart by their bytes, not counted from before the upload: the
    # earlier tests' uploads may still be landing while this one runs.
    sha256 = hashlib.sha256(body).hexdigest()

    def paths() -> list[str]:
        rows = landed(module_dsn, "lab1")
        return [row["source_metadata"]["path"] for row in rows if row["sha256"] == sha256]

    wait_for(paths, timeout=90, what="the renamed upload landed")
    time.sleep(1)  # a submission made by the failed rename would have landed by now
    assert paths() == ["/up.hl7"]


def test_a_directory_with_an_upload_in_progress_cannot_be_renamed(server: MmBronze) -> None:
    async def run() -> None:
        async with session(server) as sftp:
            await sftp.mkdir("/incoming")
            async with sftp.open("/incoming/big.hl7", "wb") as f:
                await f.write(HL7 % 2)
                with pytest.raises(asyncssh.SFTPFailure, match="being uploaded"):
                    await sftp.rename("/incoming", "/moved")

    asyncio.run(run())


def make_deep_chain(home: Path, depth: int) -> None:
    """What an older server let a user make: directories ``depth`` levels deep."""
    fd = os.open(home, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        with open(os.open("leftover.hl7", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "wb") as f:
            f.write(b"x")
    finally:
        os.close(fd)


def remove_tree(root: Path) -> None:
    """Remove ``root`` however deep it goes (``shutil.rmtree`` recurses), by directory fds."""
    chain: list[tuple[int, str]] = [(os.open(root, os.O_RDONLY), "")]
    try:
        while chain:
            fd, _ = chain[-1]
            subdirectory = None
            for name in os.listdir(fd):
                if os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode & 0o040000:
                    subdirectory = name
                    break
                os.unlink(name, dir_fd=fd)
            if subdirectory is not None:
                chain.append((os.open(subdirectory, os.O_RDONLY, dir_fd=fd), subdirectory))
                continue
            fd, name = chain.pop()
            os.close(fd)
            if chain:
                os.rmdir(name, dir_fd=chain[-1][0])
    finally:
        for fd, _ in chain:
            os.close(fd)
    os.rmdir(root)


def test_a_deep_tree_left_in_a_home_does_not_stop_the_next_start(
    server: MmBronze, data_dir: Path, env: dict[str, str]
) -> None:
    server.stop()
    starts = server.logs().count("sftp listening")
    make_deep_chain(data_dir / "sftp" / "home" / "lab1", 3000)  # past PATH_MAX
    restarted = MmBronze(data_dir, env=env, http_port=server.http_port, sftp_port=server.sftp_port)
    restarted.start()
    try:
        assert httpx.get(restarted.url + "/healthz").status_code == 200
        wait_for(  # one log file for both
            lambda: restarted.logs().count("sftp listening") > starts,
            every=0.2,
            what="the SFTP door to start again",
        )
        assert "moved to quarantine" in restarted.logs()
        assert "RecursionError" not in restarted.logs()

        async def still_serves() -> None:
            async with session(restarted) as sftp:
                async with sftp.open("/after.hl7", "wb") as f:
                    await f.write(HL7 % 3)

        asyncio.run(still_serves())
    finally:
        restarted.stop()
        home = data_dir / "sftp" / "home" / "lab1"
        for root in [home / "d", *(data_dir / "sftp" / "quarantine").glob("*/d")]:
            if root.exists():
                remove_tree(root)
        server.start()
