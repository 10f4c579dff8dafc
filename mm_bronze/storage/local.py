"""Objects on a local filesystem: created once, whole or not at all, durable when asked.

A new object is written to an unnamed file (``O_TMPFILE``), synced, then given its name with
``linkat``, which fails when the name exists: no temporary name to clean up after a crash, no
rename, and "write unless it exists" in one system call. Where the filesystem has no unnamed
files (or ``/proc`` is not mounted), a temporary name, fsync and rename do the same.

The new name itself is durable once its directory is synced: with ``sync_directory=False``
the caller does that (``fsync_directories``, once per directory for many objects). A directory
created on the way is durable at once: ``make_directories`` syncs the parent of each one.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterable, Iterator

# Linux: a file opened with O_TMPFILE is named through its /proc/self/fd link.
_CAN_LINK_UNNAMED = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
# What open(O_TMPFILE) fails with where a filesystem (or kernel) has no unnamed files.
_NO_UNNAMED_FILES = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})
_MODE = 0o666  # before the umask, as open() would


def write_new(path: str, chunks: Iterator[bytes], sync_directory: bool = True) -> bool:
    """Write ``chunks`` as a new file at ``path`` unless ``path`` exists; True when written.

    The parent directories are created as needed. The object appears whole or not at all.
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    written = _write_unnamed(directory, path, chunks) if _CAN_LINK_UNNAMED else None
    if written is None:
        written = _write_renamed(directory, path, chunks)
    if written and sync_directory:
        fsync_directory(directory)
    return written


def link_new(source: str, path: str, sync_directory: bool = True) -> bool:
    """Give a durable, immutable file a second name, ``path``: no copy. True when linked;
    False when ``path`` exists or linking is impossible (another filesystem), in which case
    the caller copies. Raises ``FileNotFoundError`` when ``source`` does not exist."""
    directory = os.path.dirname(path)
    make_directories(directory)
    try:
        os.link(source, path)
    except (FileNotFoundError, FileExistsError):
        if not os.path.exists(source):
            raise FileNotFoundError(source) from None
        return False
    except OSError:
        return False
    if sync_directory:
        fsync_directory(directory)
    return True


def fsync_directories(directories: Iterable[str]) -> None:
    for directory in directories:
        fsync_directory(directory)


def make_directories(directory: str | os.PathLike[str]) -> None:
    """``os.makedirs(directory, exist_ok=True)``, with each directory it creates made durable:
    a new directory's name lives in its parent, so the parent is synced. A crash cannot then
    take away a directory that holds an object already reported durable."""
    directory = os.fspath(directory)
    if os.path.isdir(directory):
        return
    parent = os.path.dirname(os.path.abspath(directory))
    make_directories(parent)
    try:
        os.mkdir(directory)
    except FileExistsError:
        if not os.path.isdir(directory):
            raise
        return
    fsync_directory(parent)


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename or new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_unnamed(directory: str, path: str, chunks: Iterator[bytes]) -> bool | None:
    """None, with ``chunks`` untouched, when ``directory``'s filesystem has no unnamed files."""
    try:
        fd = _open_unnamed(directory)
    except OSError as exc:
        if exc.errno in _NO_UNNAMED_FILES:
            return None
        raise
    try:
        _write_all(fd, chunks)
        os.fsync(fd)
        try:
            # A directory fd argument makes Python call linkat(), which follows the /proc
            # link to the open file; both paths are absolute, so the fd is not used otherwise.
            os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=fd, follow_symlinks=True)
        except FileExistsError:
            return False
        return True
    finally:
        os.close(fd)


def _open_unnamed(directory: str) -> int:
    flags = os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC
    try:
        return os.open(directory, flags, _MODE)
    except FileNotFoundError:
        make_directories(directory)
        return os.open(directory, flags, _MODE)


def _write_renamed(directory: str, path: str, chunks: Iterator[bytes]) -> bool:
    make_directories(directory)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _MODE)
        try:
            _write_all(fd, chunks)
            os.fsync(fd)
        finally:
            os.close(fd)
        if os.path.exists(path):
            return False
        os.replace(tmp, path)
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_all(fd: int, chunks: Iterator[bytes]) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
