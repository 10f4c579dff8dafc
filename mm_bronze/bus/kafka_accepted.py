"""HTTP submissions on Kafka: publish the event, then log it as accepted.

The event is durable once Kafka acknowledged it (acks=all). Its "accepted" entry in the
status history is then group committed, one statement per group: a multi-row ``INSERT``
from arrays (a plain single-row one for a group of one), in autocommit, so a group pays
one round trip and no ``BEGIN``/``COMMIT``, on one connection kept for the flushes. The entry
is informational: when it cannot be written, that is logged and the acknowledgement stands.
Both statements are prepared and run on libpq directly (``metadata.prepared``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze.groupcommit import GroupCommitter
from mm_bronze.metadata.held_connection import HeldConnection
from mm_bronze.metadata.prepared import TEXT_OID, UUID_OID, Array, Statement
from mm_bronze.metadata.records import ACCEPTED_MANY, ACCEPTED_ONE

log = structlog.get_logger(__name__)
# On libpq directly (``metadata.prepared``): one row, or arrays of many.
_ACCEPTED_ONE = Statement.of(ACCEPTED_ONE)
_ACCEPTED_MANY = Statement.of(ACCEPTED_MANY)

Publish = Callable[[str, bytes, bytes], Awaitable[None]]


async def log_accepted(
    connection: HeldConnection, submissions: Sequence[tuple[UUID, str | None]]
) -> None:
    """Record ``submissions`` (uuid, client) as accepted, in order, in one autocommitted
    statement."""
    if not submissions:
        return
    if len(submissions) == 1:
        submission, client = submissions[0]
        await connection.run(_ACCEPTED_ONE, (str(submission), client or None))
    else:
        uuids = [submission.bytes for submission, _ in submissions]
        clients = [client or "" for _, client in submissions]
        await connection.run(_ACCEPTED_MANY, (Array(UUID_OID, uuids), Array(TEXT_OID, clients)))


class AcceptedPublisher:
    """``publish(topic, key, value, submission)`` for the HTTP door on Kafka."""

    def __init__(self, publish: Publish, pool: AsyncConnectionPool[AsyncConnection]) -> None:
        self._publish = publish
        connection = self._connection = HeldConnection(pool)  # one flush at a time

        async def flush(submissions: list[tuple[UUID, str | None]]) -> None:
            await log_accepted(connection, submissions)

        self._status_log: GroupCommitter[tuple[UUID, str | None]] = GroupCommitter(flush)

    async def open(self) -> None:
        await self._status_log.open()

    async def close(self) -> None:
        await self._status_log.close()
        await self._connection.close()

    async def publish(
        self, topic: str, key: bytes, value: bytes, submission: str, client: str | None
    ) -> None:
        """Return once Kafka holds the event; then log ``submission`` as accepted from
        ``client``."""
        await self._publish(topic, key, value)
        try:
            await self._status_log.submit((UUID(submission), client))
        except Exception as exc:  # the event is durable; the entry is informational
            log.warning("accepted status not logged", uuid=submission, error=type(exc).__name__)
