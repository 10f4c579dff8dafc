"""A Kafka consumer of one topic in one group, driven from asyncio.

Every call into librdkafka runs on the consumer's own thread, so the rebalance callbacks
(which librdkafka runs inside ``consume``) and the offset bookkeeping never race. A message
is *in flight* from fetch until ack, release or dead-letter; the committed position of a
partition is its first in-flight offset (or the end of what was fetched), committed
synchronously after each acknowledged batch, on partition revoke and on close. A release
seeks each partition back to its first released offset, so those messages come again; with
a delay, the partition is paused until then.

Work in flight is bounded: the pipeline fetches again only after it has finished a batch,
and librdkafka's read-ahead is capped by ``queued.max.messages.kbytes``. Kafka keeps no
delivery count, so ``attempts`` counts this consumer's deliveries of an offset that ended
neither acknowledged nor released after a transient failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from mm_bronze.bus.base import Message
from mm_bronze.errors import BusUnavailable

log = structlog.get_logger(__name__)
T = TypeVar("T")
Partition = tuple[str, int]
DeadLetterSink = Callable[[bytes, bytes, Sequence[tuple[str, bytes]]], Awaitable[None]]
_REBALANCING = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._NO_OFFSET,
}
_MISSING_TOPIC = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}
# Headers a dead letter gets after the message's own ones (a replay takes them off again).
DEAD_LETTER_HEADERS = (
    "reason",
    "source.topic",
    "source.partition",
    "source.offset",
    "source.group",
    "attempts",
)


class KafkaConsumer:
    """Implements ``Consumer`` for one topic; ``attempts`` counts local unfinished deliveries."""

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        group: str,
        *,
        dead_letter: DeadLetterSink,
        recreate_topic: Callable[[str], None],
        lag_log_interval: float,
    ) -> None:
        self.topic = topic
        self.group = group
        self._config = config
        self._sink = dead_letter
        self._recreate_topic = recreate_topic
        self._lag_interval = lag_log_interval
        self._consumer: Consumer | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._in_flight: dict[Partition, dict[int, None]] = {}  # offsets in fetch order
        self._fetched_end: dict[Partition, int] = {}
        self._committed: dict[Partition, int] = {}
        self._deliveries: dict[tuple[str, int, int], int] = {}
        self._paused_until: dict[Partition, float] = {}
        self._next_lag_log = 0.0
        self.lag: int | None = None

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-{self.topic}")
        await self._call(self._open)

    def _open(self) -> None:
        self._consumer = Consumer(self._config)
        self._consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._next_lag_log = time.monotonic() + self._lag_interval

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._thread is None:
            raise BusUnavailable("the kafka consumer is closed")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        return await self._call(self._fetch, max_messages, timeout)

    def _fetch(self, max_messages: int, timeout: float) -> list[Message]:
        consumer = self._live()
        self._resume_due(consumer)
        self._log_lag_if_due(consumer)
        # Wait for the first message only, then take whatever else is already there. Each
        # call may run rebalance callbacks, so its messages are registered before the next.
        out = self._take(consumer, 1, timeout)
        if out and max_messages > 1:
            out += self._take(consumer, max_messages - 1, 0)
        return out

    def _take(self, consumer: Consumer, count: int, timeout: float) -> list[Message]:
        try:
            raw = consumer.consume(count, timeout)
        except KafkaException as exc:
            raise BusUnavailable(f"kafka consume failed: {exc.args[0]}") from exc
        out: list[Message] = []
        for msg in raw:
            err = msg.error()
            if err is not None:
                self._on_fetch_error(err)
                continue
            topic, number, offset = msg.topic() or self.topic, msg.partition() or 0, msg.offset()
            partition, offset = (topic, number), offset or 0
            self._in_flight.setdefault(partition, {})[offset] = None
            self._fetched_end[partition] = offset + 1
            seen = self._deliveries.get((topic, number, offset), 0) + 1
            self._deliveries[(topic, number, offset)] = seen
            out.append(
                Message(
                    topic=topic,
                    key=msg.key() or b"",
                    value=msg.value() or b"",
                    attempts=seen,
                    handle=(number, offset),
                    headers=message_headers(msg),
                )
            )
        return out

    def _on_fetch_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            raise BusUnavailable(f"kafka consumer failed: {err.str()}")
        if err.code() in _MISSING_TOPIC:
            # The broker lost the topic (restarted without storage): make it again.
            log.warning("kafka topic missing, creating it", topic=self.topic)
            try:
                self._recreate_topic(self.topic)
            except BusUnavailable as exc:
                log.warning("kafka topic not created", topic=self.topic, error=str(exc))
            return
        log.warning("kafka consumer error", topic=self.topic, error=err.str())

    async def ack(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._call(self._ack, messages)

    def _ack(self, messages: Sequence[Message]) -> None:
        for message in messages:
            partition, offset = self._coordinates(message)
            self._in_flight.get(partition, {}).pop(offset, None)
            self._deliveries.pop((*partition, offset), None)
        self._commit(self._live(), list(self._in_flight))

    def _commit(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """Commit each partition's first unfinished offset, synchronously."""
        offsets = []
        for partition in partitions:
            pending = self._in_flight.get(partition)
            position = next(iter(pending)) if pending else self._fetched_end.get(partition)
            if position is not None and position > self._committed.get(partition, -1):
                offsets.append(TopicPartition(*partition, position))
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() in _REBALANCING:
                # The partitions moved on; their new owner redelivers (processing is idempotent).
                log.info("kafka commit skipped during rebalance", topic=self.topic)
                return
            raise BusUnavailable(f"kafka commit failed: {exc}") from exc
        for tp in offsets:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    async def release(
        self, messages: Sequence[Message], delay: float, *, counted: bool = False
    ) -> None:
        if messages:
            await self._call(self._release, messages, delay, counted)

    def _release(self, messages: Sequence[Message], delay: float, counted: bool) -> None:
        consumer = self._live()
        first: dict[Partition, int] = {}
        for message in messages:
            partition, offset = self._coordinates(message)
            if offset not in self._in_flight.get(partition, {}):
                continue  # already acknowledged or dead-lettered
            first[partition] = min(offset, first.get(partition, offset))
            key = (*partition, offset)
            if key in self._deliveries and not counted:  # nor is a transient failure
                self._deliveries[key] -= 1
        for partition, start in first.items():
            # Everything from the first released offset on is fetched again.
            pending = self._in_flight.get(partition, {})
            self._in_flight[partition] = {o: None for o in pending if o < start}
            self._fetched_end[partition] = start
            tp = TopicPartition(*partition, start)
            try:
                consumer.seek(tp)
                if delay > 0:
                    consumer.pause([tp])
                    self._paused_until[partition] = time.monotonic() + delay
            except KafkaException as exc:
                # Not assigned any more: the new owner starts from the committed offset.
                log.info("kafka seek skipped", topic=self.topic, error=str(exc.args[0]))

    def _resume_due(self, consumer: Consumer) -> None:
        now = time.monotonic()
        due = [p for p, until in self._paused_until.items() if until <= now]
        if due:
            consumer.resume([TopicPartition(*p) for p in due])
            for partition in due:
                del self._paused_until[partition]

    async def dead_letter(self, message: Message, reason: str) -> None:
        partition, offset = self._coordinates(message)
        values = (reason[:1000], partition[0], partition[1], offset, self.group, message.attempts)
        headers = [
            *message.headers,
            *(
                (name, str(value).encode())
                for name, value in zip(DEAD_LETTER_HEADERS, values, strict=True)
            ),
        ]
        await self._sink(message.key, message.value, headers)
        await self.ack([message])
        log.warning(
            "message dead-lettered",
            topic=partition[0],
            partition=partition[1],
            offset=offset,
            reason=reason,
        )

    async def close(self) -> None:
        """Commit what is finished, leave the group; idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(thread, self._close)
        finally:
            thread.shutdown(wait=False)

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            self._commit(consumer, list(self._in_flight))
        except BusUnavailable as exc:
            log.warning("kafka offsets not committed at close", topic=self.topic, error=str(exc))
        consumer.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("kafka partitions assigned", topic=self.topic, partitions=_numbers(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        try:
            self._commit(consumer, revoked)
        except BusUnavailable as exc:
            log.warning("kafka offsets not committed on revoke", topic=self.topic, error=str(exc))
        self._forget(revoked)
        log.info("kafka partitions revoked", topic=self.topic, partitions=_numbers(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget([(tp.topic, tp.partition) for tp in partitions])
        log.warning("kafka partitions lost", topic=self.topic, partitions=_numbers(partitions))

    def _forget(self, partitions: Sequence[Partition]) -> None:
        for partition in partitions:
            self._in_flight.pop(partition, None)
            self._fetched_end.pop(partition, None)
            self._committed.pop(partition, None)
            self._paused_until.pop(partition, None)
        gone = set(partitions)
        self._deliveries = {k: v for k, v in self._deliveries.items() if k[:2] not in gone}

    def _log_lag_if_due(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now < self._next_lag_log:
            return
        self._next_lag_log = now + self._lag_interval
        assigned = consumer.assignment()
        if not assigned:
            return
        lag = 0
        for tp in consumer.position(assigned):
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            committed = self._committed.get((tp.topic, tp.partition))
            start = committed if committed is not None else tp.offset
            if high >= 0 and start is not None and start >= 0:
                lag += max(high - start, 0)
        self.lag = lag
        log.info(
            "kafka consumer lag",
            topic=self.topic,
            group=self.group,
            lag=lag,
            partitions=_numbers(assigned),
        )

    def _live(self) -> Consumer:
        if self._consumer is None:
            raise BusUnavailable("the kafka consumer is closed")
        return self._consumer

    @staticmethod
    def _coordinates(message: Message) -> tuple[Partition, int]:
        assert isinstance(message.handle, tuple), "not a kafka message"
        number, offset = message.handle
        return (message.topic, int(number)), int(offset)


def message_headers(msg: KafkaMessage) -> tuple[tuple[str, bytes], ...]:
    """A record's headers, values as bytes."""
    raw = msg.headers() or []
    pairs = list(raw.items()) if isinstance(raw, dict) else raw
    return tuple(
        (name, value.encode() if isinstance(value, str) else value or b"") for name, value in pairs
    )


def _numbers(partitions: Sequence[TopicPartition]) -> list[int]:
    return sorted(tp.partition for tp in partitions)
