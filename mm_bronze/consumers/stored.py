"""The stored topic: one event per recorded submission, for the layers after bronze.

Produced after a batch's records are committed and before its offsets are, so each
submission is announced at least once (again when a batch is redelivered). Events are keyed
by the payload's SHA-256, like the ingest topics, and produced in the order recorded, so
those of one payload arrive in order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from mm_bronze.metadata.records import Recorded
from mm_bronze.models import IngestEvent, StoredEvent

# publish_many(topic, [(key, value), ...]): return once the broker holds every one, produced
# in order; raise ``BusUnavailable``.
PublishMany = Callable[[str, Sequence[tuple[bytes, bytes]]], Awaitable[None]]
_encoder = msgspec.json.Encoder()


def stored_events(
    recorded: Sequence[tuple[Recorded, IngestEvent]], stored_at: dt.datetime
) -> list[StoredEvent]:
    return [
        StoredEvent(
            uuid=event.uuid,
            sha256=event.sha256,
            storage_path=outcome.storage_path,
            format=event.format,
            content_type=event.content_type,
            version=event.version,
            subtype=event.subtype,
            client=event.client,
            source=event.source,
            duplicate_of=outcome.object_id if outcome.duplicate else None,
            received_at=event.received_at,
            stored_at=stored_at,
        )
        for outcome, event in recorded
    ]


class StoredTopic:
    """Announces recorded submissions on ``topic`` through ``publish_many``."""

    def __init__(self, publish_many: PublishMany, topic: str) -> None:
        self._publish_many = publish_many
        self.topic = topic

    async def announce(self, events: Sequence[StoredEvent]) -> None:
        """Return once every event is durable; raises ``BusUnavailable``."""
        # Produced in order, all at once: the idempotent producer keeps that order within a
        # partition.
        await self._publish_many(
            self.topic, [(e.sha256.encode(), _encoder.encode(e)) for e in events]
        )
