"""Local objects: written once, whole or not at all, with or without unnamed files."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mm_bronze.storage import local


@pytest.fixture(params=["unnamed", "renamed"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of writing: unnamed file + link, and the temporary name + rename fallback."""
    if request.param == "renamed":
        monkeypatch.setattr(local, "_CAN_LINK_UNNAMED", False)
    elif not local._CAN_LINK_UNNAMED:
        pytest.fail("this machine should support O_TMPFILE and /proc")
    return str(request.param)


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_written_once_in_new_directories(mode: str, tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "object.json"
    assert local.write_new(str(path), iter([b"first ", b"bytes"]))
    assert path.read_bytes() == b"first bytes"
    assert not local.write_new(str(path), iter([b"other bytes"]))
    assert path.read_bytes() == b"first bytes"
    assert entries(path.parent) == ["object.json"]


def test_permissions_follow_the_umask(mode: str, tmp_path: Path) -> None:
    local.write_new(str(tmp_path / "object"), iter([b"x"]))
    (tmp_path / "plain").write_bytes(b"x")
    assert (tmp_path / "object").stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_a_failed_write_leaves_nothing(mode: str, tmp_path: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield b"half of it"
        raise OSError(errno.EIO, "source read failed")

    with pytest.raises(OSError, match="source read failed"):
        local.write_new(str(tmp_path / "object"), broken())
    assert entries(tmp_path) == []


def test_falls_back_where_unnamed_files_are_unsupported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(directory: str) -> int:
        raise OSError(errno.EOPNOTSUPP, "no O_TMPFILE here")

    monkeypatch.setattr(local, "_open_unnamed", unsupported)
    assert local.write_new(str(tmp_path / "d" / "object"), iter([b"whole"]))
    assert (tmp_path / "d" / "object").read_bytes() == b"whole"
    assert entries(tmp_path / "d") == ["object"]


def test_many_concurrent_writers_in_one_directory(mode: str, tmp_path: Path) -> None:
    paths = [str(tmp_path / f"{n}.json") for n in range(200)]
    with ThreadPoolExecutor(16) as pool:
        # Every object twice, at once: each is written by exactly one of its writers.
        written = list(pool.map(lambda p: local.write_new(p, iter([p.encode()]), False), paths * 2))
    local.fsync_directories([str(tmp_path)])
    assert sum(written) == len(paths)
    assert entries(tmp_path) == sorted(os.path.basename(p) for p in paths)
    assert all(Path(p).read_bytes() == p.encode() for p in paths)


def test_link_new_names_a_file_without_copying(tmp_path: Path) -> None:
    source = tmp_path / "staged"
    source.write_bytes(b"staged bytes")
    target = tmp_path / "raw" / "object"
    assert local.link_new(str(source), str(target))
    assert target.read_bytes() == b"staged bytes"
    assert target.stat().st_ino == source.stat().st_ino
    assert not local.link_new(str(source), str(target))
    with pytest.raises(FileNotFoundError):
        local.link_new(str(tmp_path / "missing"), str(tmp_path / "raw" / "other"))
    assert entries(tmp_path / "raw") == ["object"]


def synced_directories(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The directories ``local`` fsyncs from now on (the fsyncs still happen)."""
    synced: list[str] = []
    real = local.fsync_directory

    def spy(directory: str | os.PathLike[str]) -> None:
        synced.append(os.fspath(directory))
        real(directory)

    monkeypatch.setattr(local, "fsync_directory", spy)
    return synced


def test_new_directories_are_durable_in_their_parents(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = synced_directories(monkeypatch)
    path = tmp_path / "raw" / "2026-12-03" / "object"
    assert local.write_new(str(path), iter([b"bytes"]))
    # Each new directory's entry is synced in its parent, then the object's entry.
    assert synced == [str(tmp_path), str(tmp_path / "raw"), str(path.parent)]
    synced.clear()
    assert local.write_new(str(path.parent / "second"), iter([b"more"]))
    assert synced == [str(path.parent)]  # nothing new to make durable but the name


def test_make_directories_accepts_existing_and_refuses_a_file(tmp_path: Path) -> None:
    local.make_directories(tmp_path)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError):
        local.make_directories(tmp_path / "file" / "below")
    with pytest.raises(FileExistsError):
        local.make_directories(tmp_path / "file")
