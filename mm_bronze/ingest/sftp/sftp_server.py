"""The SFTP session of one user: jailed in their spool directory, with their permissions.

Paths are mapped under the user's home ('..' is refused); after mapping, the real path
(symlinks resolved) must still lie inside it. Links cannot be created. ``read``,
``write`` and ``delete`` permissions are checked per operation. Files opened for writing
are ``Upload`` objects; closing one that wrote ingests it (see ``Spool.finish_upload``).
"""

from __future__ import annotations

import asyncio
import os
import posixpath
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import structlog
from asyncssh import (
    FXF_APPEND,
    FXF_CREAT,
    FXF_EXCL,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    SFTPAttrs,
    SFTPFailure,
    SFTPFileAlreadyExists,
    SFTPInvalidFilename,
    SFTPNoSuchFile,
    SFTPOpUnsupported,
    SFTPPermissionDenied,
)

from mm_bronze.errors import PayloadTooLarge, Unavailable
from mm_bronze.ingest.sftp.jail import resolves_inside
from mm_bronze.ingest.sftp.spool import Spool, UploadRefused
from mm_bronze.ingest.sftp.tree import count_directories
from mm_bronze.ingest.sftp.upload import Session, Upload
from mm_bronze.ingest.sftp.users import SftpUser

log = structlog.get_logger(__name__)
T = TypeVar("T")
# The longest path the system takes: Linux's PATH_MAX, its terminating NUL included.
PATH_LIMIT = 4096


async def at_protocol_edge(action: Callable[[], Awaitable[T]]) -> T:
    """Run ``action``, turning mm-bronze errors into SFTP status errors for the client."""
    try:
        return await action()
    except UploadRefused as exc:
        raise SFTPFailure(str(exc)) from None
    except PayloadTooLarge as exc:
        raise SFTPFailure(str(exc)) from None
    except Unavailable as exc:
        raise SFTPFailure(
            f"upload not ingested ({type(exc).__name__}); the file was kept and will be "
            "retried by the server, or upload it again"
        ) from None


class JailedSFTPServer(asyncssh.SFTPServer):
    """One SFTP session; ``user`` is who authenticated on the connection."""

    def __init__(self, chan: asyncssh.SSHServerChannel, spool: Spool, user: SftpUser) -> None:
        self._spool = spool
        self._user = user
        self._home = spool.home(user.name).resolve()
        self._home_path = os.fsencode(self._home)
        super().__init__(chan, chroot=self._home_path)
        conn = chan.get_connection()
        peer = conn.get_extra_info("peername")
        self._session = Session(
            username=user.name,
            remote_addr=str(peer[0]) if peer else None,
            client_version=_text(conn.get_extra_info("client_version")),
        )
        self._counted = spool.metrics.connections  # open sessions, until ``exit``
        if self._counted is not None:
            self._counted.inc()

    # -- jail and permissions -------------------------------------------------------------

    def map_path(self, path: bytes) -> bytes:
        if b"\x00" in path:
            raise SFTPInvalidFilename("file names cannot contain NUL")
        if not path.isascii():
            try:  # a name is recorded with each upload (metadata, logs, GET /submissions?path=)
                path.decode("utf-8")
            except UnicodeDecodeError:
                raise SFTPInvalidFilename("file names must be UTF-8") from None
        if b".." in path.split(b"/")[:-1]:  # a final '..' is a directory entry, clamped below
            raise SFTPPermissionDenied("'..' is not allowed in paths")
        local = super().map_path(path)
        if not resolves_inside(self._home_path, local):
            raise SFTPPermissionDenied("path is outside your directory")
        return local

    def realpath(self, path: bytes) -> bytes:
        # Only resolving a name for display (``cd ..``): '..' stops at the user's root.
        virtual = posixpath.normpath(posixpath.join(b"/", path)).lstrip(b"/")
        local = os.path.realpath(self.map_path(b"/" + virtual))
        return self.reverse_map_path(local)

    def _local(self, path: bytes) -> Path:
        return Path(os.fsdecode(self.map_path(path)))

    def _virtual(self, local: Path) -> str:
        return "/" + local.relative_to(self._home).as_posix() if local != self._home else "/"

    def _within_depth(self, local: Path) -> None:
        """Refuse a new name more than ``max_depth`` directory levels below the home."""
        levels = len(local.relative_to(self._home).parts) - 1
        if levels > self._spool.config.max_depth:
            raise SFTPPermissionDenied(
                f"too deep: at most {self._spool.config.max_depth} directory levels"
            )

    def _tree_fits(self, old: Path, new: Path) -> None:
        """Refuse to move the directory ``old`` to ``new`` if a directory it holds (or it)
        would then lie deeper than ``mkdir`` allows (``max_depth`` levels), or a path below
        it be longer than the system allows: each name is checked where it is made, but a
        directory moved under another takes its whole tree deeper."""
        limit = self._spool.config.max_depth
        base = len(new.relative_to(self._home).parts)  # the levels of ``new`` itself
        deepest, longest = base, len(os.fsencode(new))
        for directory, subdirectories, files in os.walk(old):
            below = Path(directory).relative_to(old)
            deepest = max(deepest, base + len(below.parts))
            for name in (*subdirectories, *files):
                longest = max(longest, len(os.fsencode(new / below / name)))
            if deepest > limit:
                raise SFTPPermissionDenied(f"too deep: at most {limit} directory levels")
        if longest >= PATH_LIMIT:
            raise SFTPPermissionDenied("the paths below the new name would be too long")

    def _require(self, permission: str) -> None:
        if not self._user.can(permission):
            raise SFTPPermissionDenied(f"you do not have the {permission} permission")

    # -- files ----------------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        local = self._local(path)
        if not pflags & (FXF_WRITE | FXF_APPEND):
            self._require("read")
            return _open_for_reading(local)
        self._require("write")
        if pflags & FXF_READ:
            self._require("read")
        flags = os.O_RDWR if pflags & FXF_READ else os.O_WRONLY
        for sftp_flag, os_flag in (
            (FXF_CREAT, os.O_CREAT),
            (FXF_TRUNC, os.O_TRUNC),
            (FXF_EXCL, os.O_EXCL),
        ):
            if pflags & sftp_flag:
                flags |= os_flag
        self._within_depth(local)
        if not _exists(local) and not self._spool.files.admits(self._user.name):
            limit = self._spool.config.max_files
            raise SFTPPermissionDenied(f"too many files: at most {limit} per user")
        append = bool(pflags & FXF_APPEND)  # resume (OpenSSH ``reput``): writes go to the end
        return await at_protocol_edge(
            lambda: self._spool.open_upload(
                self._session, local, self._virtual(local), flags, append=append
            )
        )

    def open56(self, *args: Any, **kwargs: Any) -> object:
        raise SFTPOpUnsupported("SFTP versions 5 and 6 are not supported; use version 3")

    async def close(self, file_obj: object) -> None:
        if not isinstance(file_obj, Upload):
            file_obj.close()  # type: ignore[attr-defined]
            return
        aborted = self.channel.is_closing()
        await at_protocol_edge(lambda: self._spool.finish_upload(file_obj, aborted=aborted))

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if isinstance(file_obj, Upload):
            return file_obj.read(offset, size)
        return os.pread(file_obj.fileno(), size, offset)  # type: ignore[attr-defined]

    def write(self, file_obj: object, offset: int, data: bytes) -> int | Awaitable[int]:
        # Synchronous while nothing has to wait, as asyncssh's own server writes: a
        # coroutine per 32 KiB write request is a cost the bare server does not pay.
        if not isinstance(file_obj, Upload):
            raise SFTPPermissionDenied("file was not opened for writing")
        try:
            pending = file_obj.write(offset, data)
        except PayloadTooLarge as exc:
            raise SFTPFailure(str(exc)) from None
        if pending is None:
            return len(data)
        return at_protocol_edge(lambda: _written(pending, len(data)))

    def fstat(self, file_obj: object) -> os.stat_result:
        fd = file_obj.fd if isinstance(file_obj, Upload) else file_obj.fileno()  # type: ignore[attr-defined]
        return os.fstat(fd)

    async def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        if not isinstance(file_obj, Upload):
            raise SFTPPermissionDenied("file was not opened for writing")
        if attrs.size is not None:
            size = attrs.size
            await at_protocol_edge(lambda: file_obj.truncate(size))
        _set_times(file_obj.fd, attrs)

    def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self._require("write")
        if attrs.size is not None:
            raise SFTPOpUnsupported("changing a file's size by path is not supported")
        # Accepted but not applied: a published spool copy shares its inode with the stored
        # object, whose metadata stays as stored. (``put -p`` sets times on the open handle.)
        self._local(path)

    lsetstat = setstat

    def fsync(self, file_obj: object) -> None:
        fd = file_obj.fd if isinstance(file_obj, Upload) else file_obj.fileno()  # type: ignore[attr-defined]
        os.fsync(fd)

    # -- names ----------------------------------------------------------------------------

    def remove(self, path: bytes) -> None:
        self._require("delete")
        local = self._local(path)
        if self._spool.is_busy(local):
            raise SFTPFailure("this file is being uploaded or waits for ingestion")
        os.remove(local)
        self._spool.files.removed(local)

    def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        self._require("write")
        local = self._local(path)
        self._within_depth(local / "_")
        limit = self._spool.config.max_directories
        if count_directories(self._home, limit) >= limit:
            raise SFTPPermissionDenied(f"too many directories: at most {limit} per user")
        os.mkdir(local, 0o750)

    def rmdir(self, path: bytes) -> None:
        self._require("delete")
        local = self._local(path)
        if local == self._home:
            raise SFTPPermissionDenied("cannot remove your home directory")
        os.rmdir(local)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, replace=False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, replace=True)

    async def _rename(self, oldpath: bytes, newpath: bytes, *, replace: bool) -> None:
        self._require("write")
        old, new = self._local(oldpath), self._local(newpath)
        if not _exists(old):
            raise SFTPNoSuchFile("no such file")
        if old == self._home:
            raise SFTPPermissionDenied("cannot rename your home directory")
        if _exists(new):
            if not replace:
                raise SFTPFileAlreadyExists("target exists")
            self._require("delete")
        if self._spool.is_busy(old) or self._spool.is_busy(new):
            raise SFTPFailure("this file is being uploaded or waits for ingestion")
        if old.is_dir() and self._spool.busy_under(old):
            raise SFTPFailure("a file in this directory is being uploaded or waits for ingestion")
        if not new.parent.is_dir():
            raise SFTPNoSuchFile("the target directory does not exist")
        self._within_depth(new)
        moves_directory = old.is_dir()
        if moves_directory:
            await asyncio.to_thread(self._tree_fits, old, new)
        session = self._session
        if old.is_file() and self._spool.is_temp(old.name) and not self._spool.is_temp(new.name):
            await at_protocol_edge(
                lambda: self._spool.rename_ingest(
                    session, old, new, self._virtual(new), replace=replace
                )
            )
            return
        if replace:
            self._spool.replace(old, new)
        else:
            os.rename(old, new)
        for tracked in (session.published, session.temp_files):
            if old in tracked:
                tracked.discard(old)
                tracked.add(new)
            if moves_directory:  # the session's copies and temp files moved with it
                inside = [path for path in tracked if old in path.parents]
                tracked.difference_update(inside)
                tracked.update(new / path.relative_to(old) for path in inside)

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise SFTPPermissionDenied("links are not allowed")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise SFTPPermissionDenied("links are not allowed")

    async def exit(self) -> None:
        counted, self._counted = self._counted, None
        if counted is not None:
            counted.dec()
        await self._spool.end_session(self._session)


async def _written(pending: Awaitable[None], size: int) -> int:
    await pending
    return size


def _open_for_reading(local: Path) -> object:
    return open(os.open(local, os.O_RDONLY | os.O_NOFOLLOW), "rb", buffering=0)


def _exists(local: Path) -> bool:
    return os.path.lexists(local)


def _set_times(target: int, attrs: SFTPAttrs) -> None:
    if attrs.atime is not None and attrs.mtime is not None:
        os.utime(target, (attrs.atime, attrs.mtime))


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value) if value is not None else None
