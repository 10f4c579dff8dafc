"""The Kafka bus (confluent-kafka): durable publish bridged into asyncio.

A producer thread serves delivery reports; ``publish`` awaits a future that the report
settles, so it returns only once the broker holds the event on every in-sync replica
(idempotent producer, ``acks=all``). Topics are created when missing. A producer that hit a
fatal error or let an event time out is retired and replaced by a fresh one (a broker that
lost its state no longer knows the old producer id and would refuse it forever); the
retired producer keeps being served until what it still holds is delivered or failed.

Delivery reports served by the producer thread are handed to the event loop in one call
per ``poll`` (one wakeup of the loop for every report that poll served), not one per event.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from mm_bronze.bus.base import BusCounts
from mm_bronze.bus.kafka_consumer import KafkaConsumer
from mm_bronze.bus.kafka_lag import KafkaLag
from mm_bronze.bus.stamp import stamped
from mm_bronze.errors import BusUnavailable, ConfigError
from mm_bronze.settings import KafkaSettings, check_kafka

log = structlog.get_logger(__name__)

ADMIN_TIMEOUT = 10.0
PING_TIMEOUT = 3.0
_MISSING_TOPIC = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}
_RETRYABLE = {KafkaError._FATAL}

Header = tuple[str, bytes]
Event = tuple[bytes, bytes, Sequence[Header]]
Report = tuple[asyncio.AbstractEventLoop, "asyncio.Future[KafkaError | None]", KafkaError | None]


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """Settings shared by producer, consumers and admin client (incl. SASL/SSL options)."""
    return {
        "bootstrap.servers": kafka.servers,
        "client.id": "mm-bronze",
        # librdkafka's own lines go through logging (JSON like every other), not to stderr.
        "logger": logging.getLogger("mm_bronze.kafka"),
        **{key: _option_value(value) for key, value in kafka.options.items()},
    }


def _option_value(value: Any) -> Any:
    # librdkafka wants strings, numbers or booleans; TOML and JSON give these already.
    return value if isinstance(value, str | int | float | bool) else str(value)


class KafkaBus:
    """A ``Bus`` on Kafka; one producer per process, one consumer per ``consumer()`` call."""

    def __init__(
        self, settings: KafkaSettings, *, inline_limit: int, deployment: str | None = None
    ) -> None:
        check_kafka(settings, inline_limit)
        self._settings = settings
        # Stamped on every event published (``mm_bronze.bus.stamp``), when known.
        self._stamp = deployment.encode() if deployment else None
        self._producer: Producer | None = None
        self._admin: AdminClient | None = None
        self._generation = 0
        self._stale_generation = -1
        self._retired: list[Producer] = []
        self._closing = threading.Event()
        self._poller: threading.Thread | None = None
        self._poller_id: int | None = None
        self._reports: deque[Report] = deque()  # served on the producer thread, not handed on
        self._topics: set[str] = set()
        self._consumers: list[KafkaConsumer] = []
        self._lag = KafkaLag(self._consumer_config, settings.dlq_topic)

    async def open(self) -> None:
        """Connect and create the dead-letter and per-source topics when missing."""
        self._closing.clear()
        try:
            self._admin = AdminClient(client_config(self._settings))
            self._producer = self._new_producer()
        except KafkaException as exc:
            raise ConfigError(f"invalid kafka setting (kafka.options?): {exc.args[0]}") from exc
        self._poller = threading.Thread(target=self._serve_reports, name="kafka-producer")
        self._poller.daemon = True
        self._poller.start()
        kafka = self._settings
        try:
            await self.ensure_topics([kafka.dlq_topic, kafka.api_topic, kafka.sftp_topic])
        except BusUnavailable:
            await self.close()
            raise
        log.info("kafka bus open", servers=kafka.servers, partitions=kafka.partitions)

    async def close(self) -> None:
        """Close consumers, deliver what is queued (bounded by the publish timeout), stop."""
        for consumer in self._consumers:
            await consumer.close()
        self._consumers.clear()
        await asyncio.to_thread(self._lag.close)
        producer, self._producer = self._producer, None
        if producer is not None:
            remaining = await asyncio.to_thread(producer.flush, self._settings.publish_timeout)
            if remaining:
                log.warning("kafka events undelivered at shutdown", count=remaining)
        self._closing.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
            self._poller = None

    def _new_producer(self) -> Producer:
        self._generation += 1
        kafka = self._settings
        config = {
            "linger.ms": 2,
            **client_config(kafka),
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": kafka.compression_type,
            "message.max.bytes": kafka.max_message_size,
            "message.timeout.ms": int(kafka.publish_timeout * 1000),
            "error_cb": functools.partial(self._on_producer_error, self._generation),
            "logger": logging.getLogger("mm_bronze.kafka.producer"),
        }
        return Producer(config)

    def _on_producer_error(self, generation: int, err: KafkaError) -> None:
        if err.fatal():
            self._retire(generation, err.str())
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("kafka brokers unreachable", error=err.str())

    def _retire(self, generation: int, reason: str) -> None:
        if generation == self._generation and self._stale_generation != generation:
            self._stale_generation = generation
            log.warning("kafka producer retired, starting a new one", reason=reason)

    def _serve_reports(self) -> None:
        """The producer thread: serve delivery reports; swap in a new producer when asked."""
        self._poller_id = threading.get_ident()
        try:
            self._serve_reports_until_closed()
        finally:
            self._poller_id = None
            self._hand_over_reports()

    def _serve_reports_until_closed(self) -> None:
        while not self._closing.is_set():
            producer = self._producer
            if producer is None:
                self._closing.wait(0.05)
                continue
            producer.poll(0.1)
            for old in list(self._retired):
                old.poll(0)
                if len(old) == 0:
                    self._retired.remove(old)
            self._hand_over_reports()
            if self._stale_generation == self._generation and producer is self._producer:
                self._retired.append(producer)
                self._producer = self._new_producer()

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[Header] = ()
    ) -> None:
        """Return once the broker acknowledged ``value`` with acks=all; else BusUnavailable."""
        await self._deliver(topic, [(key, value, self._stamped(headers))])

    async def publish_many(self, topic: str, events: Sequence[tuple[bytes, bytes]]) -> None:
        """``publish`` for every (key, value), handed to the producer in order at once, with
        one wait for all their reports (no task per event); returns once every one is
        acknowledged; else BusUnavailable."""
        if events:
            stamp = self._stamped(())
            await self._deliver(topic, [(key, value, stamp) for key, value in events])

    def _stamped(self, headers: Sequence[Header]) -> Sequence[Header]:
        """``headers`` with the deployment's stamp, when it is known (``stamp.stamped``)."""
        return headers if self._stamp is None else stamped(headers, self._stamp)

    async def _deliver(self, topic: str, events: Sequence[Event]) -> None:
        await self.ensure_topics([topic])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.publish_timeout
        while True:
            errors = await self._produce_all(topic, events)
            failed = [
                (event, err) for event, err in zip(events, errors, strict=True) if err is not None
            ]
            if not failed:
                return
            missing = False
            for _event, err in failed:
                if err.code() in _MISSING_TOPIC and loop.time() < deadline:
                    missing = True
                elif not (loop.time() < deadline and (err.code() in _RETRYABLE or err.fatal())):
                    raise BusUnavailable(f"kafka delivery failed: {err.name()}")
            if missing:
                # A broker that lost its topics (restarted without storage): make them again.
                self._topics.discard(topic)
                await self.ensure_topics([topic])
            events = [event for event, _err in failed]
            await asyncio.sleep(0.05)

    async def _produce_all(self, topic: str, events: Sequence[Event]) -> list[KafkaError | None]:
        """Produce ``events`` in order; each one's delivery error, or None once acknowledged."""
        producer, generation = self._producer, self._generation
        if producer is None:
            raise BusUnavailable("the kafka bus is closed")
        loop = asyncio.get_running_loop()
        reports: list[asyncio.Future[KafkaError | None]] = []
        refused: list[KafkaError | None] = []
        for key, value, headers in events:
            delivered: asyncio.Future[KafkaError | None] = loop.create_future()
            try:
                producer.produce(
                    topic,
                    value,
                    key,
                    headers=list(headers) or None,
                    on_delivery=self._reporter(loop, delivered),
                )
            except BufferError as exc:
                raise BusUnavailable("kafka producer queue is full") from exc
            except KafkaException as exc:
                err = exc.args[0]
                if isinstance(err, KafkaError) and err.fatal():
                    self._retire(generation, err.str())
                    refused = [err] * (len(events) - len(reports))
                    break
                raise BusUnavailable(f"kafka refused the event: {exc}") from exc
            reports.append(delivered)
        if len(reports) == 1:
            errors = [await reports[0]]
        else:
            errors = list(await asyncio.gather(*reports)) if reports else []
        if any(err is not None and err.code() == KafkaError._MSG_TIMED_OUT for err in errors):
            self._retire(generation, "an event timed out")
        return errors + refused

    def _reporter(
        self, loop: asyncio.AbstractEventLoop, delivered: asyncio.Future[KafkaError | None]
    ) -> Callable[[KafkaError | None, object], None]:
        def report(err: KafkaError | None, _msg: object) -> None:
            if threading.get_ident() == self._poller_id:
                self._reports.append((loop, delivered, err))  # handed over after this poll
                return
            try:  # served elsewhere (``flush`` at close): hand it over now
                loop.call_soon_threadsafe(_settle, delivered, err)
            except RuntimeError:  # the loop is gone: nobody waits for this report
                pass

        return report

    def _hand_over_reports(self) -> None:
        """Settle the reports served so far: one call into each waiting loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Report]] = {}
        while self._reports:
            report = self._reports.popleft()
            by_loop.setdefault(report[0], []).append(report)
        for loop, reports in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, reports)
            except RuntimeError:  # the loop is gone: nobody waits for these reports
                pass

    async def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create the topics not yet known to exist; raises ``BusUnavailable``."""
        missing = sorted(set(topics) - self._topics)
        if missing:
            await asyncio.to_thread(self.create_topics, missing)

    def create_topics(self, topics: Sequence[str]) -> None:
        """Create ``topics`` when missing (blocking; any thread)."""
        admin = self._admin
        if admin is None:
            raise BusUnavailable("the kafka bus is closed")
        kafka = self._settings
        wanted = [
            NewTopic(
                topic,
                num_partitions=kafka.partitions,
                replication_factor=kafka.replication_factor,
                config={"max.message.bytes": str(kafka.max_message_size)},
            )
            for topic in topics
        ]
        futures = admin.create_topics(wanted, request_timeout=ADMIN_TIMEOUT)
        for topic, future in futures.items():
            try:
                future.result(timeout=ADMIN_TIMEOUT + 1)
                log.info("kafka topic created", topic=topic, partitions=kafka.partitions)
            except KafkaException as exc:
                err = exc.args[0]
                if not (
                    isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    raise BusUnavailable(
                        f"cannot create kafka topic {topic} at {kafka.servers} (is the broker"
                        f" reachable?): {exc}"
                    ) from exc
            except TimeoutError as exc:
                raise BusUnavailable(
                    f"kafka at {kafka.servers} did not answer creating topic {topic}"
                ) from exc
            self._topics.add(topic)

    async def consumer(self, topic: str, group: str) -> KafkaConsumer:
        await self.ensure_topics([topic])
        consumer = KafkaConsumer(
            self._consumer_config(group),
            topic,
            group,
            dead_letter=self._dead_letter,
            recreate_topic=self._recreate_topic,
            lag_log_interval=self._settings.lag_log_interval,
        )
        await consumer.open()
        self._consumers.append(consumer)
        return consumer

    def _consumer_config(self, group: str) -> dict[str, Any]:
        kafka = self._settings
        return {
            "fetch.wait.max.ms": 100,
            "queued.max.messages.kbytes": 16384,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": kafka.session_timeout_ms,
            "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
            **client_config(kafka),
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "logger": logging.getLogger("mm_bronze.kafka.consumer"),
        }

    async def _dead_letter(self, key: bytes, value: bytes, headers: Sequence[Header]) -> None:
        # Not stamped again: the event keeps its own headers (its stamp among them) before the
        # ones dead-lettering adds, which a replay removes.
        await self._deliver(self._settings.dlq_topic, [(key, value, headers)])

    async def counts(self, groups: Mapping[str, str]) -> BusCounts:
        """Each group's lag on its topic, and the messages the dead-letter topic holds."""
        return await self._lag.counts(groups)

    def _recreate_topic(self, topic: str) -> None:
        self._topics.discard(topic)
        self.create_topics([topic])

    async def ping(self) -> None:
        """Raise ``BusUnavailable`` unless a broker answers a metadata request quickly."""
        producer = self._producer
        if producer is None:
            raise BusUnavailable("the kafka bus is closed")
        try:
            await asyncio.to_thread(producer.list_topics, None, PING_TIMEOUT)
        except KafkaException as exc:
            raise BusUnavailable(f"kafka unreachable: {exc.args[0]}") from exc


def _settle_all(reports: list[Report]) -> None:
    for _loop, future, err in reports:
        _settle(future, err)


def _settle(future: asyncio.Future[KafkaError | None], err: KafkaError | None) -> None:
    if not future.done():
        future.set_result(err)
