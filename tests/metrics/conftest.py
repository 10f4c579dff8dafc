"""The Kafka broker fixture, shared with the bus tests."""

from tests.bus.kafka.conftest import kafka  # noqa: F401 (fixture)
