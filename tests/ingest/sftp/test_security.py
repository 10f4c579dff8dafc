"""Authentication, the per-user jail, links and permissions."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh
import paramiko
import pytest

from tests.ingest.sftp.clients import sftp_session
from tests.ingest.sftp.conftest import SftpDoor
from tests.ingest.sftp.helpers import landed, openssh_sftp


async def test_wrong_password_unknown_user_and_wrong_key_are_refused(
    door: SftpDoor, tmp_path: Path
) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with sftp_session(door, "alice", password="not-the-password"):
            pass
    with pytest.raises(asyncssh.PermissionDenied):
        async with sftp_session(door, "mallory", password="alice-pw"):
            pass
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            "127.0.0.1",
            door.port,
            username="alice",
            client_keys=[stranger],
            known_hosts=None,
            agent_path=None,
            password=None,
        )
    transport = paramiko.Transport(("127.0.0.1", door.port))
    try:
        with pytest.raises(paramiko.AuthenticationException):
            transport.connect(username="para", password="wrong")
    finally:
        transport.close()
    key_path = tmp_path / "stranger_key"
    stranger.write_private_key(str(key_path))
    os.chmod(key_path, 0o600)
    result = openssh_sftp(door.port, "ossh", key_path, ["ls"], tmp_path)
    assert result.returncode != 0
    # The right key works with the OpenSSH client.
    ok = openssh_sftp(door.port, "ossh", door.keys["ossh"], ["ls"], tmp_path)
    assert ok.returncode == 0, ok.stderr


async def test_traversal_and_absolute_paths_stay_in_the_jail(
    door: SftpDoor, tmp_path: Path
) -> None:
    local = tmp_path / "escape.txt"
    local.write_bytes(b"should never leave the jail\n")
    async with sftp_session(door, "alice") as (_conn, sftp):
        for target in ("../escape.txt", "/../../escape.txt", "sub/../../escape.txt"):
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.put(str(local), target)
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.get("/etc/passwd", str(tmp_path / "passwd"))
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.put(str(local), "/etc/escape.txt")
        assert "etc" not in await sftp.listdir("/")
        assert await sftp.realpath("/../..") == "/"
    assert list(door.data_dir.rglob("escape.txt")) == []
    assert "escape.txt" not in os.listdir("/etc")
    assert all("escape" not in r["source_metadata"]["path"] for r in landed(door.dsn, "alice"))


async def test_links_cannot_be_made_or_followed_out_of_the_jail(
    door: SftpDoor, tmp_path: Path
) -> None:
    secret_dir = tmp_path / "outside"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("outside the jail\n")
    home = door.home("carol")
    home.mkdir(parents=True, exist_ok=True)
    # A link placed inside the jail by someone with shell access is not followed.
    (home / "planted").symlink_to(secret_dir)
    local = tmp_path / "x.part"
    local.write_bytes(b"data\n")
    try:
        async with sftp_session(door, "carol") as (_conn, sftp):
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.symlink("/etc/passwd", "/link-to-passwd")
            await sftp.put(str(local), "/x.part")
            with pytest.raises(asyncssh.SFTPError):
                await sftp.link("/x.part", "/hard-link")
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.get("/planted/secret.txt", str(tmp_path / "got"))
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.listdir("/planted")
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.put(str(local), "/planted/new.txt")
    finally:
        (home / "planted").unlink()
    assert sorted(p.name for p in secret_dir.iterdir()) == ["secret.txt"]
    assert not (home / "link-to-passwd").exists()
    assert not (home / "hard-link").exists()


async def test_permissions_read_write_delete(door: SftpDoor, tmp_path: Path) -> None:
    local = tmp_path / "note.part"
    local.write_bytes(b"kept under a temp name, so it stays during the session\n")
    async with sftp_session(door, "bob") as (_conn, sftp):  # write only
        await sftp.put(str(local), "/note.part")
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.remove("/note.part")
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.get("/note.part", str(tmp_path / "back"))
    async with sftp_session(door, "carol") as (_conn, sftp):  # read and write, no delete
        await sftp.put(str(local), "/note.part")
        await sftp.get("/note.part", str(tmp_path / "back"))
        assert (tmp_path / "back").read_bytes() == local.read_bytes()
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.remove("/note.part")
    async with sftp_session(door, "alice") as (_conn, sftp):  # read, write and delete
        await sftp.put(str(local), "/note.part")
        await sftp.remove("/note.part")
        assert "note.part" not in await sftp.listdir("/")


async def test_users_cannot_see_each_others_files(door: SftpDoor, tmp_path: Path) -> None:
    local = tmp_path / "private.part"
    local.write_bytes(b"alice's in-progress file\n")
    async with (
        sftp_session(door, "alice") as (_c1, alice),
        sftp_session(door, "carol") as (
            _c2,
            carol,
        ),
    ):
        await alice.put(str(local), "/private.part")
        assert "private.part" in await alice.listdir("/")  # in-progress files are listed
        assert "private.part" not in await carol.listdir("/")
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await carol.stat("/alice/private.part")
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await carol.stat("../alice/private.part")
