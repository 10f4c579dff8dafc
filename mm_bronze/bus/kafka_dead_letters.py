"""Dead letters on Kafka: the records of the dead-letter topic, id = ``partition:offset``.

Kafka cannot delete one record, so a replay or a purge is recorded in PostgreSQL
(``ingestion.dead_letter_actions``, keyed by the record's topic, partition and offset) and
the record is no longer listed. A replay produces the event back to its source topic with
its original key and headers, under that row's lock: the row and the produce succeed
together or not at all, so one id is replayed once however often it is asked for. A purge
removes the event's staged payload once its row is committed. The
dead-letter group (``kafka.dlq_group``) commits each partition's offset past the records
already handled, so a listing reads only from the first pending one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
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
from mm_bronze.bus.kafka import KafkaBus, client_config
from mm_bronze.bus.kafka_consumer import DEAD_LETTER_HEADERS, message_headers
from mm_bronze.errors import BronzeError, BusUnavailable
from mm_bronze.settings import KafkaSettings

if TYPE_CHECKING:
    from mm_bronze.storage.objects import ObjectStore

log = structlog.get_logger(__name__)

Pool = AsyncConnectionPool[AsyncConnection]
READ_TIMEOUT = 30.0
Position = tuple[int, int]  # partition, offset


@dataclass(frozen=True)
class _Record:
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: dt.datetime | None

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        found = [value for key, value in self.headers if key == name]
        return found[-1].decode(errors="replace") if found else None

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The event's own headers: those before the ones dead-lettering added."""
        headers = list(self.headers)
        added = len(DEAD_LETTER_HEADERS)
        if [k for k, _ in headers[-added:]] == list(DEAD_LETTER_HEADERS):
            del headers[-added:]
        return headers

    def letter(self) -> DeadLetter:
        attempts = self.header("attempts") or "0"
        return describe(
            self.id,
            self.header("source.topic") or "",
            self.header("reason") or "",
            int(attempts) if attempts.isdigit() else 0,
            self.timestamp,
            self.value,
        )


class KafkaDeadLetters:
    """``DeadLetters`` on the dead-letter topic; produces replays through ``bus``."""

    def __init__(
        self, bus: KafkaBus, settings: KafkaSettings, pool: Pool, staging: ObjectStore
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._pool = pool
        self._staging = staging
        self._topic = settings.dlq_topic

    async def pending(
        self, *, topic: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[DeadLetter]:
        start = _position(after) if after is not None else (-1, -1)
        pending = [
            record
            for record in await self._unhandled()
            if (record.partition, record.offset) > start
            and (topic is None or record.header("source.topic") == topic)
        ]
        return [record.letter() for record in pending[:limit]]

    def canonical_id(self, id: str) -> str:
        partition, offset = _position(id)
        return f"{partition}:{offset}"

    async def get(self, id: str) -> DeadLetter:
        return (await self._find(id)).letter()

    async def replay(self, id: str) -> DeadLetter:
        record = await self._find(id)
        await self._replay(record)
        await self._commit_handled()
        return record.letter()

    async def replay_all(self, topic: str | None = None) -> int:
        count = 0
        for record in await self._unhandled():
            source = record.header("source.topic")
            if not source:
                log.warning("dead letter without a source topic not replayed", id=record.id)
                continue
            if topic is not None and source != topic:
                continue
            try:
                await self._replay(record)
            except DeadLetterNotFound:
                continue  # replayed by someone else meanwhile
            count += 1
        await self._commit_handled()
        return count

    async def purge(self, id: str) -> None:
        record = await self._find(id)
        async with _transaction(self._pool) as conn:
            if not await _mark(conn, self._topic, record, "purged"):
                raise DeadLetterNotFound(f"no dead letter {id}")
        await remove_staged(self._staging, record.value, id)
        await self._commit_handled()

    async def close(self) -> None:
        return None

    async def _replay(self, record: _Record) -> None:
        source = record.header("source.topic")
        if not source:
            raise BronzeError(f"dead letter {record.id} does not name its source topic")
        async with _transaction(self._pool) as conn:
            if not await _mark(conn, self._topic, record, "replayed"):
                raise DeadLetterNotFound(f"no dead letter {record.id}")
            uuid = submission_uuid(record.value)
            if uuid is not None:
                await conn.execute(
                    "INSERT INTO ingestion.ingestion_log (object_id, status, message)"
                    " VALUES (%s, 'accepted', %s)",
                    (uuid, f"replayed from dead letter {record.id}"),
                )
            # Still inside the transaction: a failed produce leaves the record pending.
            await self._bus.publish(source, record.key, record.value, record.original_headers())
        log.info("dead letter replayed", id=record.id, topic=source)

    async def _find(self, id: str) -> _Record:
        wanted = _position(id)
        for record in await self._unhandled():
            if (record.partition, record.offset) == wanted:
                return record
        raise DeadLetterNotFound(f"no dead letter {id}")

    async def _unhandled(self) -> list[_Record]:
        records = await asyncio.to_thread(self._read)
        handled = await self._handled(records)
        return [r for r in records if (r.partition, r.offset) not in handled]

    async def _handled(self, records: Sequence[_Record]) -> set[Position]:
        if not records:
            return set()
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT dlq_partition, dlq_offset FROM ingestion.dead_letter_actions"
                    " WHERE dlq_topic = %s AND dlq_offset >= %s",
                    (self._topic, min(r.offset for r in records)),
                )
                return {(int(p), int(o)) for p, o in await cur.fetchall()}
        except psycopg.Error as exc:
            raise BusUnavailable(f"database unreachable: {type(exc).__name__}") from exc

    async def _commit_handled(self) -> None:
        """Move the dead-letter group's offsets past the handled records at each
        partition's head, so later listings start at the first pending one."""
        records = await asyncio.to_thread(self._read)
        handled = await self._handled(records)
        offsets: dict[int, int] = {}
        blocked: set[int] = set()
        for record in records:  # in offset order per partition
            if record.partition in blocked:
                continue
            if (record.partition, record.offset) in handled:
                offsets[record.partition] = record.offset + 1
            else:
                blocked.add(record.partition)
        if offsets:
            try:
                await asyncio.to_thread(self._commit, offsets)
            except BusUnavailable as exc:  # only an optimisation: listings still filter
                log.warning("dead-letter offsets not committed", error=str(exc))

    def _consumer(self) -> Consumer:
        return Consumer(
            {
                **client_config(self._settings),
                "group.id": self._settings.dlq_group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )

    def _read(self) -> list[_Record]:
        """Every record from the group's committed offsets to the high watermarks."""
        consumer = self._consumer()
        try:
            return self._read_with(consumer)
        except KafkaException as exc:
            raise BusUnavailable(f"cannot read dead letters: {exc.args[0]}") from exc
        finally:
            consumer.close()

    def _read_with(self, consumer: Consumer) -> list[_Record]:
        topic = self._topic
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return []  # no dead letter yet
        partitions = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        ends: dict[int, int] = {}
        start: list[TopicPartition] = []
        for tp in consumer.committed(partitions, timeout=10):
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            first = max(tp.offset, low) if tp.offset >= 0 else low
            if first < high:
                ends[tp.partition] = high
                start.append(TopicPartition(topic, tp.partition, first))
        if not start:
            return []
        consumer.assign(start)
        records: list[_Record] = []
        deadline = time.monotonic() + READ_TIMEOUT
        while ends:
            if time.monotonic() > deadline:
                raise BusUnavailable("timed out reading the dead-letter topic")
            for msg in consumer.consume(500, 0.5):
                number = msg.partition() or 0
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        ends.pop(number, None)
                    elif err.fatal():
                        raise BusUnavailable(f"cannot read dead letters: {err.str()}")
                    continue
                offset = msg.offset() or 0
                if number not in ends or offset >= ends[number]:
                    continue
                _kind, millis = msg.timestamp()
                records.append(
                    _Record(
                        partition=number,
                        offset=offset,
                        key=msg.key() or b"",
                        value=msg.value() or b"",
                        headers=message_headers(msg),
                        timestamp=dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
                        if millis > 0
                        else None,
                    )
                )
                if offset + 1 >= ends[number]:
                    del ends[number]
        records.sort(key=lambda r: (r.partition, r.offset))
        return records

    def _commit(self, offsets: dict[int, int]) -> None:
        consumer = self._consumer()
        try:
            consumer.commit(
                offsets=[TopicPartition(self._topic, p, o) for p, o in offsets.items()],
                asynchronous=False,
            )
        except KafkaException as exc:
            raise BusUnavailable(f"commit failed: {exc.args[0]}") from exc
        finally:
            consumer.close()


@contextlib.asynccontextmanager
async def _transaction(pool: Pool) -> AsyncIterator[AsyncConnection]:
    """A pooled connection inside one transaction; database errors become ``BusUnavailable``."""
    try:
        async with pool.connection() as conn, conn.transaction():
            yield conn
    except psycopg.Error as exc:
        raise BusUnavailable(f"database unreachable: {type(exc).__name__}") from exc


async def _mark(conn: AsyncConnection, topic: str, record: _Record, action: str) -> bool:
    """Record ``action`` on ``record``; False when it was already handled."""
    cur = await conn.execute(
        "INSERT INTO ingestion.dead_letter_actions (dlq_topic, dlq_partition, dlq_offset, action)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (topic, record.partition, record.offset, action),
    )
    return cur.rowcount == 1


def _position(id: str) -> Position:
    partition, sep, offset = id.partition(":")
    if not (id.isascii() and sep and partition.isdigit() and offset.isdigit()) or len(id) > 40:
        raise InvalidDeadLetterId(f"{id!r} is not a dead letter id (PARTITION:OFFSET)")
    return int(partition), int(offset)
