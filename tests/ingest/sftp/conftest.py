"""A real ``serve --all`` with the SFTP door per test module, and its users."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ingest.sftp.helpers import add_key, add_user
from tests.services.mm_bronze import MmBronze

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "para": "para-pw"}
MAX_FILE_SIZE = 1_000_000
INLINE_LIMIT = 64 * 1024


@dataclass
class SftpDoor:
    proc: MmBronze
    dsn: str
    keys: dict[str, Path]

    @property
    def port(self) -> int:
        return self.proc.sftp_port

    @property
    def data_dir(self) -> Path:
        return self.proc.data_dir

    def home(self, user: str) -> Path:
        return self.data_dir / "sftp" / "home" / user


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[SftpDoor]:
    data_dir = tmp_path_factory.mktemp("sftp")
    add_user(data_dir, "alice", password=PASSWORDS["alice"], perms="read,write,delete")
    add_user(data_dir, "bob", password=PASSWORDS["bob"], perms="write")
    add_user(data_dir, "carol", password=PASSWORDS["carol"], perms="read,write")
    add_user(data_dir, "para", password=PASSWORDS["para"], perms="read,write")
    add_user(data_dir, "ossh", password=None, perms="read,write")
    keys = {"alice": add_key(data_dir, "alice"), "ossh": add_key(data_dir, "ossh")}
    proc = MmBronze(
        data_dir,
        env={
            "POSTGRES_DSN": module_dsn,
            "SFTP_MAX_FILE_SIZE": str(MAX_FILE_SIZE),
            "MM_BRONZE_SFTP_INLINE_LIMIT": str(INLINE_LIMIT),
            "MM_BRONZE_SFTP_MAX_CONCURRENT_UPLOADS_PER_USER": "64",
        },
    )
    proc.start()
    yield SftpDoor(proc, module_dsn, keys)
    proc.stop()
