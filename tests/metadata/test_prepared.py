"""Statements run on libpq directly (``metadata.prepared``), on a real PostgreSQL: parameters
as text, binary, NULL and binary arrays; committed when ``execute`` returns; the server's
errors raised as psycopg's; prepared again on whatever connection a held connection takes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import pq

from mm_bronze.metadata import Database
from mm_bronze.metadata import prepared as lean
from mm_bronze.metadata.held_connection import HeldConnection
from mm_bronze.metadata.prepared import BYTEA_OID, TEXT_OID, UUID_OID, Array, Statement

TABLE = "CREATE TABLE rows (id INT PRIMARY KEY, label TEXT, data BYTEA)"
INSERT = Statement.of("INSERT INTO rows (id, label, data) VALUES (%s, %s, %b)")


def test_placeholders_are_numbered_with_their_formats() -> None:
    statement = Statement.of("SELECT %s, %b, %s")
    assert statement.sql == b"SELECT $1, $2, $3"
    assert statement.formats == (pq.Format.TEXT, pq.Format.BINARY, pq.Format.TEXT)
    # The SQL names it (formats are the client's, given with each execution).
    assert statement.name == Statement.of("SELECT %s, %b, %b").name
    assert statement.name != Statement.of("SELECT %s, %b, %s, 1").name
    assert statement.name.startswith(b"mm_bronze_")


async def rows(dsn: str) -> list[tuple[int, str | None, bytes | None]]:
    """What another connection sees: only what was committed."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT id, label, data FROM rows ORDER BY id")
        return [(int(i), label, data and bytes(data)) async for i, label, data in cur]


async def test_parameters_arrive_as_sent_and_are_committed_on_return(dsn: str) -> None:
    big = bytes(range(256)) * 8192  # 2 MiB: more than the socket takes in one write
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(TABLE)
        await lean.prepare(conn, INSERT)
        await lean.execute(conn, INSERT, ("1", "Zoë ✓", b"\x00\xff\x00"))
        await lean.execute(conn, INSERT, (b"2", None, big))
        await lean.execute(conn, INSERT, ("3", "", None))
        assert await rows(dsn) == [(1, "Zoë ✓", b"\x00\xff\x00"), (2, None, big), (3, "", None)]


async def test_the_servers_error_is_psycopgs_and_the_connection_goes_on(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(TABLE)
        await lean.prepare(conn, INSERT)
        await lean.execute(conn, INSERT, ("1", "a", b"a"))
        with pytest.raises(psycopg.errors.UniqueViolation, match="rows_pkey"):
            await lean.execute(conn, INSERT, ("1", "b", b"b"))
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            await lean.execute(conn, INSERT, ("one", "c", b"c"))
        await lean.execute(conn, INSERT, ("2", "d", b"d"))
        assert [row[0] for row in await rows(dsn)] == [1, 2]
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            await lean.execute(conn, Statement.of("SELECT %s"), ("1",))  # never prepared


async def test_preparing_twice_on_one_connection_keeps_the_statement(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(TABLE)
        await lean.prepare(conn, INSERT)
        await lean.prepare(conn, INSERT)  # a connection held before, taken again
        await lean.execute(conn, INSERT, ("1", "a", b"a"))
        assert len(await rows(dsn)) == 1


async def test_a_held_connection_prepares_on_each_connection_it_takes(
    dsn: str, tmp_path: Path
) -> None:
    async with Database(dsn, tmp_path, min_size=2, max_size=2) as db:
        async with db.pool.connection() as conn:
            await conn.execute(TABLE)
        held = HeldConnection(db.pool, timeout=5)
        await held.run(INSERT, ("1", "a", b"a"))
        row = await (await held.execute("SELECT pg_backend_pid()")).fetchone()
        assert row is not None
        async with db.pool.connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        with pytest.raises(psycopg.OperationalError):
            await held.run(INSERT, ("2", "b", b"b"))
        await held.run(INSERT, ("3", "c", b"c"))  # a fresh connection: prepared there first
        await held.run(INSERT, ("4", "d", b"d"))
        assert [r[0] for r in await rows(dsn)] == [1, 3, 4]
        await held.close()
        assert db.pool.get_stats()["pool_available"] == 2


async def test_a_cancelled_run_gives_the_connection_back(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path, min_size=1, max_size=1) as db:
        held = HeldConnection(db.pool, timeout=5)
        sleep = Statement.of("SELECT pg_sleep(%s)")
        await held.run(sleep, ("0",))
        statement = asyncio.create_task(held.run(sleep, ("30",)))
        await asyncio.sleep(0.5)
        statement.cancel()
        with pytest.raises(asyncio.CancelledError):
            await statement
        # The pool closed the busy connection and opened another: prepared there anew.
        await asyncio.wait_for(held.run(sleep, ("0",)), 10)
        await held.close()
        assert db.pool.get_stats()["pool_available"] == 1


async def test_arrays_arrive_element_for_element(dsn: str) -> None:
    many = Statement.of(
        "INSERT INTO many (label, data, submission)"
        " SELECT * FROM unnest(%b::text[], %b::bytea[], %b::uuid[])"
    )
    ids = [uuid.uuid4() for _ in range(3)]
    labels = ["a", "", "Zoë ✓"]
    data = [b"\x00", b"", bytes(range(256)) * 300]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("CREATE TABLE many (label TEXT, data BYTEA, submission UUID)")
        await lean.prepare(conn, many)
        arrays = (Array(TEXT_OID, labels), Array(BYTEA_OID, data))
        await lean.execute(conn, many, (*arrays, Array(UUID_OID, [i.bytes for i in ids])))
        await lean.execute(
            conn, many, tuple(Array(oid, []) for oid in (TEXT_OID, BYTEA_OID, UUID_OID))
        )
        cur = await conn.execute("SELECT label, data, submission FROM many")
        assert [(label, bytes(d), s) async for label, d, s in cur] == list(
            zip(labels, data, ids, strict=True)
        )
