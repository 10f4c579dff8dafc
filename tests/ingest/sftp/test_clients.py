"""Three real SFTP clients upload the whole corpus: every file lands byte-identical."""

from __future__ import annotations

import posixpath
from pathlib import Path

import asyncssh
import paramiko
import pytest

from tests.ingest.sftp.clients import sftp_session
from tests.ingest.sftp.conftest import PASSWORDS, SftpDoor
from tests.ingest.sftp.helpers import (
    KIND,
    CorpusFile,
    by_name,
    corpus_files,
    openssh_sftp,
    stored_bytes,
    wait_landed,
)
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze


async def upload_with_asyncssh(door: SftpDoor, user: str, files: list[CorpusFile]) -> None:
    async with (
        asyncssh.connect(
            "127.0.0.1",
            door.port,
            username=user,
            password=PASSWORDS[user],
            known_hosts=None,
            client_keys=None,
            agent_path=None,
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        for f in files:
            await sftp.makedirs(posixpath.dirname("/" + f.name), exist_ok=True)
            await sftp.put(str(f.path), "/" + f.name)


def upload_with_paramiko(door: SftpDoor, user: str, files: list[CorpusFile]) -> None:
    transport = paramiko.Transport(("127.0.0.1", door.port))
    try:
        transport.connect(username=user, password=PASSWORDS[user])
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        made: set[str] = set()
        for f in files:
            parts = posixpath.dirname(f.name).split("/")
            for i in range(1, len(parts) + 1):
                directory = "/" + "/".join(parts[:i])
                if directory not in made:
                    made.add(directory)
                    try:
                        sftp.mkdir(directory)
                    except OSError:
                        pass  # exists
            sftp.put(str(f.path), "/" + f.name)  # confirm=True: stats the file after close
        sftp.close()
    finally:
        transport.close()


def upload_with_openssh(door: SftpDoor, user: str, files: list[CorpusFile], cwd: Path) -> None:
    dirs = sorted({posixpath.dirname(f.name) for f in files})
    commands = []
    for directory in dirs:
        parts = directory.split("/")
        commands += [f"-mkdir /{'/'.join(parts[: i + 1])}" for i in range(len(parts))]
    commands += [f"put -p {f.path} /{f.name}" for f in files]
    result = openssh_sftp(door.port, user, door.keys[user], commands, cwd)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("client", "user"), [("asyncssh", "alice"), ("paramiko", "para"), ("openssh", "ossh")]
)
async def test_every_corpus_file_lands_byte_identical(
    door: SftpDoor, corpus: Path, tmp_path: Path, client: str, user: str
) -> None:
    files = corpus_files(corpus)
    assert len(files) > 100
    if client == "asyncssh":
        await upload_with_asyncssh(door, user, files)
    elif client == "paramiko":
        upload_with_paramiko(door, user, files)
    else:
        upload_with_openssh(door, user, files, tmp_path)
    rows = wait_landed(door.dsn, user, len(files))
    landed = by_name(rows)
    assert len(rows) == len(files), "each file lands exactly once"
    for f in files:
        (row,) = landed["/" + f.name]
        assert row["sha256"] == f.sha256, f.name
        assert stored_bytes(row["storage_path"]) == f.path.read_bytes(), f.name
        assert row["payload_size"] == f.path.stat().st_size
        meta = row["source_metadata"]
        assert meta["username"] == user
        assert meta["file_name"] == posixpath.basename(f.name)
        assert meta["remote_addr"] == "127.0.0.1"
        assert meta["client_version"]
        expected = KIND[f.kind]
        if f.valid:
            assert (row["format"], row["content_type"]) == expected, f.name
        else:
            assert (row["format"], row["content_type"])[0] in (expected[0], "file"), f.name
        if f.valid and f.name.startswith("fhir-r4-bundles/"):
            assert row["subtype"] == "bundle"
        if f.kind == "ndjson":
            assert row["subtype"] == "bulk"
        if f.kind == "hl7v2" and f.valid:
            assert row["data_version"] != "R4"
    # The spool copies are gone once the session ended and the files were durable.
    wait_for(lambda: not any(p.is_file() for p in door.home(user).rglob("*")), what="spool cleanup")


async def test_chacha20_is_not_offered_and_openssh_takes_aes(
    door: SftpDoor, tmp_path: Path
) -> None:
    """The door offers no chacha20-poly1305 (asyncssh builds three cipher contexts for each
    of its packets): OpenSSH, which prefers it, takes its next choice, AES-CTR; a client that
    offers only chacha20-poly1305 is refused."""
    chosen = openssh_sftp(
        door.port, "ossh", door.keys["ossh"], ["ls"], tmp_path, options=["-o", "LogLevel=DEBUG1"]
    )
    assert chosen.returncode == 0, chosen.stderr[-2000:]
    assert "kex: client->server cipher: aes128-ctr " in chosen.stderr
    assert "kex: server->client cipher: aes128-ctr " in chosen.stderr
    refused = openssh_sftp(
        door.port,
        "ossh",
        door.keys["ossh"],
        ["ls"],
        tmp_path,
        options=["-c", "chacha20-poly1305@openssh.com", "-o", "LogLevel=DEBUG1"],
    )
    assert refused.returncode != 0
    assert (
        "no matching cipher found. Their offer: aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
        "aes256-ctr,aes192-ctr,aes128-ctr\n" in refused.stderr
    )
    # Both ends find no common cipher; the door disconnects and closes. The client usually reads
    # that (or finds the mismatch itself) first, but now and then the close overtakes it (2 in
    # 300 tries here): either way, no session opens.
    with pytest.raises((asyncssh.KeyExchangeFailed, asyncssh.ConnectionLost)):
        async with sftp_session(door, "alice", encryption_algs=["chacha20-poly1305@openssh.com"]):
            pass


async def test_the_ciphers_setting_chooses_what_is_offered(door: SftpDoor, tmp_path: Path) -> None:
    """``sftp.ciphers`` replaces the list: with AES-GCM alone, OpenSSH negotiates it, and a
    client offering only AES-CTR is refused."""
    gcm_only = MmBronze(
        tmp_path / "gcm",
        "--sftp",
        env={
            "POSTGRES_DSN": door.dsn,
            "MM_BRONZE_SFTP_USERS_FILE": str(door.data_dir / "sftp" / "users.json"),
            "MM_BRONZE_SFTP_CIPHERS": '["aes128-gcm@openssh.com"]',
        },
    )
    gcm_only.start()
    try:
        wait_for(lambda: "sftp listening" in gcm_only.logs(), what="the SFTP door to listen")
        key = door.keys["ossh"]
        chosen = openssh_sftp(
            gcm_only.sftp_port, "ossh", key, ["ls"], tmp_path, options=["-o", "LogLevel=DEBUG1"]
        )
        assert chosen.returncode == 0, chosen.stderr[-2000:]
        assert "kex: client->server cipher: aes128-gcm@openssh.com " in chosen.stderr
        refused = openssh_sftp(
            gcm_only.sftp_port,
            "ossh",
            key,
            ["ls"],
            tmp_path,
            options=["-c", "aes128-ctr", "-o", "LogLevel=DEBUG1"],
        )
        assert refused.returncode != 0
        assert "no matching cipher found. Their offer: aes128-gcm@openssh.com\n" in refused.stderr
    finally:
        gcm_only.stop()
