"""A real ``serve --all`` with the SFTP door per test module, and its users."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ingest.sftp.helpers import write_users
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
    keys = write_users(
        data_dir,
        {
            "alice": (PASSWORDS["alice"], "read,write,delete"),
            "bob": (PASSWORDS["bob"], "write"),
            "carol": (PASSWORDS["carol"], "read,write"),
            "para": (PASSWORDS["para"], "read,write"),
            "ossh": (None, "read,write"),
        },
    )
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
