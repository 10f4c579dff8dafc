"""Wire and domain types shared by every layer."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

# What a consumer will key a record and an object by: a bus message holding anything else is
# undecodable (a dead letter), never a failed INSERT or a storage key outside the layout.
Uuid = Annotated[
    str, msgspec.Meta(pattern="^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class IngestEvent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One accepted submission, as it travels on the bus (msgpack-encoded).

    Exactly one of ``payload`` (inline bytes) and ``staged_path`` (claim check: the
    storage URL of the staged blob) is set.
    """

    uuid: Uuid
    source: str  # "api", "sftp", "mllp"
    format: str
    content_type: str
    version: str
    subtype: str
    sha256: Sha256  # hex digest of the whole payload
    size: int
    received_at: dt.datetime
    client: str | None = None
    payload: bytes | None = None
    staged_path: str | None = None
    source_metadata: dict[str, Any] = msgspec.field(default_factory=dict)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(IngestEvent)


def encode_event(event: IngestEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> IngestEvent:
    """Decode a bus message; raises ``msgspec.DecodeError`` / ``ValidationError``."""
    return _decoder.decode(data)


class SubmissionStatus(msgspec.Struct, kw_only=True):
    """What ``GET /ingest/{uuid}`` and ``mm-bronze status`` report."""

    uuid: str
    status: str  # accepted | stored | duplicate | failed
    sha256: str | None = None
    size: int | None = None
    storage_path: str | None = None
    duplicate_of: str | None = None
    source: str | None = None
    client: str | None = None
    format: str | None = None
    content_type: str | None = None
    version: str | None = None
    subtype: str | None = None
    received_at: dt.datetime | None = None
    message: str | None = None
    compression: str | None = None  # of the stored object: none | gzip | zstd


class StoredEvent(msgspec.Struct, kw_only=True):
    """What the consumers announce on Kafka's stored topic (JSON) once a submission is
    recorded: where its payload lies and who sent it. ``duplicate_of`` names the first
    submission of the same bytes, or is None when this one stored them."""

    uuid: str
    sha256: str
    storage_path: str
    format: str
    content_type: str
    version: str
    subtype: str
    client: str | None
    source: str
    duplicate_of: str | None
    received_at: dt.datetime
    stored_at: dt.datetime
