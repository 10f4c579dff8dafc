"""Finding recorded submissions: filters, a seq cursor, pages in either order.

A submission is listed once it is recorded (status ``stored`` or ``duplicate``). One that
failed before it was recorded has no row here: its status is in the history
(``GET /ingest/{uuid}``). ``seq`` is the cursor: it grows in commit order (see
``metadata.feed``), so following ``after`` in ascending order misses nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

import msgspec
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

Pool = AsyncConnectionPool[AsyncConnection]
Order = Literal["asc", "desc"]

SOURCES = ("api", "sftp", "mllp")
STATUSES = ("stored", "duplicate")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# A format as submissions record it (``fhir``, ``hl7``, ``file``): the filter both the HTTP
# listing and ``submissions list`` accept.
FORMAT_NAME = re.compile(r"[A-Za-z0-9._+-]{1,64}")


class SubmissionQuery(msgspec.Struct, kw_only=True, frozen=True):
    """What to list. ``after``/``before`` are seq cursors (exclusive); ``after`` lists in
    ascending order, ``before`` in descending order; without either, ``order`` decides."""

    client: str | None = None
    source: str | None = None
    format: str | None = None
    status: str | None = None
    sha256: str | None = None
    since: dt.datetime | None = None  # received at or after
    until: dt.datetime | None = None  # received before
    sftp_user: str | None = None
    sftp_path: str | None = None
    after: int | None = None
    before: int | None = None
    order: Order = "desc"
    limit: int = DEFAULT_LIMIT


class SubmissionItem(msgspec.Struct, kw_only=True):
    """One recorded submission as listed by ``GET /submissions`` and the CLI."""

    seq: int
    uuid: str
    status: str  # stored | duplicate
    client: str | None
    source: str
    format: str | None
    content_type: str | None
    version: str | None
    subtype: str | None
    sha256: str
    size: int
    received_at: dt.datetime
    recorded_at: dt.datetime
    storage_path: str | None  # None: another client's object (a duplicate of its bytes)
    compression: str
    duplicate_of: str | None = None
    path: str | None = None  # SFTP: "username:/path/of/the/file"


class Page(msgspec.Struct):
    """A page of submissions. ``next`` is the cursor for the next page: ``after=next`` in
    ascending order (always set: the feed continues there; past rows that did not match
    when the page is not full), ``before=next`` in descending order (None on the last
    page)."""

    items: list[SubmissionItem]
    next: int | None


_SELECT = """
SELECT s.seq, s.submission_id, s.is_duplicate, s.client, s.ingestion_source, s.format,
       s.content_type, s.data_version, s.subtype, r.fingerprint, s.payload_size, s.received_at,
       s.recorded_at, r.storage_path, r.compression, s.object_id, f.client,
       s.source_metadata ->> 'username', s.source_metadata ->> 'path'
FROM ingestion.submissions s
JOIN ingestion.raw_ingestion r ON r.object_id = s.object_id
LEFT JOIN ingestion.submissions f ON f.submission_id = s.object_id
"""


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 date or date-time, UTC when it has no offset; raises ``ValueError``."""
    # A "+" left unencoded in a query string arrives as a space: "...T10:00:00 01:00".
    if "T" in text and " " in text:
        text = text.replace(" ", "+")
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("expected an ISO 8601 time, e.g. 2026-12-01T10:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_sftp_path(text: str) -> tuple[str, str]:
    """``user:/path`` → (user, path); raises ``ValueError``."""
    user, sep, path = text.partition(":")
    if not sep or not user or not path.startswith("/"):
        raise ValueError("expected USER:/PATH, e.g. lab1:/results/2026-12-01.hl7")
    return user, path


def order_of(query: SubmissionQuery) -> Order:
    if query.after is not None:
        return "asc"
    if query.before is not None:
        return "desc"
    return query.order


async def list_submissions(pool: Pool, query: SubmissionQuery, *, owner: str | None) -> Page:
    """One page of submissions matching ``query``; only ``owner``'s unless None (all).

    ``duplicate_of`` is shown only when ``owner`` is None or sent the first copy too.
    """
    where, params = _conditions(query, owner)
    order = order_of(query)
    if order == "asc":
        where.append("s.seq > %s")
        params.append(query.after or 0)
    elif query.before is not None:
        where.append("s.seq < %s")
        params.append(query.before)
    sql = (
        _SELECT
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY s.seq {order.upper()} LIMIT %s"
    )
    async with pool.connection() as conn, conn.transaction():
        # One snapshot for the page and the highest seq, so the cursor can skip rows that
        # do not match (another client's, filtered out) without skipping any that do.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur = await conn.execute(sql, [*params, query.limit + 1])
        rows = await cur.fetchall()
        more = len(rows) > query.limit
        items = [_item(row, owner) for row in rows[: query.limit]]
        if order == "desc":
            return Page(items, items[-1].seq if more else None)
        if more:
            return Page(items, items[-1].seq)
        cur = await conn.execute("SELECT COALESCE(max(seq), 0) FROM ingestion.submissions")
        row = await cur.fetchone()
        highest = row[0] if row else 0
        return Page(items, max(highest, query.after or 0))


def _conditions(query: SubmissionQuery, owner: str | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []

    def add(condition: str, value: Any) -> None:
        where.append(condition)
        params.append(value)

    if owner is not None:
        add("s.client = %s", owner)
    if query.client is not None:
        add("s.client = %s", query.client)
    if query.source is not None:
        add("s.ingestion_source = %s", query.source)
    if query.format is not None:
        add("s.format = %s", query.format)
    if query.status is not None:
        add("s.is_duplicate = %s", query.status == "duplicate")
    if query.sha256 is not None:
        add("r.fingerprint = %s", bytes.fromhex(query.sha256))
    if query.since is not None:
        add("s.received_at >= %s", query.since)
    if query.until is not None:
        add("s.received_at < %s", query.until)
    if query.sftp_path is not None:
        where.append("s.ingestion_source = 'sftp'")
        add("s.source_metadata ->> 'path' = %s", query.sftp_path)
    if query.sftp_user is not None:
        add("s.source_metadata ->> 'username' = %s", query.sftp_user)
    return where, params


def _item(row: tuple[Any, ...], owner: str | None) -> SubmissionItem:
    (
        seq,
        sid,
        dup,
        client,
        source,
        fmt,
        ctype,
        version,
        subtype,
        fp,
        size,
        received,
        recorded,
        storage_path,
        compression,
        object_id,
        first_client,
        username,
        path,
    ) = row
    shown = dup and (owner is None or first_client == owner)
    return SubmissionItem(
        seq=seq,
        uuid=str(sid),
        status="duplicate" if dup else "stored",
        client=client,
        source=source,
        format=fmt,
        content_type=ctype,
        version=version,
        subtype=subtype,
        sha256=bytes(fp).hex(),
        size=size,
        received_at=received,
        recorded_at=recorded,
        storage_path=storage_path if shown or not dup else None,
        compression=compression,
        duplicate_of=str(object_id) if shown else None,
        path=f"{username}:{path}" if source == "sftp" and path is not None else None,
    )
