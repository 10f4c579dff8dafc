"""Who first sent a stored object: the client of the submission that created it."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

Pool = AsyncConnectionPool[AsyncConnection]


async def first_client(pool: Pool, object_id: str) -> str | None:
    """The client of submission ``object_id`` (an object's first submission), or None."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT client FROM ingestion.submissions WHERE submission_id = %s", (object_id,)
        )
        row = await cur.fetchone()
        return row[0] if row else None
