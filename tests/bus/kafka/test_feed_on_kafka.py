"""The GET /submissions feed with Kafka as the bus: a reader misses nothing through a
consumer crash and restart."""

from __future__ import annotations

from pathlib import Path

from tests.bus.kafka.conftest import kafka_env_for
from tests.ingest.http.feed import feed_sees_everything


def test_a_reader_sees_every_submission_through_crashes(
    kafka: str, dsn: str, tmp_path: Path
) -> None:
    env = kafka_env_for(kafka, dsn, MM_BRONZE_CONSUMER_BATCH_SIZE="20")
    feed_sees_everything(tmp_path, env, dsn, total_first=600, total_second=150)
