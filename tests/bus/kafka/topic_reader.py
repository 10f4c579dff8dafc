"""Reading a Kafka topic from its start in a test, as a consumer group of its own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Message


def read_records(
    servers: str,
    topic: str,
    *,
    want: int,
    quiet: float,
    timeout: float = 60,
    keep: Callable[[Message], bool] = lambda _: True,
) -> list[Message]:
    """The records of ``topic`` that ``keep`` accepts, in the order read: once ``want`` of
    them have arrived and no record at all for ``quiet`` seconds after (so that a record
    that should not be there has had its chance to show), or when ``timeout`` is up."""
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    try:
        deadline = time.monotonic() + timeout
        last_record = time.monotonic()
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                if keep(msg):
                    out.append(msg)
                last_record = time.monotonic()
            elif len(out) >= want and time.monotonic() - last_record >= quiet:
                break
    finally:
        consumer.close()
    return out
