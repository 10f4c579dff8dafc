"""Consumer group lag and dead letters on Kafka, measured from the brokers for metrics.

The lag of a group on a topic is, summed over its partitions, the high watermark minus the
group's committed offset (or minus the low watermark where the group has committed
nothing). Dead letters are the messages the dead-letter topic holds. One client per group,
created on first use and kept; every call runs on one thread of its own, so a slow broker
holds up no one but the caller, which bounds its wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from mm_bronze.bus.base import BusCounts
from mm_bronze.errors import BusUnavailable

QUERY_TIMEOUT = 2.0


class KafkaLag:
    """Measures lag per (topic, group) and the dead-letter topic's size."""

    def __init__(self, config: Callable[[str], dict[str, Any]], dlq_topic: str) -> None:
        self._config = config  # consumer settings for a group
        self._dlq_topic = dlq_topic
        self._clients: dict[str, Consumer] = {}
        self._thread: ThreadPoolExecutor | None = None

    async def counts(self, groups: Mapping[str, str]) -> BusCounts:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="kafka-lag")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._measure, dict(groups))

    def _measure(self, groups: dict[str, str]) -> BusCounts:
        try:
            backlog = {topic: self._lag(topic, group) for topic, group in groups.items()}
            dead = self._size(self._client(next(iter(groups.values()), "")), self._dlq_topic)
        except KafkaException as exc:
            raise BusUnavailable(f"kafka offsets unavailable: {exc.args[0]}") from exc
        return BusCounts(backlog=backlog, dead_letters={self._dlq_topic: dead})

    def _client(self, group: str) -> Consumer:
        client = self._clients.get(group)
        if client is None:
            # Never subscribes: it reads the group's committed offsets without joining it.
            client = self._clients[group] = Consumer(self._config(group))
        return client

    def _partitions(self, client: Consumer, topic: str) -> list[TopicPartition]:
        metadata = client.list_topics(topic, timeout=QUERY_TIMEOUT).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        return [TopicPartition(topic, number) for number in sorted(metadata.partitions)]

    def _lag(self, topic: str, group: str) -> int:
        client = self._client(group)
        partitions = self._partitions(client, topic)
        if not partitions:
            return 0
        lag = 0
        for tp in client.committed(partitions, timeout=QUERY_TIMEOUT):
            low, high = client.get_watermark_offsets(
                TopicPartition(topic, tp.partition), timeout=QUERY_TIMEOUT, cached=False
            )
            start = tp.offset if tp.offset >= 0 else low
            lag += max(high - start, 0)
        return lag

    def _size(self, client: Consumer, topic: str) -> int:
        total = 0
        for tp in self._partitions(client, topic):
            low, high = client.get_watermark_offsets(tp, timeout=QUERY_TIMEOUT, cached=False)
            total += max(high - low, 0)
        return total

    def close(self) -> None:
        """Close the clients (blocking); idempotent."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.submit(self._close_clients).result()
            thread.shutdown(wait=True)

    def _close_clients(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()
