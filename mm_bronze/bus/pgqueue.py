"""The embedded bus: a durable queue in PostgreSQL.

Publishing groups concurrent callers into one transaction: one multi-row statement per
group commit (a plain single-row ``INSERT`` for a lone caller), prepared and sent on libpq
directly (``metadata.prepared``), which may also record each
submission as accepted in the status history (``publish_accepted``), so the event and its
"accepted" entry are durable together, in one commit. Consumers claim batches with
``FOR UPDATE SKIP LOCKED`` and a lease: a claimed message becomes visible again when its
lease runs out (the consumer died), is deleted on ack, and moves to ``bus.dead_letters``
with its reason when it can never succeed. ``attempts`` counts claims that did not end
in an ack or a release.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from uuid import UUID

import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze.bus.base import BusCounts, Message
from mm_bronze.bus.pg_vacuum import QueueVacuum
from mm_bronze.errors import BusUnavailable
from mm_bronze.groupcommit import GroupCommitter
from mm_bronze.metadata.held_connection import HeldConnection
from mm_bronze.metadata.prepared import BYTEA_OID, TEXT_OID, UUID_OID, Array, Statement
from mm_bronze.metadata.records import ACCEPTED_MANY, ACCEPTED_ONE

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS bus;
CREATE TABLE IF NOT EXISTS bus.messages (
    id          BIGSERIAL PRIMARY KEY,
    topic       TEXT        NOT NULL,
    key         BYTEA       NOT NULL,
    value       BYTEA       NOT NULL,
    enqueued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    visible_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts    INTEGER     NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_bus_messages_ready ON bus.messages (topic, visible_at, id);
CREATE TABLE IF NOT EXISTS bus.dead_letters (
    id              BIGSERIAL PRIMARY KEY,
    message_id      BIGINT      NOT NULL,
    topic           TEXT        NOT NULL,
    key             BYTEA       NOT NULL,
    value           BYTEA       NOT NULL,
    attempts        INTEGER     NOT NULL,
    reason          TEXT        NOT NULL,
    enqueued_at     TIMESTAMPTZ NOT NULL,
    dead_lettered_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""

# Claims and acks commit without waiting for their WAL flush (the statement sets
# synchronous_commit off for its own transaction, in the same round trip): losing one in a
# database crash only redelivers messages, or leaves an attempt uncounted, and processing is
# idempotent. Publishes and dead letters always wait for the flush.
_NO_WAL_WAIT = "no_wal_wait AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true))"

_CLAIM = f"""
WITH {_NO_WAL_WAIT}
UPDATE bus.messages m
SET visible_at = now() + make_interval(secs => %(lease)s), attempts = m.attempts + 1
FROM (
    SELECT id FROM bus.messages
    WHERE topic = %(topic)s AND visible_at <= now()
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) claimed, no_wal_wait
WHERE m.id = claimed.id
RETURNING m.id, m.key, m.value, m.attempts
"""

# Handles travel as one comma-separated text parameter: dumping a Python list as an array
# costs a type lookup and an escape per element, several times the cost of one join.
_IDS = "string_to_array(%s, ',')::bigint[]"
_ACK = f"WITH {_NO_WAL_WAIT} DELETE FROM bus.messages USING no_wal_wait WHERE id = ANY({_IDS})"

# One statement per group commit; arrays travel in binary (``%b``), with no per-row overhead.
# Publishes are the hottest statements: prepared, and run on libpq directly (``prepared``).
_MANY = """
INSERT INTO bus.messages (topic, key, value)
SELECT * FROM unnest(%b::text[], %b::bytea[], %b::bytea[])
"""
_PUBLISH = Statement.of(_MANY)
# The same, plus the "accepted" entry of every submission published with the event.
_PUBLISH_ACCEPTED = Statement.of(f"WITH published AS ({_MANY}) {ACCEPTED_MANY}")

# A group of one (a lone sender): a plain single-row statement, no arrays to build.
_ONE = "INSERT INTO bus.messages (topic, key, value) VALUES (%s, %b, %b)"
_PUBLISH_ONE = Statement.of(_ONE)
_PUBLISH_ONE_ACCEPTED = Statement.of(f"WITH published AS ({_ONE}) {ACCEPTED_ONE}")

# Both counts in one round trip: waiting and in-flight messages, and dead letters, per topic.
_COUNTS = """
SELECT false, topic, count(*) FROM bus.messages GROUP BY topic
UNION ALL
SELECT true, topic, count(*) FROM bus.dead_letters GROUP BY topic
"""

_SCHEMA_LOCK = 0x6D6D_6271
PUBLISH_TIMEOUT = 10.0
Pool = AsyncConnectionPool[AsyncConnection]
# topic, key, value, and the submission to record as accepted with it (or None) with the
# client that sent it ("" for none)
_Publish = tuple[str, bytes, bytes, UUID | None, str]


class PgQueueBus:
    """A ``Bus`` on PostgreSQL; shares the process's pool."""

    def __init__(self, pool: Pool, *, lease_seconds: float = 30.0, poll_interval: float = 0.05):
        self._pool = pool
        self._lease = lease_seconds
        self._poll = poll_interval
        self._publisher: GroupCommitter[_Publish] = GroupCommitter(self._insert)
        # The group commit's one flush at a time runs on one connection, kept: a bounded
        # wait when it must take one, so that a sender waiting on an outage gets a 503 it can
        # retry on, instead of hanging.
        self._publishing = HeldConnection(pool, PUBLISH_TIMEOUT)
        self._vacuum = QueueVacuum(pool)  # shared by this process's consumers

    async def open(self) -> None:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                await conn.execute(_SCHEMA.encode())
        except psycopg.Error as exc:
            raise BusUnavailable(f"cannot prepare the queue: {type(exc).__name__}") from exc
        await self._publisher.open()

    async def close(self) -> None:
        await self._publisher.close()
        await self._publishing.close()
        await self._vacuum.close()

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        await self._submit((topic, key, value, None, ""))

    async def publish_accepted(
        self, topic: str, key: bytes, value: bytes, submission: str, client: str | None
    ) -> None:
        """Publish, and record ``submission`` as accepted from ``client`` in
        ``ingestion.ingestion_log`` in the same transaction: one durable commit for both.
        Raises ``BusUnavailable``."""
        await self._submit((topic, key, value, UUID(submission), client or ""))

    async def _submit(self, item: _Publish) -> None:
        try:
            await self._publisher.submit(item)
        except psycopg.Error as exc:
            raise BusUnavailable(f"queue insert failed: {type(exc).__name__}") from exc
        except RuntimeError as exc:  # closed while shutting down
            raise BusUnavailable(str(exc)) from exc

    async def _insert(self, items: list[_Publish]) -> None:
        if len(items) == 1:
            await self._insert_one(*items[0])
            return
        topics, keys, values, submissions, clients = [], [], [], [], []
        for topic, key, value, submission, client in items:
            topics.append(topic)
            keys.append(key)
            values.append(value)
            if submission is not None:
                submissions.append(submission.bytes)
                clients.append(client)
        # The pool's connections autocommit: the one statement is the transaction, committed
        # when it returns.
        arrays = (Array(TEXT_OID, topics), Array(BYTEA_OID, keys), Array(BYTEA_OID, values))
        if submissions:
            accepted = (Array(UUID_OID, submissions), Array(TEXT_OID, clients))
            await self._publishing.run(_PUBLISH_ACCEPTED, arrays + accepted)
        else:
            await self._publishing.run(_PUBLISH, arrays)

    async def _insert_one(
        self, topic: str, key: bytes, value: bytes, submission: UUID | None, client: str
    ) -> None:
        if submission is not None:
            params = (topic, key, value, str(submission), client or None)
            await self._publishing.run(_PUBLISH_ONE_ACCEPTED, params)
        else:
            await self._publishing.run(_PUBLISH_ONE, (topic, key, value))

    async def consumer(self, topic: str, group: str) -> PgQueueConsumer:
        return PgQueueConsumer(
            self._pool, topic, lease=self._lease, poll=self._poll, vacuum=self._vacuum
        )

    async def ping(self) -> None:
        try:
            async with self._pool.connection(timeout=5) as conn:
                await conn.execute("SELECT 1 FROM bus.messages LIMIT 0")
        except (psycopg.Error, TimeoutError) as exc:
            raise BusUnavailable(f"queue unreachable: {type(exc).__name__}") from exc

    async def counts(self, groups: Mapping[str, str]) -> BusCounts:
        """Messages waiting or in flight on each topic of ``groups``, and dead letters by
        the topic they came from (every topic of ``groups`` included, at 0 when none)."""
        backlog = dict.fromkeys(groups, 0)
        dead = dict.fromkeys(groups, 0)
        try:
            async with self._pool.connection(timeout=PUBLISH_TIMEOUT) as conn:
                cur = await conn.execute(_COUNTS)
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise BusUnavailable(f"queue unreachable: {type(exc).__name__}") from exc
        for is_dead, topic, count in rows:
            (dead if is_dead else backlog)[topic] = int(count)
        return BusCounts(backlog=backlog, dead_letters=dead)

    async def depth(self, topic: str) -> int:
        """Messages waiting or in flight on ``topic``."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM bus.messages WHERE topic = %s", (topic,))
            row = await cur.fetchone()
            return int(row[0]) if row else 0


class PgQueueConsumer:
    """Competing consumers of one topic: each message goes to one of them at a time."""

    def __init__(
        self,
        pool: Pool,
        topic: str,
        *,
        lease: float,
        poll: float,
        vacuum: QueueVacuum,
    ) -> None:
        self._pool = pool
        self.topic = topic
        self._lease = lease
        self._poll = poll
        self._vacuum = vacuum  # the bus's, shared by this process's consumers

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                async with self._pool.connection() as conn:
                    # Binary results: keys and values arrive as bytes, without hex decoding.
                    cur = await conn.execute(
                        _CLAIM,
                        {"lease": self._lease, "topic": self.topic, "limit": max_messages},
                        binary=True,
                    )
                    rows = await cur.fetchall()
            except psycopg.Error as exc:
                raise BusUnavailable(f"queue claim failed: {type(exc).__name__}") from exc
            if rows:
                rows.sort(key=lambda row: row[0])
                return [
                    Message(topic=self.topic, key=bytes(k), value=bytes(v), attempts=a, handle=i)
                    for i, k, v, a in rows
                ]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await asyncio.sleep(min(self._poll, remaining))

    async def ack(self, messages: Sequence[Message]) -> None:
        await self._execute(_ACK, (_handles(messages),))
        self._vacuum.acked(len(messages))

    async def release(
        self, messages: Sequence[Message], delay: float, *, counted: bool = False
    ) -> None:
        # The claim counted an attempt; a release after a transient failure takes it back.
        attempts = "attempts" if counted else "greatest(attempts - 1, 0)"
        await self._execute(
            "UPDATE bus.messages SET visible_at = now() + make_interval(secs => %s),"
            f" attempts = {attempts} WHERE id = ANY({_IDS})",
            (delay, _handles(messages)),
        )

    async def dead_letter(self, message: Message, reason: str) -> None:
        await self._execute(
            "WITH moved AS (DELETE FROM bus.messages WHERE id = %s RETURNING *)"
            " INSERT INTO bus.dead_letters"
            " (message_id, topic, key, value, attempts, reason, enqueued_at)"
            " SELECT id, topic, key, value, attempts, %s, enqueued_at FROM moved",
            (message.handle, reason),
        )
        log.warning("message dead-lettered", topic=self.topic, reason=reason)

    async def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        try:
            async with self._pool.connection() as conn:
                await conn.execute(sql, params)
        except psycopg.Error as exc:
            raise BusUnavailable(f"queue update failed: {type(exc).__name__}") from exc

    async def close(self) -> None:
        return None


def _handles(messages: Sequence[Message]) -> str:
    return ",".join([str(m.handle) for m in messages])
