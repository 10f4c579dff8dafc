"""The HTTP door on Kafka: "accepted" entries are logged after the event is durable, a
group in one statement, and a failure to log one does not undo the acknowledgement."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from mm_bronze.bus.kafka_accepted import AcceptedPublisher, log_accepted
from mm_bronze.metadata import Database
from mm_bronze.metadata.held_connection import HeldConnection

_HISTORY = "SELECT object_id, status, message FROM ingestion.ingestion_log ORDER BY log_id"


async def test_groups_of_one_and_many_are_logged_in_order(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path) as db:
        lone, *group = [uuid.uuid4() for _ in range(4)]
        connection = HeldConnection(db.pool)
        await log_accepted(connection, [lone])
        await log_accepted(connection, group)
        await log_accepted(connection, [])
        await connection.close()
        async with db.pool.connection() as conn:
            rows = await (await conn.execute(_HISTORY)).fetchall()
        assert rows == [(u, "accepted", None) for u in [lone, *group]]


async def test_concurrent_submissions_are_all_logged_after_publishing(
    dsn: str, tmp_path: Path
) -> None:
    async with Database(dsn, tmp_path) as db:
        published: list[str] = []

        async def publish(topic: str, key: bytes, value: bytes) -> None:
            await asyncio.sleep(0)
            published.append(key.decode())

        accepted = AcceptedPublisher(publish, db.pool)
        await accepted.open()
        ids = [str(uuid.uuid4()) for _ in range(50)]
        await asyncio.gather(*(accepted.publish("t", i.encode(), b"v", i) for i in ids))
        await accepted.close()
        async with db.pool.connection() as conn:
            rows = await (await conn.execute(_HISTORY)).fetchall()
        assert sorted(published) == sorted(ids)
        assert sorted(str(u) for u, _, _ in rows) == sorted(ids)
        assert {s for _, s, _ in rows} == {"accepted"}


async def test_an_unlogged_entry_does_not_undo_the_acknowledgement(
    dsn: str, tmp_path: Path
) -> None:
    async with Database(dsn, tmp_path) as db:

        async def publish(topic: str, key: bytes, value: bytes) -> None:
            pass

        accepted = AcceptedPublisher(publish, db.pool)
        await accepted.open()
        async with db.pool.connection() as conn:
            await conn.execute("DROP TABLE ingestion.ingestion_log")
        await accepted.publish("t", b"k", b"v", str(uuid.uuid4()))  # does not raise
        await accepted.close()


async def test_publish_failure_logs_nothing(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path) as db:

        async def publish(topic: str, key: bytes, value: bytes) -> None:
            raise RuntimeError("kafka down")

        accepted = AcceptedPublisher(publish, db.pool)
        await accepted.open()
        try:
            await accepted.publish("t", b"k", b"v", str(uuid.uuid4()))
        except RuntimeError:
            pass
        else:
            raise AssertionError("a failed publish must raise")
        await accepted.close()
        async with db.pool.connection() as conn:
            rows = await (await conn.execute(_HISTORY)).fetchall()
        assert rows == []
