"""Every door's inline events fit in what the broker accepts on that door's topic.

Settings already keep each inline limit below ``kafka.max_message_size``; a topic that
exists may still carry a smaller ``max.message.bytes`` (created by hand, or by an older
configuration), and then every inline event above it would be refused at publish.
"""

from __future__ import annotations

import asyncio

from confluent_kafka.admin import ConfigResource

from mm_bronze.doctor.bus_probe import KAFKA_TIMEOUT, kafka_admin
from mm_bronze.doctor.check import Check, describe, failed, passed, skipped
from mm_bronze.settings import KAFKA_EVENT_OVERHEAD, Settings

NAME = "kafka message size"


def door_topics(settings: Settings) -> dict[str, str]:
    """Door → the topic its events go to."""
    kafka = settings.kafka
    return {"http": kafka.api_topic, "sftp": kafka.sftp_topic, "mllp": kafka.mllp_topic}


async def check_kafka_limits(settings: Settings) -> Check:
    if not settings.kafka.servers:
        return skipped(NAME, "not configured (the embedded queue has no message size limit)")
    try:
        limits = await asyncio.to_thread(topic_limits, settings)
    except Exception as exc:
        return failed(
            NAME,
            f"cannot read the topics' max.message.bytes: {describe(exc)}",
            "check that Kafka is reachable and the client may describe topic configurations",
        )
    too_small = []
    for door, topic in door_topics(settings).items():
        needed = getattr(settings, door).inline_limit + KAFKA_EVENT_OVERHEAD
        limit = limits.get(topic, settings.kafka.max_message_size)
        if limit < needed:
            too_small.append((door, topic, limit, needed))
    if too_small:
        door, topic, limit, needed = too_small[0]
        return failed(
            NAME,
            "; ".join(
                f"topic {t} accepts {lim} bytes, {d}.inline_limit needs {n}"
                for d, t, lim, n in too_small
            ),
            f"raise max.message.bytes of topic {topic} to at least {needed} "
            f"(kafka-configs --alter --entity-type topics --entity-name {topic} --add-config "
            f"max.message.bytes={settings.kafka.max_message_size}), or lower {door}.inline_limit",
        )
    shown = ", ".join(
        f"{door} {getattr(settings, door).inline_limit}" for door in door_topics(settings)
    )
    return passed(NAME, f"every inline limit fits its topic ({shown}; plus event overhead)")


def topic_limits(settings: Settings) -> dict[str, int]:
    """``max.message.bytes`` of the doors' topics that exist (blocking). Missing topics are
    created by mm-bronze with ``kafka.max_message_size``."""
    admin = kafka_admin(settings.kafka)
    existing = admin.list_topics(timeout=KAFKA_TIMEOUT).topics
    wanted = sorted({t for t in door_topics(settings).values() if t in existing})
    if not wanted:
        return {}
    futures = admin.describe_configs(
        [ConfigResource("topic", topic) for topic in wanted], request_timeout=KAFKA_TIMEOUT
    )
    limits: dict[str, int] = {}
    for resource, future in futures.items():
        entry = future.result(timeout=KAFKA_TIMEOUT + 1).get("max.message.bytes")
        if entry is not None and entry.value is not None:
            limits[resource.name] = int(entry.value)
    return limits
