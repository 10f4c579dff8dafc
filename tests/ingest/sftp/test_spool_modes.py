"""Spool files are not readable by other local users, however an open makes them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mm_bronze.ingest.sftp.spool import open_fresh


@pytest.mark.parametrize(
    "flags",
    [
        os.O_WRONLY | os.O_CREAT,  # a new file
        os.O_WRONLY | os.O_CREAT | os.O_TRUNC,  # an existing one replaced
        os.O_WRONLY,  # an existing one kept: worked on a copy (rewrite, resume)
    ],
    ids=["new", "truncated", "kept"],
)
def test_every_open_leaves_the_spool_mode(tmp_path: Path, flags: int) -> None:
    local = tmp_path / "upload.hl7"
    if not flags & os.O_CREAT or flags & os.O_TRUNC:
        local.write_bytes(b"MSH|before")
        local.chmod(0o600)
    previous = os.umask(0o022)
    try:
        fd = open_fresh(local, flags)
    finally:
        os.umask(previous)
    os.close(fd)
    assert stat.S_IMODE(local.stat().st_mode) == 0o640
    if not flags & (os.O_CREAT | os.O_TRUNC):
        assert local.read_bytes() == b"MSH|before"
    assert [p.name for p in tmp_path.iterdir()] == ["upload.hl7"]
