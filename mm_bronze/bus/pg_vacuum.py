"""The embedded queue vacuums its own table as it is consumed.

Every claim and every acknowledgement leaves a dead row version in ``bus.messages``, and
each claim walks the dead index entries at the front of the queue until a vacuum removes
them. PostgreSQL's autovacuum visits a database about once a minute (``autovacuum_naptime``);
measured here with the door and the consumers as two processes, 111,000 dead versions had
piled up after 28 s without one, and a claim of 100 messages read 75,700 buffers (165 ms)
where it read 1,000 (2 ms) at the start. So the consumers vacuum the table themselves: once
every ``every`` acknowledged messages, one ``VACUUM (SKIP_LOCKED)`` in the background, at
most one at a time per process (another process's vacuum in progress makes it skip).
"""

from __future__ import annotations

import asyncio

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

log = structlog.get_logger(__name__)

VACUUM_EVERY = 5000  # acknowledged messages between two vacuums
_VACUUM = "VACUUM (SKIP_LOCKED) bus.messages"


class QueueVacuum:
    """Counts acknowledged messages; vacuums ``bus.messages`` every ``every`` of them."""

    def __init__(
        self, pool: AsyncConnectionPool[AsyncConnection], every: int | None = None
    ) -> None:
        self._pool = pool  # its connections autocommit: VACUUM runs outside a transaction
        self._every = every or VACUUM_EVERY
        self._since = 0
        self._running: asyncio.Task[None] | None = None

    def acked(self, count: int) -> None:
        """``count`` more messages are gone from the table: start a vacuum if it is due."""
        self._since += count
        if self._since >= self._every and self._running is None:
            self._since = 0
            self._running = asyncio.get_running_loop().create_task(
                self._vacuum(), name="queue-vacuum"
            )
            self._running.add_done_callback(self._ended)

    async def close(self) -> None:
        """Wait for a vacuum in progress (it is short, and the pool closes next)."""
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)

    async def _vacuum(self) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(_VACUUM)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running = None
        # A failure is only logged: the next vacuum is due as soon as more are acknowledged.
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("queue vacuum failed", error=type(exc).__name__)
