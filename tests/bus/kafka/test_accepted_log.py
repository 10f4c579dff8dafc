"""The HTTP door on Kafka: "accepted" entries are logged after the event is durable, a
group in one statement, and a failure to log one does not undo the acknowledgement."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from mm_bronze.bus.kafka_accepted import AcceptedPublisher, log_accepted
from mm_bronze.metadata import Database
from mm_bronze.metadata.held_connection import HeldConnection
from tests.bus.kafka.conftest import kafka_env_for
from tests.ingest.http.test_accepted_scoping import add_clients, check_accepted_are_scoped
from tests.services.mm_bronze import MmBronze

_HISTORY = "SELECT object_id, status, message, client FROM ingestion.ingestion_log ORDER BY log_id"


async def test_groups_of_one_and_many_are_logged_in_order(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path) as db:
        lone, *group = [(uuid.uuid4(), client) for client in ("a", "b", None, "c")]
        connection = HeldConnection(db.pool)
        await log_accepted(connection, [lone])
        await log_accepted(connection, group)
        await log_accepted(connection, [])
        await connection.close()
        async with db.pool.connection() as conn:
            rows = await (await conn.execute(_HISTORY)).fetchall()
        assert rows == [(u, "accepted", None, client) for u, client in [lone, *group]]


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
        await asyncio.gather(*(accepted.publish("t", i.encode(), b"v", i, i[:8]) for i in ids))
        await accepted.close()
        async with db.pool.connection() as conn:
            rows = await (await conn.execute(_HISTORY)).fetchall()
        assert sorted(published) == sorted(ids)
        assert sorted((str(u), c) for u, _, _, c in rows) == sorted((i, i[:8]) for i in ids)
        assert {s for _, s, _, _ in rows} == {"accepted"}


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
        await accepted.publish("t", b"k", b"v", str(uuid.uuid4()), None)  # does not raise
        await accepted.close()


async def test_publish_failure_logs_nothing(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path) as db:

        async def publish(topic: str, key: bytes, value: bytes) -> None:
            raise RuntimeError("kafka down")

        accepted = AcceptedPublisher(publish, db.pool)
        await accepted.open()
        try:
            await accepted.publish("t", b"k", b"v", str(uuid.uuid4()), "a")
        except RuntimeError:
            pass
        else:
            raise AssertionError("a failed publish must raise")
        await accepted.close()
        async with db.pool.connection() as conn:
            rows = await (await conn.execute(_HISTORY)).fetchall()
        assert rows == []


def test_on_kafka_another_clients_accepted_submission_is_404(
    tmp_path: Path, kafka: str, dsn: str
) -> None:
    env = kafka_env_for(kafka, dsn)
    tokens = add_clients(env)
    proc = MmBronze(tmp_path / "http", "--http", env=env).start(timeout=90)
    try:
        check_accepted_are_scoped(proc.url, tokens)
    finally:
        proc.stop()
