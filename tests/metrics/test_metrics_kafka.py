"""On Kafka: the backlog is the consumer group's lag, dead letters what the DLQ topic holds."""

from __future__ import annotations

from pathlib import Path

import httpx
from confluent_kafka import Producer

from tests.bus.kafka.conftest import kafka_env_for
from tests.metrics.scrape import Samples, scrape, value, wait_scrape
from tests.services.mm_bronze import MmBronze, free_port

ROUTE = "/ingest/fhir/json/R4/patient"


def test_backlog_is_the_group_lag_and_dead_letters_the_dlq_size(
    tmp_path: Path, kafka: str, dsn: str
) -> None:
    http_metrics, consumer_metrics = free_port(), free_port()
    env = kafka_env_for(kafka, dsn, RAW_STORAGE_URL=(tmp_path / "raw").as_uri())
    topic, dlq = env["KAFKA_BRONZE_API_TOPIC"], env["MM_BRONZE_KAFKA_DLQ_TOPIC"]
    http = MmBronze(
        tmp_path / "http", "--http", env={**env, "MM_BRONZE_METRICS_PORT": str(http_metrics)}
    )
    consumers = MmBronze(
        tmp_path / "consumers",
        "--consumers",
        env={**env, "MM_BRONZE_METRICS_PORT": str(consumer_metrics)},
    )
    with http:
        for n in range(3):
            body = b'{"resourceType": "Patient", "id": "k%d"}' % n
            assert httpx.post(http.url + ROUTE, content=body, timeout=30).status_code == 202
        producer = Producer({"bootstrap.servers": kafka})
        producer.produce(topic, b"\xc1 not an event", b"poison")
        assert producer.flush(10) == 0
        before = scrape(f"http://127.0.0.1:{http_metrics}/metrics")
        assert value(before, "mm_bronze_bus_backlog", topic=topic) == 4  # nothing committed
        assert value(before, "mm_bronze_dead_letters", topic=dlq) == 0
        with consumers:

            def drained(samples: Samples) -> bool:
                return value(samples, "mm_bronze_bus_backlog", topic=topic) == 0 and bool(
                    value(samples, "mm_bronze_dead_letters", topic=dlq)
                )

            after = wait_scrape(f"http://127.0.0.1:{consumer_metrics}/metrics", drained, 120)
            assert value(after, "mm_bronze_dead_letters", topic=dlq) == 1
            assert value(after, "mm_bronze_stored_total", source="api", result="stored") == 3
            assert value(after, "mm_bronze_stored_total", source="api", result="failed") == 1
            on_http = scrape(http.url + "/metrics")
            assert value(on_http, "mm_bronze_bus_backlog", topic=topic) == 0
            assert value(on_http, "mm_bronze_ready", check="bus") == 1
