"""Where an object lies: the key template with a Hive-style date partition and the SHA-256."""

from __future__ import annotations

import datetime as dt
import functools
import string

from mm_bronze.errors import ConfigError
from mm_bronze.models import IngestEvent

FIELDS = (
    "source",
    "format",
    "content_type",
    "version",
    "subtype",
    "date",
    "year",
    "month",
    "day",
    "sha256",
    "ext",
)
EXTENSIONS = {"json": ".json", "xml": ".xml", "ndjson": ".ndjson", "text": ".hl7", "er7": ".hl7"}


def check_template(template: str) -> None:
    """Raise ``ConfigError`` unless ``template`` uses known fields and the full SHA-256."""
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = names - set(FIELDS)
    if unknown:
        raise ConfigError(
            f"invalid setting: storage.path_template uses unknown field(s) {sorted(unknown)}; "
            f"known: {', '.join(FIELDS)}"
        )
    if "sha256" not in names:
        raise ConfigError("invalid setting: storage.path_template must contain {sha256}")


def object_key(template: str, event: IngestEvent) -> str:
    """The storage key (relative to the storage root) for ``event``'s payload."""
    parts = _key_parts(
        template,
        event.source,
        event.format,
        event.content_type,
        event.version,
        event.subtype,
        event.received_at.date(),
    )
    if parts is None:
        return _format(template, event.source, event.format, event.content_type, event.version,
                       event.subtype, event.received_at.date(), event.sha256)  # fmt: skip
    return event.sha256.join(parts)


# Every field but the SHA-256 repeats from object to object: the template is formatted once
# per combination, with a marker where the SHA-256 goes, and each key is a join.
_MARK = "\0sha256\0"


@functools.lru_cache(maxsize=1024)
def _key_parts(
    template: str,
    source: str,
    format: str,
    content_type: str,
    version: str,
    subtype: str,
    day: dt.date,
) -> tuple[str, ...] | None:
    """The key around its SHA-256(s), cached and so immutable; None when a field itself
    holds the marker."""
    formatted = _format(template, source, format, content_type, version, subtype, day, _MARK)
    parts = formatted.split(_MARK)
    if len(parts) != _format(template, "", "", "", "", "", day, _MARK).count(_MARK) + 1:
        return None
    return tuple(parts)


def _format(
    template: str,
    source: str,
    format: str,
    content_type: str,
    version: str,
    subtype: str,
    day: dt.date,
    sha256: str,
) -> str:
    return template.format(
        source=source,
        format=format,
        content_type=content_type,
        version=version,
        subtype=subtype,
        date=day.isoformat(),
        year=f"{day.year:04d}",
        month=f"{day.month:02d}",
        day=f"{day.day:02d}",
        sha256=sha256,
        ext=EXTENSIONS.get(content_type, ""),
    )
