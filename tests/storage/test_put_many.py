"""put_many_bytes: every object of a batch written, in order, errors raised after all ended."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_bronze.storage import objects
from mm_bronze.storage.objects import ObjectStore


async def test_every_object_written_and_reported_in_order(tmp_path: Path) -> None:
    async with ObjectStore(tmp_path.as_uri()) as store:
        await store.put_bytes("d/3", b"already there")
        items = [(f"d/{n}", b"object %d" % n) for n in range(objects.IO_THREADS * 2 + 5)]
        written = await store.put_many_bytes(items)
    assert written == [n != 3 for n in range(len(items))]
    for n, (key, data) in enumerate(items):
        assert (tmp_path / key).read_bytes() == (b"already there" if n == 3 else data)


async def test_an_error_is_raised_once_every_other_write_has_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ObjectStore(tmp_path.as_uri()) as store:
        put = store._put_bytes

        def failing(path: str, data: bytes, sync_directory: bool = True) -> bool:
            if path.endswith("/1"):
                raise ValueError("refused")
            return put(path, data, sync_directory)

        monkeypatch.setattr(store, "_put_bytes", failing)
        items = [(f"d/{n}", b"x") for n in range(objects.IO_THREADS + 3)]
        with pytest.raises(ValueError, match="refused"):
            await store.put_many_bytes(items)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(
        str(n) for n in range(len(items)) if n != 1
    )
