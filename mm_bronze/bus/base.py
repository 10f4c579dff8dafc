"""The bus interface: durable publish, batched consume, acknowledge after processing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec


class Message(msgspec.Struct, kw_only=True):
    """One message taken from the bus.

    ``attempts`` counts deliveries that ended without an acknowledgement (1 on the first
    delivery). ``handle`` is the implementation's own reference (queue row id, offset);
    ``headers`` the message's own headers (Kafka), kept when it is dead-lettered.
    """

    topic: str
    key: bytes
    value: bytes
    attempts: int
    handle: object = None
    headers: tuple[tuple[str, bytes], ...] = ()


class BusCounts(msgspec.Struct, frozen=True):
    """What waits on the bus: unprocessed messages per topic, and dead letters per topic."""

    backlog: dict[str, int]
    dead_letters: dict[str, int]


class Consumer(Protocol):
    """A consumer of one topic within one consumer group."""

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        """Return up to ``max_messages`` messages, waiting at most ``timeout`` seconds.

        Messages returned stay owned by this consumer until acked, released or
        dead-lettered; if the process dies, they are delivered again.
        Raises ``BusUnavailable`` when the bus cannot be reached.
        """
        ...

    async def ack(self, messages: Sequence[Message]) -> None:
        """Mark messages as fully processed; they are never delivered again."""
        ...

    async def release(
        self, messages: Sequence[Message], delay: float, *, counted: bool = False
    ) -> None:
        """Give messages back to be redelivered after ``delay``: after a transient failure
        (not a failed attempt), or with ``counted`` after a failure of their own (their
        next delivery's ``attempts`` is one more, so one that keeps failing reaches
        ``consumer.max_attempts`` and is dead-lettered)."""
        ...

    async def dead_letter(self, message: Message, reason: str) -> None:
        """Move a message that can never succeed aside, with its reason; it is acked."""
        ...

    async def close(self) -> None: ...


class Bus(Protocol):
    """A durable event bus (Kafka, or the PostgreSQL-backed queue when embedded)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """Return only once the message is durable. Raises ``BusUnavailable``."""
        ...

    async def consumer(self, topic: str, group: str) -> Consumer:
        """Open a consumer of ``topic`` in consumer group ``group``."""
        ...

    async def ping(self) -> None:
        """Raise ``BusUnavailable`` when the bus is not reachable (readiness)."""
        ...

    async def counts(self, groups: Mapping[str, str]) -> BusCounts:
        """The backlog of each topic in ``groups`` (topic → consumer group) and the dead
        letters kept; raises ``BusUnavailable``. Callers bound the wait themselves."""
        ...
