"""One file handle opened for writing: the bytes go to the spool file and, while the
writes stay sequential, straight into the intake as well (hash and kind; the staged copy
too when staging is not on the local disk)."""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mm_bronze.errors import PayloadTooLarge
from mm_bronze.ingest.sftp.intake import IntakeBuilder

# Written bytes are handed to the disk every WRITEBACK_BYTES, so the fsync before the close
# is answered finds little left to write.
WRITEBACK_BYTES = 8 * 1024 * 1024


@dataclass
class Session:
    """Who is connected: what an upload's metadata records about its sender."""

    username: str
    remote_addr: str | None
    client_version: str | None
    published: set[Path] = field(default_factory=set)  # spool copies to drop at the end
    temp_files: set[Path] = field(default_factory=set)  # closed temp names not renamed yet


class Upload:
    """A spool file being written through one SFTP handle.

    ``write`` enforces ``max_size`` before writing (raising ``PayloadTooLarge``, after which
    the upload is ``rejected``); a write that fails marks the upload ``failed``. A write
    that does not continue where the previous one ended (resume, rewrite, sparse) drops
    the in-flight intake; the file is then read once at close instead. With ``append``
    every write goes to the end of the file, whatever its offset (SFTP's ``FXF_APPEND``).
    ``kept`` says the open kept the file's bytes (neither created nor truncated it); such a
    handle that then writes nothing and changes no size is ``unchanged``.
    """

    def __init__(
        self,
        session: Session,
        local: Path,
        virtual: str,
        fd: int,
        builder: IntakeBuilder | None,
        max_size: int,
        uuid: str,
        *,
        append: bool = False,
        kept: bool = False,
    ) -> None:
        self.uuid = uuid
        self.session = session
        self.local = local
        self.virtual = virtual
        self.fd = fd
        self.builder = builder
        self.max_size = max_size
        self.append = append
        self.kept = kept
        self.changed = False
        self.expected = 0
        self._written_back = 0  # bytes before this offset were handed to the disk
        self._writeback: asyncio.Future[int] | None = None
        self.rejected = False
        self.failed = False
        self.closed = False

    def write(self, offset: int, data: bytes) -> Awaitable[None] | None:
        """Write ``data`` at ``offset``: None when done, else an awaitable that finishes it.

        The bytes are on the spool file when this returns; only the intake may still have
        to wait (for the hashing of the previous piece, a staged write, a dropped intake).
        Most writes of a large upload thus cost the loop no coroutine and no extra step.
        """
        self.changed = True
        if self.append:
            offset = os.fstat(self.fd).st_size
        end = offset + len(data)
        if end > self.max_size:
            self.rejected = True
            raise PayloadTooLarge(self.max_size)
        try:
            _write_all(self.fd, data, offset)
            if end >= self._written_back + WRITEBACK_BYTES:
                self._start_writeback(end)
            if self.builder is None:
                return None
            if offset != self.expected:
                return self._failing_on_error(self.drop_intake())
            pending = self.builder.feed(data)
            self.expected = end
        except BaseException:
            self.failed = True  # e.g. disk full: the file is incomplete, never ingest it
            raise
        return None if pending is None else self._failing_on_error(pending)

    async def _failing_on_error(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except BaseException:
            self.failed = True
            raise

    def _start_writeback(self, end: int) -> None:
        """Start writing ``[written back, end)`` to disk in a thread; one at a time (it may
        block for a while when the disk is busy, never on the loop)."""
        if _sync_file_range is None or (self._writeback and not self._writeback.done()):
            return
        start, self._written_back = self._written_back, end
        self._writeback = asyncio.ensure_future(
            asyncio.to_thread(_sync_file_range, self.fd, start, end - start, SYNC_FILE_RANGE_WRITE)
        )

    async def settle(self) -> None:
        """Wait for a writeback in progress: the file descriptor is then free to close."""
        writeback, self._writeback = self._writeback, None
        if writeback is not None:
            await writeback  # a hint only: its result is not checked, the fsync reports errors

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    async def truncate(self, size: int) -> None:
        if size > self.max_size:
            self.rejected = True
            raise PayloadTooLarge(self.max_size)
        if size != os.fstat(self.fd).st_size:
            self.changed = True
        os.ftruncate(self.fd, size)
        if size != self.expected:
            await self.drop_intake()

    async def drop_intake(self) -> None:
        if self.builder is not None:
            builder, self.builder = self.builder, None
            await builder.abort()

    @property
    def unchanged(self) -> bool:
        """True when the file is as the open found it: nothing was sent through the handle."""
        return self.kept and not self.changed

    def sequential_complete(self) -> bool:
        """True when the intake saw every byte of the file, in order."""
        return self.builder is not None and os.fstat(self.fd).st_size == self.expected

    def close_fd(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


SYNC_FILE_RANGE_WRITE = 2


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's ``sync_file_range`` (not in ``os``), or None where libc lacks it."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
