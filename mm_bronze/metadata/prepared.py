"""A hot statement run on libpq directly: prepared once per connection, sent without psycopg's
per-call work.

psycopg's ``execute`` builds a cursor, converts the query and adapts each parameter at every
call. For the statement a lone sender pays once per message (the bus's single-row publish)
that is most of the client's cost: measured on the embedded PostgreSQL, a one-row ``INSERT``
of 3 KB took 170 to 180 µs of the caller's CPU through ``AsyncConnection.execute`` against 90
to 100 µs prepared and sent through psycopg's libpq wrapper (``psycopg.pq``) as here, and its
answer came 100 µs sooner.

A ``Statement`` is written with psycopg's placeholders, ``%s`` for a parameter sent as text
and ``%b`` for one sent in binary; its parameters are bytes, text (encoded in the
connection's client encoding), None for NULL, or an ``Array`` of bytes or text for a ``%b``
parameter cast to an array type (``%b::bytea[]``), sent in PostgreSQL's binary array format.
``execute`` returns once the server answered ``ReadyForQuery``: on an autocommit connection
the statement's implicit transaction has then committed (and, with ``synchronous_commit``
on, been flushed), as after psycopg's ``execute``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection, errors, pq

_PLACEHOLDER = re.compile(r"%([sb])")
_FORMATS = {"s": pq.Format.TEXT, "b": pq.Format.BINARY}

# Element type OIDs of the arrays sent (``pg_type``), whose binary form is the value's bytes.
BYTEA_OID, TEXT_OID, UUID_OID = 17, 25, 2950
_ARRAY_HEAD = struct.Struct("!iiiii")  # dimensions, has nulls, element type, length, lower bound
_EMPTY_HEAD = struct.Struct("!iii")  # no dimensions: dimensions, has nulls, element type
_LENGTH = struct.Struct("!i")


@dataclass(frozen=True)
class Array:
    """A one-dimensional array parameter without NULLs: ``items`` are the elements' binary
    forms (a ``bytea``'s bytes, a ``uuid``'s 16 bytes) or text, of element type ``oid``."""

    oid: int
    items: Sequence[bytes | str]

    def encode(self, encoding: str) -> bytes:
        items = [i.encode(encoding) if isinstance(i, str) else i for i in self.items]
        if not items:  # no dimensions at all, as PostgreSQL writes an empty array
            return _EMPTY_HEAD.pack(0, 0, self.oid)
        head = _ARRAY_HEAD.pack(1, 0, self.oid, len(items), 1)
        pack = _LENGTH.pack
        return head + b"".join([part for item in items for part in (pack(len(item)), item)])


@dataclass(frozen=True)
class Statement:
    """SQL with libpq's numbered parameters, the format of each, and a name for the server."""

    name: bytes
    sql: bytes
    formats: tuple[pq.Format, ...]

    @classmethod
    def of(cls, query: str) -> Statement:
        """``query``'s ``%s`` and ``%b`` placeholders numbered ``$1``, ``$2``… in order; its
        name is derived from its text, so that the same name always means the same SQL."""
        formats: list[pq.Format] = []

        def number(match: re.Match[str]) -> str:
            formats.append(_FORMATS[match.group(1)])
            return f"${len(formats)}"

        sql = _PLACEHOLDER.sub(number, query).encode()
        name = b"mm_bronze_" + hashlib.sha256(sql).hexdigest()[:20].encode()
        return cls(name, sql, tuple(formats))


async def prepare(conn: AsyncConnection, statement: Statement) -> None:
    """Prepare ``statement`` on ``conn``; one prepared there already (same name, same SQL:
    the connection was held before) is kept."""
    pgconn = conn.pgconn
    pgconn.send_prepare(statement.name, statement.sql)
    try:
        await _answer(pgconn)
    except errors.DuplicatePreparedStatement:
        pass


Param = bytes | str | Array | None


async def execute(conn: AsyncConnection, statement: Statement, params: Sequence[Param]) -> None:
    """Run ``statement``, prepared on ``conn`` already, with ``params``; raise what psycopg
    would (a ``psycopg.Error``) when the server or the connection fails."""
    pgconn = conn.pgconn
    values: list[bytes | None] = []
    encoding = ""
    for value in params:
        if value is None or isinstance(value, bytes):
            values.append(value)
        else:
            encoding = encoding or conn.info.encoding
            values.append(value.encode(encoding))
    pgconn.send_query_prepared(statement.name, values, statement.formats)
    await _answer(pgconn)


async def _answer(pgconn: pq.abc.PGconn) -> None:
    """Send what is queued, then read every result up to ``ReadyForQuery``; raise the
    first error the server reported."""
    loop = asyncio.get_running_loop()
    fd = pgconn.socket
    while pgconn.flush():  # the connection is non-blocking: the socket took only part
        await _ready(loop, fd, loop.add_writer, loop.remove_writer)
    failed: pq.abc.PGresult | None = None
    while True:
        while pgconn.is_busy():
            await _ready(loop, fd, loop.add_reader, loop.remove_reader)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            break
        if result.status == pq.ExecStatus.FATAL_ERROR and failed is None:
            failed = result
    if failed is not None:
        raise _error(failed, pgconn)


async def _ready(
    loop: asyncio.AbstractEventLoop,
    fd: int,
    add: Callable[..., None],
    remove: Callable[[int], object],
) -> None:
    """Wait until ``fd`` is readable (``add_reader``) or writable (``add_writer``)."""
    waiter: asyncio.Future[None] = loop.create_future()
    add(fd, _settle, waiter)
    try:
        await waiter
    finally:
        remove(fd)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _error(result: pq.abc.PGresult, pgconn: pq.abc.PGconn) -> errors.Error:
    """The psycopg exception of ``result``'s SQLSTATE, with the server's message."""
    sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
    message = (result.error_message or pgconn.error_message).decode("utf-8", "replace").strip()
    try:
        cls = errors.lookup(sqlstate)
    except KeyError:
        cls = errors.DatabaseError
    return cls(message)
