"""Whose events wait on Kafka: the deployment stamps (``mm_bronze.bus.stamp``) of the newest
event of each partition of the ingest topics, against this database's deployment.

A consumer whose database is not the deployment the doors record to refuses their events and
stops at start; the doctor says so beforehand. The events are read by assignment, without
joining any group: nothing is consumed, and no offset moves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import Consumer, TopicPartition

from mm_bronze.bus.stamp import HEADER
from mm_bronze.settings import KafkaSettings

TIMEOUT = 5.0  # seconds per broker request, and for reading the newest events


def newest_stamps(kafka: KafkaSettings, topics: Sequence[str]) -> dict[str, set[str]]:
    """Topic → the stamps of the newest event of each of its partitions (blocking); topics
    that do not exist, are empty or hold only unstamped events are left out."""
    from mm_bronze.doctor.bus_probe import probe_topic, quiet_config

    consumer = Consumer(
        {**quiet_config(kafka), "group.id": probe_topic(), "enable.auto.commit": False}
    )
    try:
        known = consumer.list_topics(timeout=TIMEOUT).topics
        newest = []
        for topic in topics:
            found = known.get(topic)
            if found is None or found.error is not None:
                continue
            for partition in found.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=TIMEOUT
                )
                if high > low:
                    newest.append(TopicPartition(topic, partition, high - 1))
        stamps: dict[str, set[str]] = {}
        if not newest:
            return stamps
        consumer.assign(newest)
        waiting, deadline = len(newest), time.monotonic() + TIMEOUT
        while waiting and time.monotonic() < deadline:
            for message in consumer.consume(waiting, 0.5):
                if message.error() is not None:
                    continue
                waiting -= 1
                stamp = dict(message.headers() or []).get(HEADER)
                if isinstance(stamp, bytes):
                    found = stamps.setdefault(str(message.topic()), set())
                    found.add(stamp.decode("utf-8", "replace"))
        return stamps
    finally:
        consumer.close()


def foreign_events(deployment: str | None, stamps: dict[str, set[str]]) -> tuple[str, str] | None:
    """Why this process's consumers would refuse the events waiting on Kafka, and the fix;
    None if they would not. ``deployment`` is this database's id (None: none recorded)."""
    for topic, found in stamps.items():
        others = sorted(found - {deployment} if deployment else found)
        if not others:
            continue
        this = f"is deployment {deployment}" if deployment else "has no deployment recorded yet"
        return (
            f"the newest events on {topic} were accepted by deployment {', '.join(others)}, "
            f"and this database {this}: consumers with these settings would refuse them",
            "set postgres.dsn (POSTGRES_DSN) as on the deployment's other processes; if this "
            f"database replaces that deployment's, run `mm-bronze db adopt {others[0]}`",
        )
    return None
