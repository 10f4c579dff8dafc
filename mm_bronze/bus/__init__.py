"""Event bus adapters: Kafka and the embedded PostgreSQL-backed queue."""

from mm_bronze.bus.base import Bus, Consumer, Message

__all__ = ["Bus", "Consumer", "Message"]
