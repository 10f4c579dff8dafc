"""The spool journal: one marker per upload that is complete but whose publish failed.

When the bus cannot take an upload, ``keep`` writes its marker and fsyncs it, its directory
and (for an inline payload) the spool file before the client's close fails, so the retry
loop, or the next start after any crash, publishes it under the same submission uuid (the
consumers record a uuid once). A successful publish writes no marker at all. Files in the
spool with no marker are partial uploads, copies already published, or uploads whose close
was never answered; the next start removes them.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import structlog

from mm_bronze.models import IngestEvent
from mm_bronze.storage.objects import fsync_directory

log = structlog.get_logger(__name__)


class Marker(msgspec.Struct, kw_only=True):
    """A complete upload waiting for its publish. ``spool`` is relative to the spool root."""

    spool: str
    event: IngestEvent  # payload is never kept here: inline bytes are re-read from ``spool``


class Journal:
    """Markers as files under ``directory`` (outside every user's jail)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, uuid: str) -> Path:
        return self.directory / f"{uuid}.marker"

    def keep(self, marker: Marker, spool_file: Path | None) -> None:
        """Write ``marker`` and make it durable, with ``spool_file`` when given."""
        self.write(marker)
        self.make_durable(marker.event.uuid, spool_file)

    def write(self, marker: Marker) -> None:
        """Write ``marker`` whole (temporary name, rename); not yet fsynced."""
        event = msgspec.structs.replace(marker.event, payload=None)
        data = msgspec.json.encode(Marker(spool=marker.spool, event=event))
        path = self._path(event.uuid)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def make_durable(self, uuid: str, spool_file: Path | None) -> None:
        """fsync the marker, its directory and (for inline payloads) the spool file."""
        for path in (self._path(uuid), spool_file):
            if path is not None:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_directory(self.directory)

    def remove(self, uuid: str) -> None:
        try:
            self._path(uuid).unlink()
        except FileNotFoundError:
            pass

    def pending(self) -> list[Marker]:
        """Every marker on disk, oldest first; unreadable ones are logged and set aside."""
        found = []
        for path in self.directory.glob("*.marker"):
            try:  # a marker may be removed meanwhile by a publish that just succeeded
                found.append((path.stat().st_mtime_ns, path, path.read_bytes()))
            except FileNotFoundError:
                continue
        markers = []
        for _mtime, path, data in sorted(found):
            try:
                markers.append(msgspec.json.decode(data, type=Marker))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.error("unreadable spool marker set aside", marker=path.name, error=str(exc))
                path.rename(path.with_suffix(".bad"))
        return markers

    def remove_unfinished(self) -> None:
        """Remove markers whose writing was cut short (only while nothing writes)."""
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
