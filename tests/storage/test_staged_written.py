"""``StagedBlob.commit(written=...)`` says when every byte is in the file, before durability."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mm_bronze.storage import ObjectStore, StagedBlob, local, staging


async def test_written_resolves_with_every_byte_in_the_file(tmp_path: Path) -> None:
    async with ObjectStore(tmp_path.as_uri()) as store:
        blob = await StagedBlob.create(store, "api/blob")
        for n in range(5):
            await blob.write(bytes([n]) * 100_000)
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seen: list[bytes] = []
        written.add_done_callback(lambda _: seen.append((tmp_path / "api/blob").read_bytes()))
        await blob.commit(written=written)
        assert written.done()
        assert seen == [b"".join(bytes([n]) * 100_000 for n in range(5))]


async def test_commit_makes_the_blob_name_and_new_directories_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A staged blob is acknowledged once committed: its name must survive a power loss too,
    so its directory (and each directory created for it) is synced before commit returns."""
    synced: list[str] = []

    def spy(directory: str | os.PathLike[str]) -> None:
        synced.append(os.fspath(directory))
        real(directory)

    real = local.fsync_directory
    monkeypatch.setattr(local, "fsync_directory", spy)
    monkeypatch.setattr(staging, "fsync_directory", spy)
    async with ObjectStore(tmp_path.as_uri()) as store:
        synced.clear()
        blob = await StagedBlob.create(store, "api/2026-12-03/blob")
        await blob.write(b"staged bytes")
        assert synced == [str(tmp_path), str(tmp_path / "api")]
        await blob.commit()
    assert synced[-1] == str(tmp_path / "api" / "2026-12-03")
    assert (tmp_path / "api" / "2026-12-03" / "blob").read_bytes() == b"staged bytes"
