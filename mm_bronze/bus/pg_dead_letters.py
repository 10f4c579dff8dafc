"""Dead letters of the embedded queue: rows of ``bus.dead_letters``, id = the row id.

A replay moves the row back to ``bus.messages`` (attempts reset) in one transaction, and
records the submission as accepted again in its status history; the row is gone afterwards,
so a second replay of the same id finds nothing. A purge deletes the row, then removes the
event's staged payload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze.bus.dead_letters import (
    DeadLetter,
    DeadLetterNotFound,
    InvalidDeadLetterId,
    describe,
    remove_staged,
    submission_uuid,
)
from mm_bronze.errors import BusUnavailable

if TYPE_CHECKING:
    from mm_bronze.storage.objects import ObjectStore

Pool = AsyncConnectionPool[AsyncConnection]

_COLUMNS = "id, topic, reason, attempts, dead_lettered_at, value"

# Moves the chosen rows back onto the queue, returning what the status history needs.
_MOVE = """
WITH moved AS (
    DELETE FROM bus.dead_letters WHERE {where} RETURNING id, topic, key, value, enqueued_at
), queued AS (
    INSERT INTO bus.messages (topic, key, value, enqueued_at)
    SELECT topic, key, value, enqueued_at FROM moved ORDER BY id
)
SELECT {columns} FROM moved ORDER BY id
"""
_MOVED_COLUMNS = "id, topic, '' AS reason, 0 AS attempts, NULL::timestamptz, value"


class PgDeadLetters:
    """``DeadLetters`` on ``bus.dead_letters``; shares the process's pool."""

    def __init__(self, pool: Pool, staging: ObjectStore) -> None:
        self._pool = pool
        self._staging = staging

    async def pending(
        self, *, topic: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[DeadLetter]:
        start = _row_id(after) if after is not None else 0
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM bus.dead_letters"
            " WHERE id > %s AND (%s::text IS NULL OR topic = %s) ORDER BY id LIMIT %s",
            (start, topic, topic, limit),
        )
        return [_letter(row) for row in rows]

    def canonical_id(self, id: str) -> str:
        return str(_row_id(id))

    async def get(self, id: str) -> DeadLetter:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM bus.dead_letters WHERE id = %s", (_row_id(id),)
        )
        if not rows:
            raise DeadLetterNotFound(f"no dead letter {id}")
        return _letter(rows[0])

    async def replay(self, id: str) -> DeadLetter:
        letter = await self.get(id)
        if not await self._move("id = %s", (_row_id(id),)):
            raise DeadLetterNotFound(f"no dead letter {id}")  # replayed or purged meanwhile
        return letter

    async def replay_all(self, topic: str | None = None) -> int:
        if topic is None:
            return await self._move("true", ())
        return await self._move("topic = %s", (topic,))

    async def purge(self, id: str) -> None:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "DELETE FROM bus.dead_letters WHERE id = %s RETURNING value", (_row_id(id),)
                )
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise BusUnavailable(f"dead letters unreachable: {type(exc).__name__}") from exc
        if row is None:
            raise DeadLetterNotFound(f"no dead letter {id}")
        await remove_staged(self._staging, bytes(row[0]), id)

    async def _move(self, where: str, params: tuple[Any, ...]) -> int:
        sql = _MOVE.format(where=where, columns=_MOVED_COLUMNS)
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(sql, params)
                moved = await cur.fetchall()
                accepted = [
                    (uuid, "accepted", f"replayed from dead letter {row[0]}")
                    for row in moved
                    if (uuid := submission_uuid(bytes(row[5]))) is not None
                ]
                if accepted:
                    async with conn.cursor() as log:
                        await log.executemany(
                            "INSERT INTO ingestion.ingestion_log (object_id, status, message)"
                            " VALUES (%s, %s, %s)",
                            accepted,
                        )
        except psycopg.Error as exc:
            raise BusUnavailable(f"dead letters unreachable: {type(exc).__name__}") from exc
        return len(moved)

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql, params)
                return await cur.fetchall()
        except psycopg.Error as exc:
            raise BusUnavailable(f"dead letters unreachable: {type(exc).__name__}") from exc

    async def close(self) -> None:
        return None


def _row_id(id: str) -> int:
    if not (id.isascii() and id.isdigit()) or len(id) > 18:
        raise InvalidDeadLetterId(f"{id!r} is not a dead letter id (a number)")
    return int(id)


def _letter(row: tuple[Any, ...]) -> DeadLetter:
    id, topic, reason, attempts, at, value = row
    return describe(str(id), topic, reason, attempts, at, bytes(value))
