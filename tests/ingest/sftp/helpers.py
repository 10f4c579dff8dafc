"""Helpers for SFTP door tests: users, clients, and what landed in PostgreSQL and storage."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import psycopg
from psycopg.rows import dict_row

from mm_bronze.ingest.sftp.users import SftpUser, hash_password, parse_perms, save_users_file
from tests.ingest.http.helpers import stored_bytes as stored_bytes
from tests.polling import wait_for
from tests.services.mm_bronze import run_cli

KIND = {
    "fhir-json": ("fhir", "json"),
    "fhir-xml": ("fhir", "xml"),
    "hl7v2": ("hl7", "text"),
    "ndjson": ("fhir", "ndjson"),
}


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    name: str  # relative to the corpus root
    sha256: str
    kind: str
    valid: bool


def corpus_files(corpus: Path) -> list[CorpusFile]:
    out = []
    for row in (corpus / "MANIFEST.tsv").read_text().splitlines()[1:]:
        name, _size, sha, kind, expected, _note = row.split("\t")
        out.append(CorpusFile(corpus / name, name, sha, kind, expected == "valid"))
    return out


def write_users(data_dir: Path, users: dict[str, tuple[str | None, str]]) -> dict[str, Path]:
    """Write the users file directly (name → (password, perms)); each user also gets a key.

    Returns each user's private key path. The CLI that does the same is tested on its own.
    """
    records = []
    keys = {}
    key_dir = data_dir / "client_keys"
    key_dir.mkdir(parents=True, exist_ok=True)
    for name, (password, perms) in users.items():
        key = asyncssh.generate_private_key("ssh-ed25519")
        keys[name] = key_dir / f"{name}_key"
        key.write_private_key(str(keys[name]))
        keys[name].chmod(0o600)
        records.append(
            SftpUser(
                name=name,
                password_hash=hash_password(password) if password else None,
                keys=[key.export_public_key().decode().strip()],
                perms=parse_perms(perms),
            )
        )
    save_users_file(data_dir / "sftp" / "users.json", records)
    return keys


def add_user(data_dir: Path, name: str, *, password: str | None, perms: str) -> None:
    args = ["users", "add", name, "--perms", perms, "--data-dir", str(data_dir)]
    if password is not None:
        args.append("--password-stdin")
    result = run_cli(*args, input=(password + "\n").encode() if password else None)
    assert result.returncode == 0, result.stderr


def add_key(data_dir: Path, name: str) -> Path:
    result = run_cli("users", "add-key", name, "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def openssh_sftp(
    port: int,
    user: str,
    key: Path,
    commands: list[str],
    cwd: Path,
    options: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run the OpenSSH ``sftp`` client in batch mode with key authentication; ``options``
    come first (ssh keeps the first value given for an option)."""
    sftp = shutil.which("sftp")
    assert sftp, "the OpenSSH sftp client is missing (make install installs openssh-client)"
    batch = cwd / f"batch-{user}-{time.monotonic_ns()}"
    batch.write_text("\n".join(commands) + "\n")
    return subprocess.run(
        [
            sftp,
            *options,
            "-b",
            str(batch),
            "-P",
            str(port),
            "-i",
            str(key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            f"{user}@127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


_LANDED = """
SELECT s.submission_id::text AS uuid, s.client, s.format, s.content_type, s.subtype,
       s.data_version, s.payload_size, s.is_duplicate, s.source_metadata, s.received_at,
       encode(r.fingerprint, 'hex') AS sha256, r.storage_path
FROM ingestion.submissions s JOIN ingestion.raw_ingestion r USING (object_id)
WHERE s.ingestion_source = 'sftp' AND s.client = %s
ORDER BY s.received_at
"""


def landed(dsn: str, user: str) -> list[dict[str, Any]]:
    """Every SFTP submission recorded for ``user``."""
    try:
        with psycopg.connect(dsn, row_factory=dict_row) as conn:
            return conn.execute(_LANDED, (user,)).fetchall()
    except psycopg.errors.UndefinedTable:
        return []


def wait_landed(dsn: str, user: str, count: int, timeout: float = 90) -> list[dict[str, Any]]:
    """Poll until ``user`` has at least ``count`` submissions; return them."""
    return wait_for(
        lambda: landed(dsn, user),
        lambda rows: len(rows) >= count,
        timeout=timeout,
        every=0.2,
        what=f"{count} submissions of {user} to land",
    )


def wait_paths(
    dsn: str, user: str, counts: Mapping[str, int], since: dt.datetime, timeout: float = 90
) -> dict[str, list[dict[str, Any]]]:
    """Poll until each path of ``counts`` has landed for ``user`` at least that many times;
    return every submission of ``user`` received since ``since``, by path. Uploads received
    before ``since`` are left out however late they land (a count of the user's rows taken
    before uploading would include them)."""

    def found() -> dict[str, list[dict[str, Any]]]:
        return by_name([row for row in landed(dsn, user) if row["received_at"] >= since])

    return wait_for(
        found,
        lambda paths: all(len(paths.get(path, ())) >= n for path, n in counts.items()),
        timeout=timeout,
        every=0.2,
        what=f"{user}'s uploads {dict(counts)} to land",
    )


def by_name(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["source_metadata"]["path"], []).append(row)
    return out


def set_bus(dsn: str, *, up: bool) -> None:
    """Take the PostgreSQL queue away (rename its table) or bring it back: a real outage."""
    old, new = ("messages_down", "messages") if up else ("messages", "messages_down")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(f"ALTER TABLE bus.{old} RENAME TO {new}")


def markers(data_dir: Path) -> list[Path]:
    """The journal's markers: uploads kept until their publish succeeds."""
    return list((data_dir / "sftp" / "journal").glob("*.marker"))


@asynccontextmanager
async def password_sftp(port: int, user: str, password: str) -> AsyncIterator[asyncssh.SFTPClient]:
    """An asyncssh SFTP session on the door at ``port``, logged in with a password."""
    async with (
        asyncssh.connect(
            "127.0.0.1",
            port,
            username=user,
            password=password,
            known_hosts=None,
            client_keys=None,
            agent_path=None,
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        yield sftp
