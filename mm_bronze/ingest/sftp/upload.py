"""One file handle opened for writing: the bytes go to the spool file and, while the
writes stay sequential, straight into the intake as well (hash and kind; the staged copy
too when staging is not on the local disk)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mm_bronze.errors import PayloadTooLarge
from mm_bronze.ingest.sftp.intake import IntakeBuilder


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
    the in-flight intake; the file is then read once at close instead.
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
    ) -> None:
        self.uuid = uuid
        self.session = session
        self.local = local
        self.virtual = virtual
        self.fd = fd
        self.builder = builder
        self.max_size = max_size
        self.expected = 0
        self.rejected = False
        self.failed = False
        self.closed = False

    async def write(self, offset: int, data: bytes) -> int:
        end = offset + len(data)
        if end > self.max_size:
            self.rejected = True
            raise PayloadTooLarge(self.max_size)
        try:
            _write_all(self.fd, data, offset)
            if self.builder is not None:
                if offset == self.expected:
                    await self.builder.feed(data)
                    self.expected = end
                else:
                    await self.drop_intake()
        except BaseException:
            self.failed = True  # e.g. disk full: the file is incomplete, never ingest it
            raise
        return len(data)

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    async def truncate(self, size: int) -> None:
        if size > self.max_size:
            self.rejected = True
            raise PayloadTooLarge(self.max_size)
        os.ftruncate(self.fd, size)
        if size != self.expected:
            await self.drop_intake()

    async def drop_intake(self) -> None:
        if self.builder is not None:
            builder, self.builder = self.builder, None
            await builder.abort()

    def sequential_complete(self) -> bool:
        """True when the intake saw every byte of the file, in order."""
        return self.builder is not None and os.fstat(self.fd).st_size == self.expected

    def close_fd(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
