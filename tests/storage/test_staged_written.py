"""``StagedBlob.commit(written=...)`` says when every byte is in the file, before durability."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mm_bronze.storage import ObjectStore, StagedBlob


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
