"""Queries for payloads, submissions and their status history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze.metadata.feed import FEED_CHANNEL, FEED_LOCK
from mm_bronze.models import IngestEvent, SubmissionStatus

Pool = AsyncConnectionPool[AsyncConnection]

# A batch travels to the server in one COPY into a temporary table (one row per submission),
# then set-based statements move it into place: COPY costs far less client CPU per row than
# parameters. Created in every recording transaction (a no-op once it exists) so that a pooler
# handing out a different server connection per transaction is no problem.
_CREATE_BATCH = """
CREATE TEMP TABLE IF NOT EXISTS recording_batch (
    submission_id UUID, fingerprint TEXT, storage_path TEXT, ingestion_source TEXT,
    client TEXT, format TEXT, content_type TEXT, subtype TEXT, data_version TEXT,
    payload_size BIGINT, received_at TIMESTAMPTZ, source_metadata JSONB
) ON COMMIT DELETE ROWS
"""

_COPY_BATCH = """
COPY recording_batch (submission_id, fingerprint, storage_path, ingestion_source, client,
    format, content_type, subtype, data_version, payload_size, received_at, source_metadata)
FROM STDIN
"""

# The first submission of each payload (by received_at, then uuid) creates its object row,
# inserted in fingerprint order so concurrent consumers cannot deadlock on the unique index.
_INSERT_OBJECTS = """
INSERT INTO ingestion.raw_ingestion (object_id, ingestion_source, format, content_type, subtype,
    data_version, storage_path, fingerprint, object_size, received_at, source_metadata,
    compression)
SELECT submission_id, ingestion_source, format, content_type, subtype, data_version,
    storage_path, decode(fingerprint, 'hex'), payload_size, received_at, source_metadata, %s
FROM (
    SELECT DISTINCT ON (fingerprint) * FROM recording_batch
    ORDER BY fingerprint, received_at, submission_id
) AS first
ORDER BY fingerprint
ON CONFLICT (fingerprint) DO NOTHING
"""

# Submissions pointing at their objects (created now or before), and the "stored"/"duplicate"
# entry of each one recorded now (not of those recorded before: a redelivered event changes
# nothing); then each payload's object, for the caller. A new statement, so objects committed
# by another consumer while this one waited on the unique index are seen.
_INSERT_SUBMISSIONS = """
WITH recorded AS (
    INSERT INTO ingestion.submissions (submission_id, object_id, is_duplicate, ingestion_source,
        client, format, content_type, subtype, data_version, payload_size, received_at,
        source_metadata)
    SELECT b.submission_id, r.object_id, r.object_id <> b.submission_id, b.ingestion_source,
        b.client, b.format, b.content_type, b.subtype, b.data_version, b.payload_size,
        b.received_at, b.source_metadata
    FROM recording_batch b JOIN ingestion.raw_ingestion r
        ON r.fingerprint = decode(b.fingerprint, 'hex')
    ON CONFLICT (submission_id) DO NOTHING
    RETURNING submission_id, is_duplicate
), logged AS (
    INSERT INTO ingestion.ingestion_log (object_id, status)
    SELECT submission_id, CASE WHEN is_duplicate THEN 'duplicate' ELSE 'stored' END
    FROM recorded
)
SELECT encode(fingerprint, 'hex'), object_id::text, storage_path FROM ingestion.raw_ingestion
WHERE fingerprint IN (SELECT decode(fingerprint, 'hex') FROM recording_batch)
"""

# The "accepted" entry of one submission, and of many (binary arrays of uuids and of client
# names, "" for none), with the client that sent it: the buses write them when a door's
# event is durable, alone (Kafka) or in the publishing statement (queue).
ACCEPTED_ONE = """
INSERT INTO ingestion.ingestion_log (object_id, status, client) VALUES (%s, 'accepted', %s)
"""
ACCEPTED_MANY = """
INSERT INTO ingestion.ingestion_log (object_id, status, client)
SELECT submission, 'accepted', NULLIF(sender, '')
FROM unnest(%b::uuid[], %b::text[]) AS accepted (submission, sender)
"""

_INSERT_LOG = """
INSERT INTO ingestion.ingestion_log (object_id, status, message, client) VALUES (%s, %s, %s, %s)
"""

# The latest status entry of a submission, and its client where an entry names one.
_LAST_LOGGED = """
SELECT last.status, last.message,
    (SELECT client FROM ingestion.ingestion_log
     WHERE object_id = %(uuid)s AND client IS NOT NULL LIMIT 1)
FROM (
    SELECT status, message FROM ingestion.ingestion_log
    WHERE object_id = %(uuid)s ORDER BY log_id DESC LIMIT 1
) last
"""


class Recorded(msgspec.Struct, frozen=True):
    """The outcome of recording one submission."""

    uuid: str
    object_id: str
    storage_path: str
    duplicate: bool


async def stored_objects(pool: Pool, sha256s: Sequence[str]) -> dict[str, str]:
    """Map each already-stored SHA-256 (hex) among ``sha256s`` to its storage path."""
    if not sha256s:
        return {}
    async with pool.connection() as conn:
        # One text parameter decoded by the server: no per-element array dumping here.
        cur = await conn.execute(
            "SELECT encode(fingerprint, 'hex'), storage_path FROM ingestion.raw_ingestion"
            " WHERE fingerprint"
            " = ANY(ARRAY(SELECT decode(unnest(string_to_array(%s, ',')), 'hex')))",
            (",".join(sha256s),),
        )
        return dict(await cur.fetchall())


async def record_batch(
    pool: Pool, items: Sequence[tuple[IngestEvent, str]], *, compression: str = "none"
) -> list[Recorded]:
    """Record stored payloads and their submissions in one transaction; idempotent.

    ``items`` pairs each event with the storage path its payload was written to;
    ``compression`` is how newly stored objects were compressed (``none``, ``gzip``,
    ``zstd``); ``fingerprint`` and ``object_size`` are always of the original bytes. The first
    submission of a SHA-256 creates the ``raw_ingestion`` row; later ones (in this batch or
    before) are recorded as duplicates pointing at it. Redelivered events change nothing.
    """
    if not items:
        return []
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(_CREATE_BATCH)
        async with conn.cursor() as cur, cur.copy(_COPY_BATCH) as copy:
            for event, path in items:
                await copy.write_row(_batch_row(event, path))
        await conn.execute(_INSERT_OBJECTS, (compression,))
        # Held until commit: seqs are assigned in commit order (see metadata.feed). The
        # notification is delivered at commit.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(%s), pg_notify(%s, '')", (FEED_LOCK, FEED_CHANNEL)
        )
        cur = await conn.execute(_INSERT_SUBMISSIONS)
        objects = {sha: (object_id, path) for sha, object_id, path in await cur.fetchall()}
    out = []
    for event, _ in items:
        object_id, path = objects[event.sha256]
        out.append(Recorded(event.uuid, object_id, path, object_id != event.uuid))
    return out


async def log_status(
    pool: Pool, entries: Sequence[tuple[str, str, str | None, str | None]]
) -> None:
    """Append (uuid, status, message, client) entries to the status history."""
    if not entries:
        return
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.executemany(_INSERT_LOG, list(entries))


_STATUS = """
SELECT s.submission_id, s.is_duplicate, r.fingerprint, s.payload_size, r.storage_path, r.object_id,
       s.ingestion_source, s.client, s.format, s.content_type, s.data_version, s.subtype,
       s.received_at, r.compression
FROM ingestion.submissions s JOIN ingestion.raw_ingestion r USING (object_id)
WHERE s.submission_id = %s
"""


async def submission_status(pool: Pool, uuid: str) -> SubmissionStatus | None:
    """The current status of submission ``uuid``, or None when it is unknown."""
    async with pool.connection() as conn, conn.transaction():
        # One snapshot for both lookups: a submission recorded between them would
        # otherwise read as "stored" from the log, without its object.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur = await conn.execute(_STATUS, (uuid,))
        row = await cur.fetchone()
        if row is not None:
            (
                sid,
                dup,
                fp,
                size,
                path,
                oid,
                source,
                client,
                fmt,
                ctype,
                version,
                subtype,
                received,
                compression,
            ) = row
            return SubmissionStatus(
                uuid=str(sid),
                status="duplicate" if dup else "stored",
                sha256=bytes(fp).hex(),
                size=size,
                storage_path=path,
                duplicate_of=str(oid) if dup else None,
                source=source,
                client=client,
                format=fmt,
                content_type=ctype,
                version=version,
                subtype=subtype,
                received_at=received,
                compression=compression,
            )
        cur = await conn.execute(_LAST_LOGGED, {"uuid": uuid})
        last = await cur.fetchone()
        if last is None:
            return None
        status, message, client = last
        return SubmissionStatus(uuid=uuid, status=status, message=message, client=client)


def _batch_row(event: IngestEvent, path: str) -> tuple[Any, ...]:
    return (
        event.uuid,
        event.sha256,
        path,
        event.source,
        event.client,
        event.format,
        event.content_type,
        event.subtype,
        event.version,
        event.size,
        event.received_at,
        _metadata(event),
    )


def _metadata(event: IngestEvent) -> str:
    """The submission's metadata as JSON text (COPY's text format carries it as is).

    PostgreSQL's jsonb cannot hold a NUL character, which a sender can put in what the
    metadata quotes (an HL7 control id, a FHIR profile, an SFTP file name): one there failed
    the whole batch, every submission in it. It is recorded as U+FFFD; the stored bytes keep
    it."""
    metadata = {**event.source_metadata, "client": event.client}
    text = msgspec.json.encode(metadata).decode()
    if "\\u0000" in text:  # rare: only then is the metadata walked
        text = msgspec.json.encode(_without_nul(metadata)).decode()
    return text


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value
