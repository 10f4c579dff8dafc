"""A publish and consume round trip on a probe topic of the configured bus, once the bus is
known to be the deployment's (``metadata.deployment``: a process configured for another bus
than the one recorded in the database would be refused at start).

The probe topic has a name of its own per run (``mm-bronze-doctor-<random>``) and is removed
afterwards: real topics, their consumer groups and their consumers are never touched. On
Kafka the probe consumer reads its partition by assignment, without joining any group.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from mm_bronze.doctor.check import Check, describe, failed, passed, skipped
from mm_bronze.settings import KafkaSettings, Settings

PROBE_PREFIX = "mm-bronze-doctor-"
PROBE_VALUE = b"mm-bronze doctor probe"
KAFKA_TIMEOUT = 5.0  # seconds per broker request


class ProbeFailed(Exception):
    """The round trip did not complete; the message says where it stopped."""


def probe_topic() -> str:
    return PROBE_PREFIX + uuid.uuid4().hex[:12]


async def check_bus(settings: Settings, dsn: str) -> Check:
    name = "bus"
    recorded = await _deployment(dsn, settings) if dsn else _Recorded()
    if recorded.refusal is not None:
        return failed(name, *recorded.refusal)
    if settings.kafka.servers:
        servers = settings.kafka.servers
        try:
            leftover = await asyncio.to_thread(kafka_round_trip, settings.kafka)
        except Exception as exc:
            return failed(
                name,
                f"Kafka at {servers}: {describe(exc)}",
                "check that the brokers in kafka.servers (KAFKA_SERVERS) run and are reachable "
                "from here, and kafka.options (security protocol, credentials); the client "
                "must be allowed to create and delete topics",
            )
        foreign = await _foreign_events(settings, recorded.id) if recorded.read else None
        if foreign is not None:
            return failed(name, *foreign)
        return passed(
            name, f"Kafka at {servers}: publish and consume round trip on a probe topic{leftover}"
        )
    if not dsn:
        return skipped(name, "the embedded queue lives in PostgreSQL, which is not reachable")
    try:
        await pgqueue_round_trip(dsn, settings.consumer.lease_seconds)
    except Exception as exc:
        return failed(
            name,
            f"embedded queue: {describe(exc)}",
            "check that the database user may create and write the bus schema",
        )
    return passed(name, "embedded queue: publish and consume round trip on a probe topic")


@dataclass(frozen=True)
class _Recorded:
    """What the database says of its deployment, as far as it could be read."""

    refusal: tuple[str, str] | None = None  # why ``serve`` would be refused for its bus
    read: bool = False  # whether its id could be read (a migrated database)
    id: str | None = None  # the deployment's id; None if none is recorded yet


async def _deployment(dsn: str, settings: Settings) -> _Recorded:
    """Why ``serve`` with these settings would be refused for its bus (with the fix), and the
    deployment's id, in one connection. Whatever the database cannot say is left out: the
    round trip and the migrations check find out why."""
    import psycopg

    from mm_bronze.metadata.deployment import bus_of, recorded_id, refusal

    try:
        async with await psycopg.AsyncConnection.connect(
            dsn, connect_timeout=int(KAFKA_TIMEOUT), autocommit=True
        ) as conn:
            problem = await refusal(conn, bus_of(settings.kafka.servers))
            try:
                deployment = await recorded_id(conn)
            except psycopg.Error:  # not migrated yet
                return _Recorded(refusal=problem)
            return _Recorded(refusal=problem, read=True, id=deployment)
    except psycopg.Error:
        return _Recorded()


async def _foreign_events(settings: Settings, deployment: str | None) -> tuple[str, str] | None:
    """Why this process's consumers would refuse the events waiting on Kafka (another
    deployment than ``deployment``, this database's, stamped them), and the fix; None if
    they would not."""
    from mm_bronze.doctor.stamps import foreign_events, newest_stamps

    kafka = settings.kafka
    topics = [kafka.api_topic, kafka.sftp_topic, kafka.mllp_topic]
    stamps = await asyncio.to_thread(newest_stamps, kafka, topics)
    return foreign_events(deployment, stamps)


async def pgqueue_round_trip(dsn: str, lease_seconds: float) -> None:
    """Publish, claim, acknowledge one message; the probe topic is emptied in any case."""
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    from mm_bronze.bus.pgqueue import PgQueueBus

    pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
        dsn, min_size=1, max_size=2, open=False, kwargs={"autocommit": True}
    )
    await pool.open(wait=True, timeout=KAFKA_TIMEOUT)
    topic = probe_topic()
    try:
        bus = PgQueueBus(pool, lease_seconds=lease_seconds)
        await bus.open()
        try:
            await bus.publish(topic, b"doctor", PROBE_VALUE)
            consumer = await bus.consumer(topic, topic)
            received = await consumer.fetch(1, KAFKA_TIMEOUT)
            if [m.value for m in received] != [PROBE_VALUE]:
                raise ProbeFailed("the published probe message was not delivered")
            await consumer.ack(received)
        finally:
            await bus.close()
            async with pool.connection() as conn:
                await conn.execute("DELETE FROM bus.messages WHERE topic = %s", (topic,))
    finally:
        await pool.close()


def kafka_round_trip(kafka: KafkaSettings) -> str:
    """Create a probe topic, produce (acks=all), consume by assignment, delete (blocking).

    Returns a note when the probe topic could not be deleted afterwards, else ""."""
    admin = kafka_admin(kafka)
    admin.list_topics(timeout=KAFKA_TIMEOUT)  # fails fast when no broker answers
    topic = probe_topic()
    created = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=kafka.replication_factor)],
        request_timeout=KAFKA_TIMEOUT,
    )
    created[topic].result(timeout=KAFKA_TIMEOUT + 1)
    leftover = ""
    try:
        producer = Producer(
            {
                **quiet_config(kafka),
                "enable.idempotence": True,
                "acks": "all",
                "message.timeout.ms": int(KAFKA_TIMEOUT * 1000),
            }
        )
        reports: list[KafkaError | None] = []
        producer.produce(topic, PROBE_VALUE, b"doctor", on_delivery=lambda e, _m: reports.append(e))
        producer.flush(KAFKA_TIMEOUT + 1)
        if not reports:
            raise ProbeFailed("the probe message was not acknowledged in time")
        if reports[0] is not None:
            raise ProbeFailed(f"publish failed: {reports[0].str()}")
        consumer = Consumer({**quiet_config(kafka), "group.id": topic, "enable.auto.commit": False})
        try:
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            received = consumer.consume(1, KAFKA_TIMEOUT)
        finally:
            consumer.close()
        if not received or received[0].error() is not None or received[0].value() != PROBE_VALUE:
            raise ProbeFailed("the published probe message was not delivered")
    finally:
        deleted = admin.delete_topics([topic], request_timeout=KAFKA_TIMEOUT)
        try:
            deleted[topic].result(timeout=KAFKA_TIMEOUT + 1)
        except Exception as exc:  # reported with the outcome of the round trip
            leftover = f"; probe topic {topic} not deleted ({describe(exc)})"
    return leftover


def quiet_config(kafka: KafkaSettings) -> dict[str, Any]:
    """The bus's client settings; librdkafka's own log lines stay out of the report."""
    from mm_bronze.bus.kafka import client_config

    return {**client_config(kafka), "client.id": "mm-bronze-doctor", "log_level": 0}


def kafka_admin(kafka: KafkaSettings) -> AdminClient:
    return AdminClient(quiet_config(kafka))
