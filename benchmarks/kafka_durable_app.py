"""The Kafka bound: the bare ceiling (``ceiling_app``) made durable on Kafka in the simplest way.

Each request's body is read and hashed like the ceiling's, then produced to a topic of six
partitions with the door's producer settings (idempotent, ``acks=all``, ``linger.ms`` 2), and
the 202 waits for its delivery report. One thread polls the producer and hands the reports of
each poll to the event loop in one call, as the door's bus does. No validation, no "accepted"
entry in PostgreSQL, no framework beyond the ceiling's: the least a door that answers only
once Kafka holds the event spends per request.

    python -m benchmarks.kafka_durable_app PORT BOOTSTRAP_SERVERS TOPIC
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks.ceiling_app import hashed_body, run

Settle = tuple["asyncio.Future[KafkaError | None]", KafkaError | None]


class DurableProducer:
    """``produce(key, value)`` returns once the broker acknowledged the event (acks=all)."""

    def __init__(self, servers: str, topic: str) -> None:
        self._topic = topic
        self._producer = Producer(
            {
                "bootstrap.servers": servers,
                "linger.ms": 2,
                "enable.idempotence": True,
                "acks": "all",
            }
        )
        self._served: list[Settle] = []  # reports of the poll in progress
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._producer.flush(10)

    def _poll(self) -> None:
        assert self._loop is not None
        while not self._stop.is_set():
            self._producer.poll(0.1)
            served, self._served = self._served, []
            if served:
                self._loop.call_soon_threadsafe(_settle_all, served)

    def _reporter(
        self, delivered: asyncio.Future[KafkaError | None]
    ) -> Callable[[KafkaError | None, object], None]:
        def report(err: KafkaError | None, _msg: object) -> None:
            self._served.append((delivered, err))

        return report

    async def produce(self, key: bytes, value: bytes) -> None:
        delivered: asyncio.Future[KafkaError | None] = asyncio.get_running_loop().create_future()
        self._producer.produce(self._topic, value, key, on_delivery=self._reporter(delivered))
        err = await delivered
        if err is not None:
            raise RuntimeError(f"kafka delivery failed: {err.name()}")


def _settle_all(served: list[Settle]) -> None:
    for delivered, err in served:
        if not delivered.done():
            delivered.set_result(err)


def make_app(producer: DurableProducer) -> Starlette:
    async def ingest(request: Request) -> JSONResponse:
        body, digest = await hashed_body(request)
        await producer.produce(digest.hex().encode(), body)
        return JSONResponse({"status": "accepted", "size": len(body)}, status_code=202)

    return Starlette(routes=[Route("/ingest/{a}/{b}/{c}/{d}", ingest, methods=["POST"])])


def create_topic(servers: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": servers})  # kept until the answers are in
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=6, replication_factor=1)], request_timeout=10
    )
    for future in futures.values():
        try:
            future.result()
        except Exception as exc:  # already there: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


async def _main(port: int, servers: str, topic: str) -> None:
    producer = DurableProducer(servers, topic)
    producer.start(asyncio.get_running_loop())
    try:
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        await serve(make_app(producer), config)  # type: ignore[arg-type]
    finally:
        producer.stop()


def main() -> None:
    port, servers, topic = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    create_topic(servers, topic)
    run(_main(port, servers, topic))


if __name__ == "__main__":
    main()
