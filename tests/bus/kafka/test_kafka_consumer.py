"""The Kafka bus against the Consumer contract: release redelivers, ack commits, DLQ moves."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from mm_bronze.bus.base import Consumer, Message
from mm_bronze.bus.kafka import KafkaBus
from mm_bronze.settings import KafkaSettings
from tests.bus.kafka.topic_reader import read_records


def settings_for(servers: str) -> KafkaSettings:
    tag = uuid.uuid4().hex[:8]
    return KafkaSettings(
        servers=servers,
        api_topic=f"contract-api-{tag}",
        sftp_topic=f"contract-sftp-{tag}",
        dlq_topic=f"contract-dlq-{tag}",
        partitions=1,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )


async def fetch_n(consumer: Consumer, count: int, rounds: int = 60) -> list[Message]:
    got: list[Message] = []
    for _ in range(rounds):
        got += await consumer.fetch(count - len(got), 0.5)
        if len(got) >= count:
            break
    return got


async def test_release_redelivers_ack_commits_and_dead_letter_moves_aside(kafka: str) -> None:
    settings = settings_for(kafka)
    topic, group = settings.api_topic, f"contract-{uuid.uuid4().hex[:8]}"
    bus = KafkaBus(settings, inline_limit=1024)
    await bus.open()
    try:
        for n in range(5):
            await bus.publish(topic, b"key-%d" % n, b"value-%d" % n)
        consumer = await bus.consumer(topic, group)
        first = await fetch_n(consumer, 5)
        assert [m.value for m in first] == [b"value-%d" % n for n in range(5)]
        assert {m.attempts for m in first} == {1}

        # Ack the first two, then give the whole batch back: only the unacked come again.
        await consumer.ack(first[:2])
        await consumer.release(first, delay=0)
        again = await fetch_n(consumer, 3)
        assert [m.value for m in again] == [b"value-2", b"value-3", b"value-4"]
        assert {m.attempts for m in again} == {1}  # a release is not a failed attempt

        await consumer.dead_letter(again[0], "cannot be processed")
        await consumer.ack(again[1:])

        # A release with a delay holds the partition back for that long.
        await bus.publish(topic, b"key-5", b"value-5")
        held = await fetch_n(consumer, 1)
        await consumer.release(held, delay=1.5)
        assert await consumer.fetch(1, 0.3) == []
        later = await fetch_n(consumer, 1)
        assert [m.value for m in later] == [b"value-5"]
        await consumer.ack(later)
        await consumer.close()

        # A new member of the group starts after the last commit: nothing is left.
        successor = await bus.consumer(topic, group)
        await bus.publish(topic, b"key-6", b"value-6")
        rest = await fetch_n(successor, 1)
        assert [m.value for m in rest] == [b"value-6"]
        await successor.ack(rest)
    finally:
        await bus.close()

    dead = _read_all(kafka, settings.dlq_topic, 1)
    assert [m.value() for m in dead] == [b"value-2"]
    headers = dict(dead[0].headers() or [])
    assert headers["reason"] == b"cannot be processed"
    assert headers["source.topic"] == topic.encode()
    assert headers["source.offset"] == b"2"


async def test_ping_reports_a_reachable_broker(kafka: str) -> None:
    bus = KafkaBus(settings_for(kafka), inline_limit=1024)
    await bus.open()
    try:
        await bus.ping()
    finally:
        await bus.close()


async def test_delivery_reports_wake_the_loop_once_per_poll(kafka: str) -> None:
    settings = settings_for(kafka)
    bus = KafkaBus(settings, inline_limit=1024)
    await bus.open()
    try:
        await bus.publish(settings.api_topic, b"warm", b"warm")  # topic known, producer ready
        loop = asyncio.get_running_loop()
        handovers = 0
        plain = loop.call_soon_threadsafe

        def counted(callback: Callable[..., object], *args: Any, **kwargs: Any) -> Any:
            nonlocal handovers
            handovers += 1
            return plain(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign,assignment]
        try:
            count = 200
            await asyncio.gather(
                *(bus.publish(settings.api_topic, b"k", b"v-%d" % n) for n in range(count))
            )
        finally:
            del loop.call_soon_threadsafe
        # Every publish returned once acknowledged, with far fewer wakeups than events.
        assert 0 < handovers < count // 4
    finally:
        await bus.close()
    values = [m.value() for m in _read_all(kafka, settings.api_topic, 201)]
    assert sorted(values[1:]) == sorted(b"v-%d" % n for n in range(200))


async def test_publish_many_returns_once_every_event_is_held_in_order(kafka: str) -> None:
    settings = settings_for(kafka)
    bus = KafkaBus(settings, inline_limit=1024)
    await bus.open()
    try:
        await bus.publish_many(settings.api_topic, [])
        events = [(b"k-%d" % (n % 7), b"v-%d" % n) for n in range(150)]
        await bus.publish_many(settings.api_topic, events)
        # Acknowledged means held: a consumer that starts only now reads every one.
    finally:
        await bus.close()
    read = _read_all(kafka, settings.api_topic, 150)
    assert [(m.key(), m.value()) for m in read] == events


def _read_all(servers: str, topic: str, count: int) -> list[Any]:
    return read_records(servers, topic, want=count, quiet=0, timeout=60 + count / 2)
