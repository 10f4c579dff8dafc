"""A held connection: one server process for consecutive statements, and given back to the
pool (which replaces a broken one) when a statement fails, is cancelled, or at close."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from mm_bronze.metadata import Database
from mm_bronze.metadata.held_connection import HeldConnection


async def backend(held: HeldConnection) -> int:
    row = await (await held.execute("SELECT pg_backend_pid()")).fetchone()
    assert row is not None
    return int(row[0])


async def test_statements_share_one_server_process(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path, min_size=3, max_size=3) as db:
        held = HeldConnection(db.pool, timeout=5)
        assert len({await backend(held) for _ in range(6)}) == 1
        assert db.pool.get_stats()["pool_available"] == 2  # the pool hands out the others
        await held.close()
        assert db.pool.get_stats()["pool_available"] == 3


async def test_a_broken_connection_is_given_back_and_replaced(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path, min_size=2, max_size=2) as db:
        held = HeldConnection(db.pool, timeout=5)
        first = await backend(held)
        async with db.pool.connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (first,))
        with pytest.raises(psycopg.OperationalError):
            await backend(held)
        second = await backend(held)  # the next statement takes a working connection
        assert second != first
        await held.close()


async def test_a_cancelled_statement_gives_the_connection_back(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path, min_size=1, max_size=1) as db:
        held = HeldConnection(db.pool, timeout=5)
        await backend(held)
        taken = db.pool.get_stats()["requests_num"]
        statement = asyncio.create_task(held.execute("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.5)
        statement.cancel()
        with pytest.raises(asyncio.CancelledError):
            await statement
        # The pool had it back, checked it, and hands it out again: one more request.
        assert await backend(held) > 0
        assert db.pool.get_stats()["requests_num"] == taken + 1
        await held.close()
        assert db.pool.get_stats()["pool_available"] == 1
