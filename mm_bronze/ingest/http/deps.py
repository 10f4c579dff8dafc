"""What the HTTP door needs, opened and wired by the runtime."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze import formats
from mm_bronze.bus.dead_letters import DeadLetters
from mm_bronze.formats.workers import ValidationWorkers
from mm_bronze.ingest.http.auth import Authenticator
from mm_bronze.metadata.feed import FeedListener
from mm_bronze.metrics import Metrics
from mm_bronze.settings import HttpSettings
from mm_bronze.storage import StorageRegistry

# publish(topic, key, value, submission, client): return once the event is durable and the
# submission is recorded as accepted, sent by ``client`` (None: anonymous); raise
# ``BusUnavailable`` when the event is not durable.
PublishAccepted = Callable[[str, bytes, bytes, str, str | None], Awaitable[None]]


@dataclass
class HttpDeps:
    settings: HttpSettings
    publish: PublishAccepted
    topic: str
    storage: StorageRegistry
    pool: AsyncConnectionPool[AsyncConnection]
    auth: Authenticator
    readiness: Callable[[], Awaitable[dict[str, str]]]
    metrics: Metrics
    validation_level: str = formats.STRICT
    validation_workers: ValidationWorkers | None = None
    dead_letters: DeadLetters | None = None  # the admin routes under /dead-letters
    feed: FeedListener | None = None  # wakes long-polling readers of GET /submissions
