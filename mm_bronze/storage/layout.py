"""Where an object lies: the key template with a Hive-style date partition and the SHA-256."""

from __future__ import annotations

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
    day = event.received_at.date()
    return template.format(
        source=event.source,
        format=event.format,
        content_type=event.content_type,
        version=event.version,
        subtype=event.subtype,
        date=day.isoformat(),
        year=f"{day.year:04d}",
        month=f"{day.month:02d}",
        day=f"{day.day:02d}",
        sha256=event.sha256,
        ext=EXTENSIONS.get(event.content_type, ""),
    )
