"""put_many_bytes: every object of a batch written, in order, errors raised after all ended;
on a local disk, no object named before the data of all is durable."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mm_bronze.errors import StorageUnavailable
from mm_bronze.storage import local, objects
from mm_bronze.storage.objects import ObjectStore


@pytest.fixture(params=["synced together", "synced one by one"])
def together(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both ways of making a local batch durable (one ``syncfs``, or an fsync per file)."""
    if request.param == "synced one by one":
        monkeypatch.setattr(local, "SYNCS_TOGETHER", False)
    return bool(local.SYNCS_TOGETHER)


def test_this_machine_syncs_together() -> None:
    # Linux 5.8 or later, with unnamed files: the path the other tests take first is real.
    assert local.SYNCS_TOGETHER


async def test_every_object_written_and_reported_in_order(tmp_path: Path, together: bool) -> None:
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
    monkeypatch.setattr(local, "SYNCS_TOGETHER", False)
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


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_nothing_is_named_when_the_filesystem_sync_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_syncfs(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(local, "_SYNCFS", failing_syncfs)
    async with ObjectStore(tmp_path.as_uri()) as store:
        before = _descriptors()
        items = [(f"d/{n}", b"object %d" % n) for n in range(10)]
        with pytest.raises(StorageUnavailable, match=r"syncfs of .*: Input/output error"):
            await store.put_many_bytes(items)
        assert _descriptors() == before  # every unnamed file closed: gone
    assert list((tmp_path / "d").iterdir()) == []


async def test_a_failed_write_names_nothing_of_its_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = local._write_all
    monkeypatch.setattr(local, "MANY_AT_ONCE", 4)

    def failing(fd: int, chunks: Iterator[bytes]) -> None:
        data = b"".join(chunks)
        if data == b"object 6":
            raise OSError(errno.ENOSPC, "No space left on device")
        write(fd, iter((data,)))

    monkeypatch.setattr(local, "_write_all", failing)
    async with ObjectStore(tmp_path.as_uri()) as store:
        before = _descriptors()
        items = [(f"d/{n}", b"object %d" % n) for n in range(10)]
        with pytest.raises(StorageUnavailable, match="No space left"):
            await store.put_many_bytes(items)
        assert _descriptors() == before
    # The first group of 4 was synced and named; nothing of the second (4 to 7) was.
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["0", "1", "2", "3"]


async def test_a_file_on_another_filesystem_below_the_root_is_synced_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory of the store that lies on another filesystem (here tmpfs through a link)
    # is not synced by the root's syncfs: its files get an fsync each.
    elsewhere = Path("/dev/shm") / f"mm-bronze-{os.getpid()}-{tmp_path.name}"
    elsewhere.mkdir()
    assert os.stat(elsewhere).st_dev != os.stat(tmp_path).st_dev
    (tmp_path / "other").symlink_to(elsewhere)
    synced: list[int] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        found = os.fstat(fd)
        if stat.S_ISREG(found.st_mode):  # not the directories made on the way
            synced.append(found.st_dev)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    try:
        async with ObjectStore(tmp_path.as_uri()) as store:
            items = [("here/a", b"a"), ("other/b", b"b"), ("here/c", b"c"), ("other/d", b"d")]
            assert await store.put_many_bytes(items, sync_directory=False) == [True] * 4
        assert synced == [os.stat(elsewhere).st_dev] * 2
        assert (elsewhere / "b").read_bytes() == b"b"
    finally:
        for child in elsewhere.iterdir():
            child.unlink()
        elsewhere.rmdir()
