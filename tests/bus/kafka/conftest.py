"""Fixtures for the Kafka bus: one broker per session, fresh topic names per user."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.services.kafka import TEST_CONSUMER_ENV, kafka_servers

KafkaEnv = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real broker (Tansu, or MM_BRONZE_TEST_KAFKA)."""
    with kafka_servers(tmp_path_factory.mktemp("kafka")) as servers:
        yield servers


def kafka_env_for(servers: str, dsn: str, **extra: str) -> dict[str, str]:
    """Environment for mm-bronze on ``servers``, with topics and groups of its own."""
    tag = uuid.uuid4().hex[:8]
    return {
        "POSTGRES_DSN": dsn,
        "KAFKA_SERVERS": servers,
        "KAFKA_BRONZE_API_TOPIC": f"bronze-ingest-api-{tag}",
        "KAFKA_BRONZE_API_GROUP": f"bronze-storage-api-{tag}",
        "KAFKA_BRONZE_SFTP_TOPIC": f"bronze-ingest-sftp-{tag}",
        "KAFKA_BRONZE_SFTP_GROUP": f"bronze-storage-sftp-{tag}",
        # MLLP too: a group shared across tests keeps the members of killed processes until
        # their session times out, and every later join and leave waits for them.
        "MM_BRONZE_KAFKA_MLLP_TOPIC": f"bronze-ingest-mllp-{tag}",
        "MM_BRONZE_KAFKA_MLLP_GROUP": f"bronze-storage-mllp-{tag}",
        "MM_BRONZE_KAFKA_DLQ_TOPIC": f"bronze-ingest-dlq-{tag}",
        **TEST_CONSUMER_ENV,
        **extra,
    }


@pytest.fixture(scope="module")
def module_kafka_env(kafka: str, module_dsn: str) -> dict[str, str]:
    # Compressed, as a production deployment would run it.
    return kafka_env_for(kafka, module_dsn, KAFKA_COMPRESSION_TYPE="zstd")
