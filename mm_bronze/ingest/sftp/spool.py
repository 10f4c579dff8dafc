"""The spool: users' jails on local disk, uploads in progress, and publishing finished ones.

A finished upload is published (durable on the bus) before the client's close returns.
Spool copies are removed once published (at the end of the session, so clients that
stat the file after closing it still see it); a copy whose publish failed stays, with its
journal marker, and is published again by the retry loop or the next start. Each call such
a replay makes to a remote staging store waits ``storage.staging_timeout`` seconds at most,
and a stop cancels a replay in progress: a store that hangs holds neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fnmatch
import os
import posixpath
import shutil
import stat
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

import msgspec
import structlog

from mm_bronze.bus import Bus
from mm_bronze.errors import BronzeError, BusUnavailable, StorageUnavailable
from mm_bronze.ingest.sftp.intake import Intake, IntakeBuilder, intake_from_file
from mm_bronze.ingest.sftp.journal import Journal, Marker
from mm_bronze.ingest.sftp.quota import FileCounts
from mm_bronze.ingest.sftp.spare import SparePool
from mm_bronze.ingest.sftp.tree import files_under
from mm_bronze.ingest.sftp.upload import Session, Upload
from mm_bronze.metrics import DoorMetrics, format_label
from mm_bronze.metrics.door import ACCEPTED, TOO_LARGE, UNAVAILABLE, UNKNOWN
from mm_bronze.models import IngestEvent, encode_event
from mm_bronze.settings import SftpSettings
from mm_bronze.storage import ObjectStore, StagedBlob
from mm_bronze.storage.local import fsync_directory, make_directories

log = structlog.get_logger(__name__)


class UploadRefused(BronzeError):
    """The upload cannot start or finish for a reason the client should see."""


@dataclass(frozen=True)
class SpoolConfig:
    root: Path
    topic: str
    max_file_size: int
    inline_limit: int
    temp_patterns: tuple[str, ...]
    max_uploads_per_user: int
    fhir_version: str
    retry_seconds: float
    max_depth: int = 32
    max_directories: int = 1000
    max_files: int = 10_000

    @classmethod
    def from_settings(cls, settings: SftpSettings, root: Path, topic: str) -> SpoolConfig:
        return cls(
            root=root,
            topic=topic,
            max_file_size=settings.max_file_size,
            inline_limit=settings.inline_limit,
            temp_patterns=tuple(settings.temp_patterns),
            max_uploads_per_user=settings.max_concurrent_uploads_per_user,
            fhir_version=settings.fhir_version,
            retry_seconds=settings.retry_seconds,
            max_depth=settings.max_depth,
            max_directories=settings.max_directories_per_user,
            max_files=settings.max_files_per_user,
        )


class Spool:
    """Shared by every SFTP session of the process."""

    def __init__(
        self, config: SpoolConfig, bus: Bus, staging: ObjectStore, metrics: DoorMetrics
    ) -> None:
        self.config = config
        self.bus = bus
        self.staging = staging
        self.metrics = metrics
        self.homes = config.root / "home"
        self.journal = Journal(config.root / "journal")
        self.files = FileCounts(self.homes, config.max_files)
        self.spares = SparePool(config.root / "spare")
        self._writing: dict[Path, Upload] = {}
        # Opened for writing, the upload not yet registered in ``_writing`` (a copy of the
        # existing file is being made): taken before the first await, so a second open of
        # the same file waits for nothing and is refused.
        self._opening: set[Path] = set()
        self._pending: dict[Path, str] = {}  # spool file → uuid of its unpublished marker
        self._publishing: set[str] = set()  # uuids whose first publish is in progress
        self._uploads_per_user: dict[str, int] = {}

    # -- layout ---------------------------------------------------------------------------

    def home(self, username: str) -> Path:
        path = self.homes / username
        path.mkdir(parents=True, exist_ok=True)
        return path

    def is_temp(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.config.temp_patterns)

    def is_busy(self, local: Path) -> bool:
        """True while ``local`` is being written or waits for its publish."""
        return local in self._writing or local in self._pending or local in self._opening

    # -- uploads --------------------------------------------------------------------------

    async def open_upload(
        self, session: Session, local: Path, virtual: str, flags: int, *, append: bool = False
    ) -> Upload:
        """Open ``local`` for writing (with ``append``, every write goes to its end); raises
        ``UploadRefused`` or ``OSError``."""
        if local in self._writing or local in self._opening:
            raise UploadRefused("this file is being uploaded by another session")
        count = self._uploads_per_user.get(session.username, 0)
        if count >= self.config.max_uploads_per_user:
            raise UploadRefused(
                f"too many concurrent uploads (at most {self.config.max_uploads_per_user})"
            )
        # Both taken before the first await, given back if the open fails.
        self._opening.add(local)
        self._uploads_per_user[session.username] = count + 1
        try:
            return await self._open_upload(session, local, virtual, flags, append)
        except BaseException:
            self._uploads_per_user[session.username] -= 1
            raise
        finally:
            self._opening.discard(local)

    async def _open_upload(
        self, session: Session, local: Path, virtual: str, flags: int, append: bool
    ) -> Upload:
        # A new file is one metadata operation, done at once as asyncssh's own server does: a
        # thread hop would cost each small upload more than the create itself.
        created = not _lexists(local)
        kept = not created and not flags & os.O_TRUNC
        fd = self.spares.take(local, flags) if created else None
        if fd is None:
            fd = open_new(local, flags)
        if fd is None:
            fd = await asyncio.to_thread(open_fresh, local, flags)  # copies the existing file
        if created:
            self.files.created(local)
        if not kept:  # a kept file's upload waiting for the bus stays until the handle changes it
            await self._supersede(local)
        submission = str(uuidlib.uuid4())
        builder = self._builder(virtual, submission, stage=not self.staging.is_local)
        upload = Upload(
            session,
            local,
            virtual,
            fd,
            builder,
            self.config.max_file_size,
            submission,
            append=append,
            kept=kept,
        )
        self._writing[local] = upload
        return upload

    async def finish_upload(self, upload: Upload, *, aborted: bool) -> None:
        """The client closed the handle (or the connection dropped with it open).

        Raises ``UploadRefused`` for a rejected upload and ``Unavailable`` when the file
        could not be made durable; the client's close then fails.
        """
        if upload.closed:
            return
        started = time.perf_counter()
        session = upload.session
        await upload.settle()
        if upload.unchanged:
            await self._close_unchanged(upload)
            return
        try:
            if upload.kept:
                await self._supersede(upload.local)
            if not aborted and (upload.rejected or upload.failed):
                outcome = TOO_LARGE if upload.rejected else UNAVAILABLE
                self.metrics.answered(UNKNOWN, outcome, started)
            if aborted or upload.rejected or upload.failed:
                await upload.drop_intake()
                self.unlink(upload.local)
                reason = "aborted" if aborted else "too large" if upload.rejected else "failed"
                log.warning(
                    "sftp upload discarded",
                    user=session.username,
                    path=upload.virtual,
                    reason=reason,
                )
                if upload.rejected:
                    raise UploadRefused(
                        f"file exceeds the maximum size of {self.config.max_file_size} bytes"
                    )
                if upload.failed and not aborted:
                    raise UploadRefused("a write failed; the upload was discarded, send it again")
                return
            if self.is_temp(upload.local.name):
                await upload.drop_intake()
                session.temp_files.add(upload.local)
                return
            try:
                intake = await self._complete_intake(upload)
            except StorageUnavailable as exc:
                # Nothing was journaled: the client is told to send the file again.
                session.published.add(upload.local)
                log.warning("sftp upload not staged", user=session.username, error=str(exc))
                self.metrics.answered(UNKNOWN, UNAVAILABLE, started)
                raise UploadRefused("storage is unavailable; upload the file again later") from exc
        finally:
            # Until here the path stays busy, so the inode being staged cannot be replaced.
            self._release(upload)
        if intake.size == 0:
            session.published.add(upload.local)
            log.info("empty sftp upload not ingested", user=session.username, path=upload.virtual)
            return
        await self.publish(intake, session, upload.local, upload.virtual, upload.uuid, started)
        session.published.add(upload.local)

    async def _close_unchanged(self, upload: Upload) -> None:
        """Close a handle that kept the file's bytes and sent none: it is not an upload, so
        nothing is ingested, and an upload of the file waiting for the bus stays waiting.
        (Also when the connection dropped: the file is as it was.)"""
        try:
            await upload.drop_intake()
            if upload.local in self._pending:
                # The open put a copy in its place (``open_fresh``): make it as durable as
                # the file the journal marker points at was.
                await asyncio.to_thread(_fsync_with_directory, upload.fd, upload.local)
        finally:
            self._release(upload)
        session = upload.session
        kept = session.temp_files if self.is_temp(upload.local.name) else session.published
        kept.add(upload.local)
        log.info(
            "sftp file closed unchanged, not ingested", user=session.username, path=upload.virtual
        )

    def _release(self, upload: Upload) -> None:
        """Close the handle's file and free its path and its place in the user's uploads."""
        upload.close_fd()
        self._writing.pop(upload.local, None)
        self._uploads_per_user[upload.session.username] -= 1

    async def _supersede(self, local: Path) -> None:
        """Drop the upload of ``local`` waiting for the bus, if any: a new one replaces it."""
        superseded = self._pending.pop(local, None)
        if superseded is not None:
            await self._drop_marker(superseded, "superseded by a new upload")

    async def _complete_intake(self, upload: Upload) -> Intake:
        """Hash, kind and staged copy of an upload whose handle is still open."""
        builder, upload.builder = upload.builder, None
        link = self.staging.is_local
        if builder is not None and os.fstat(upload.fd).st_size == upload.expected:
            try:
                intake = await builder.finish()
            except BaseException:
                await builder.abort()
                raise
        else:
            if builder is not None:
                await builder.abort()
            again = self._builder(upload.virtual, upload.uuid, stage=not link)
            intake = await intake_from_file(upload.local, again)
        if intake.payload is None and intake.staged is None:
            intake.staged = await self._stage_spool_file(upload)
        return intake

    async def _stage_spool_file(self, upload: Upload) -> StagedBlob:
        """Make the finished spool file the staged blob: fsync it, then hard link it.

        No byte is copied. Safe because the inode is never written again: every later
        upload to the same name gets a new inode (``open_fresh``). Falls back to a copy when
        staging is on another filesystem.
        """
        key = self._staging_key(upload.uuid)
        target = Path(self.staging.path(key))
        try:
            await asyncio.to_thread(_fsync_and_link, upload.fd, upload.local, target)
        except OSError as exc:
            log.info("sftp spool not linkable into staging, copying", error=type(exc).__name__)
            copied = await intake_from_file(
                upload.local, self._builder(upload.virtual, upload.uuid)
            )
            assert copied.staged is not None
            return copied.staged
        return StagedBlob(self.staging, key)

    def _builder(self, virtual: str, submission: str, *, stage: bool = True) -> IntakeBuilder:
        return IntakeBuilder(
            posixpath.basename(virtual),
            staging=self.staging,
            staging_key=self._staging_key(submission),
            inline_limit=self.config.inline_limit,
            fhir_version=self.config.fhir_version,
            stage=stage,
        )

    @staticmethod
    def _staging_key(submission: str) -> str:
        return f"sftp/{dt.datetime.now(dt.UTC):%Y-%m-%d}/{submission}"

    async def rename_ingest(
        self, session: Session, old: Path, new: Path, new_virtual: str, *, replace: bool
    ) -> None:
        """A temp-named upload renamed to its final name: publish it, then rename."""
        if self.is_busy(old):
            raise UploadRefused("this file is still being uploaded")
        started = time.perf_counter()
        submission = str(uuidlib.uuid4())
        intake = await intake_from_file(old, self._builder(new_virtual, submission))
        if intake.size == 0:
            await intake.discard()
        else:
            try:
                await self.publish(
                    intake, session, old, new_virtual, submission, started, keep=False
                )
            except BaseException:
                await intake.discard()
                raise
        if replace:
            self.replace(old, new)
        else:
            os.link(old, new)  # fails when ``new`` exists, like SFTP v3 rename
            os.unlink(old)
        session.temp_files.discard(old)
        session.published.add(new)

    # -- publishing -----------------------------------------------------------------------

    async def publish(
        self,
        intake: Intake,
        session: Session,
        local: Path,
        virtual: str,
        submission: str,
        started: float,
        *,
        keep: bool = True,
    ) -> None:
        """Publish; with ``keep`` a failed publish is journaled (durably) for retry. The
        answer is counted as from ``started`` (``time.perf_counter()``).

        No marker is written on the way: until the close is answered nothing was promised,
        and a crash meanwhile leaves an unjournaled spool copy that the next start removes
        (the client saw no success and sends the file again). So the common case costs no
        journal file operations, only the bus commit.
        """
        kind = intake.kind
        label = format_label(kind.format, kind.content_type)
        event = IngestEvent(
            uuid=submission,
            source="sftp",
            format=kind.format,
            content_type=kind.content_type,
            version=kind.version,
            subtype=kind.subtype,
            sha256=intake.sha256,
            size=intake.size,
            received_at=dt.datetime.now(dt.UTC),
            client=session.username,
            payload=intake.payload,
            staged_path=intake.staged.url if intake.staged else None,
            source_metadata={
                "username": session.username,
                "path": virtual,
                "file_name": posixpath.basename(virtual),
                "size": intake.size,
                "remote_addr": session.remote_addr,
                "client_version": session.client_version,
                "format_metadata": kind.metadata,
            },
        )
        self._pending[local] = submission
        self._publishing.add(submission)
        try:
            await self.bus.publish(self.config.topic, intake.sha256.encode(), encode_event(event))
        except BusUnavailable as exc:
            if keep:
                marker = Marker(spool=str(local.relative_to(self.config.root)), event=event)
                spool_file = local if intake.staged is None else None
                await asyncio.to_thread(self.journal.keep, marker, spool_file)
            log.warning(
                "sftp upload not published, kept for retry" if keep else "sftp rename refused",
                user=session.username,
                path=virtual,
                uuid=submission,
                error=str(exc),
            )
            if not keep:
                self._pending.pop(local, None)
            self.metrics.answered(label, UNAVAILABLE, started)
            raise
        finally:
            self._publishing.discard(submission)
        self._pending.pop(local, None)
        self.metrics.answered(label, ACCEPTED, started, intake.size)
        log.info(
            "sftp upload accepted",
            uuid=submission,
            user=session.username,
            file=posixpath.basename(virtual),
            path=virtual,  # metadata, not payload: how a partner's file is found again
            format=kind.format,
            content_type=kind.content_type,
            subtype=kind.subtype,
            size=intake.size,
            staged=intake.staged is not None,
        )

    async def _drop_marker(self, submission: str, reason: str) -> None:
        for marker in await asyncio.to_thread(self.journal.pending):
            if marker.event.uuid == submission:
                await self._remove_staged(marker.event)
        await asyncio.to_thread(self.journal.remove, submission)
        log.info("sftp pending upload dropped", uuid=submission, reason=reason)

    async def _remove_staged(self, event: IngestEvent) -> None:
        if not event.staged_path:
            return
        try:
            key = self.staging.key_for(event.staged_path)
            await self.staging.remove(key, timeout=self.staging.deadline)
        except (StorageUnavailable, ValueError) as exc:
            # A removal given up goes on on its thread; a failed one leaves an unread blob.
            log.warning("sftp staged copy not removed", uuid=event.uuid, error=str(exc))

    async def open(self) -> None:
        """Make the spare spool files (removing any a crash left)."""
        await self.spares.open()

    async def close(self) -> None:
        """Remove the spare spool files (idempotent)."""
        await self.spares.close()

    # -- sessions, recovery ---------------------------------------------------------------

    async def end_session(self, session: Session) -> None:
        """Remove the session's published copies and its never-renamed temp files."""
        for local in session.published | session.temp_files:
            if not self.is_busy(local):
                self.unlink(local)
        session.published.clear()
        session.temp_files.clear()

    async def recover(self, *, startup: bool) -> int:
        """Publish journaled uploads; at startup also remove every unjournaled spool file."""
        self.journal.open()
        self.homes.mkdir(parents=True, exist_ok=True)
        if startup:
            await asyncio.to_thread(self.journal.remove_unfinished)
        published = 0
        markers = [
            m
            for m in await asyncio.to_thread(self.journal.pending)
            if m.event.uuid not in self._publishing
        ]
        for marker in markers:
            self._pending.setdefault(self.config.root / marker.spool, marker.event.uuid)
        for marker in markers:
            local = self.config.root / marker.spool
            if local in self._writing:
                continue
            try:
                if await self._replay(marker, local):
                    published += 1
            except (BusUnavailable, StorageUnavailable) as exc:
                self._pending[local] = marker.event.uuid
                log.warning(
                    "sftp retry failed",
                    uuid=marker.event.uuid,
                    user=marker.event.client,
                    error=str(exc),
                )
                break
        if startup:
            await asyncio.to_thread(self._remove_unjournaled)
            self.files.forget()
        return published

    async def _replay(self, marker: Marker, local: Path) -> bool:
        event: IngestEvent | None = marker.event
        assert event is not None
        if not await self._still_staged(event):
            event = await self._reload(event, local)
            if event is None:
                self._pending.pop(local, None)
                await asyncio.to_thread(self.journal.remove, marker.event.uuid)
                return False
        self._pending[local] = event.uuid
        await self.bus.publish(self.config.topic, event.sha256.encode(), encode_event(event))
        self._pending.pop(local, None)
        await asyncio.to_thread(self.journal.remove, event.uuid)
        if local not in self._writing and await asyncio.to_thread(_unlink, local):
            self.files.removed(local)
        log.info(
            "sftp upload published after retry",
            uuid=event.uuid,
            user=event.client,
            path=event.source_metadata.get("path"),
        )
        return True

    async def _still_staged(self, event: IngestEvent) -> bool:
        """Whether the kept upload's staged blob is in this staging store and still there
        (else its payload is taken again from the spool copy)."""
        if event.staged_path is None:
            return False
        try:
            key = self.staging.key_for(event.staged_path)
        except ValueError:  # staged under another staging URL, changed since
            log.warning(
                "sftp kept upload staged elsewhere; staged again from its spool copy",
                uuid=event.uuid,
                staged_path=event.staged_path,
            )
            return False
        return bool(await self.staging.exists(key, timeout=self.staging.deadline))

    async def _reload(self, event: IngestEvent, local: Path) -> IngestEvent | None:
        """Rebuild the event's payload (inline or staged) from the spool copy."""
        if not await asyncio.to_thread(local.is_file):
            log.error("sftp upload lost before publish: spool copy missing", uuid=event.uuid)
            return None
        name = str(event.source_metadata.get("file_name") or local.name)
        intake = await intake_from_file(local, self._builder(name, event.uuid))
        if intake.sha256 != event.sha256:
            await intake.discard()
            log.error("sftp spool copy changed before publish; dropped", uuid=event.uuid)
            return None
        return msgspec.structs.replace(
            event,
            payload=intake.payload,
            staged_path=intake.staged.url if intake.staged else None,
        )

    def _remove_unjournaled(self) -> None:
        """Remove spool files no journal marker points at, one user's home at a time.

        A home that cannot be cleaned (whatever its user made of it) is moved aside to
        ``<spool>/quarantine/`` and logged, so one user's data never stops the server.
        """
        removed = 0
        for home in sorted(p for p in self.homes.iterdir() if p.is_dir()):
            try:
                for path in files_under(home):
                    if path not in self._pending:
                        path.unlink(missing_ok=True)
                        removed += 1
            except OSError as exc:
                self._quarantine(home, exc)
        if removed:
            log.info("sftp spool cleaned at start", removed=removed)

    def _quarantine(self, home: Path, exc: OSError) -> None:
        target = self.config.root / "quarantine" / f"{home.name}-{int(time.time())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(home, target)
        self.files.forget(home.name)
        log.error(
            "sftp home could not be cleaned at start; moved to quarantine",
            user=home.name,
            quarantine=str(target),
            error=type(exc).__name__,
        )

    def unlink(self, local: Path) -> None:
        """Remove the file ``local`` of a user's home, if it is there."""
        if _unlink(local):
            self.files.removed(local)

    def replace(self, old: Path, new: Path) -> None:
        """``os.replace`` within users' homes, counting the file it replaces."""
        replaced = _is_file(new)
        os.replace(old, new)
        if replaced:
            self.files.removed(new)

    def busy_under(self, directory: Path) -> bool:
        """True when a file below ``directory`` is being written or waits for its publish."""
        busy = (*self._writing, *self._pending, *self._opening)
        return any(directory in path.parents for path in busy)

    async def replay(self, stop: asyncio.Event, *, startup: bool) -> int | None:
        """``recover``, cancelled if ``stop`` is set first (then None).

        A stop does not wait for what a replay waits on (the bus, a staging store that hangs
        until its deadline). Nothing is lost by the cancel: a marker stays until its upload's
        publish has succeeded, and an upload published again carries the same submission
        uuid, which the consumers record once.
        """
        if stop.is_set():
            return None
        recovering = asyncio.create_task(self.recover(startup=startup), name="sftp-replay")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({recovering, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not recovering.done():
                recovering.cancel()
                await asyncio.wait({recovering})
        if recovering.cancelled():
            log.info("sftp replay stopped; kept uploads are published at the next start")
            return None
        return recovering.result()

    async def run_retries(self, stop: asyncio.Event) -> None:
        """Retry journaled uploads every ``retry_seconds`` until ``stop``."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.retry_seconds)
            if stop.is_set() or not self._pending:
                continue
            try:
                await self.replay(stop, startup=False)
            except Exception as exc:
                log.error("sftp retry loop error", error=f"{type(exc).__name__}: {exc}")


def open_new(local: Path, flags: int) -> int | None:
    """``open_fresh`` when it copies nothing (no such file, or a truncating or exclusive
    open); None when the open must work on a copy of the existing file."""
    if flags & (os.O_TRUNC | os.O_EXCL) or not os.path.lexists(local):
        return open_fresh(local, flags)
    return None


def open_fresh(local: Path, flags: int) -> int:
    """Open ``local`` for writing on a new inode, never on an existing one.

    A published spool copy is a hard link of its staged blob (and so of the stored object):
    writing into it in place would change stored bytes. A truncating open therefore
    replaces the file; a non-truncating one (resume, update in place) works on a copy.
    """
    flags |= os.O_NOFOLLOW
    try:
        st = os.lstat(local)
    except FileNotFoundError:
        return os.open(local, flags, 0o640)
    if not stat.S_ISREG(st.st_mode) or flags & os.O_EXCL:
        return os.open(local, flags, 0o640)  # fails as the client expects
    if flags & os.O_TRUNC:
        os.unlink(local)
        return os.open(local, (flags | os.O_CREAT | os.O_EXCL) & ~os.O_TRUNC, 0o640)
    # A short name: the file's own may already be as long as a name can be.
    copy = local.with_name(f".{uuidlib.uuid4().hex}.copy")
    # Made with the spool's mode first: copyfile keeps it (it would create 0666 less umask).
    os.close(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640))
    shutil.copyfile(local, copy)
    os.replace(copy, local)
    return os.open(local, flags & ~os.O_CREAT, 0o640)


def _unlink(local: Path) -> bool:
    try:
        os.unlink(local)
    except FileNotFoundError:
        return False
    return True


def _lexists(local: Path) -> bool:
    return os.path.lexists(local)


def _is_file(local: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(local).st_mode)
    except FileNotFoundError:
        return False


def _fsync_with_directory(fd: int, local: Path) -> None:
    os.fsync(fd)
    fsync_directory(local.parent)


def _fsync_and_link(fd: int, local: Path, target: Path) -> None:
    os.fsync(fd)
    make_directories(target.parent)
    os.link(local, target)
    fsync_directory(target.parent)
