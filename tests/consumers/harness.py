"""A persist pipeline in the test process: real PostgreSQL, the embedded queue, real storage."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mm_bronze.bus.pgqueue import PgQueueBus
from mm_bronze.consumers.persist import PersistPipeline
from mm_bronze.metadata import Database
from mm_bronze.models import IngestEvent, encode_event
from mm_bronze.settings import ConsumerSettings, StorageSettings
from mm_bronze.storage import StagedBlob, StorageRegistry
from tests.polling import wait_for_async

TOPIC = "bronze-ingest-api"


class Harness:
    """Publish events, run the pipeline, and look at what it recorded."""

    def __init__(self, db: Database, bus: PgQueueBus, storage: StorageRegistry) -> None:
        self.db = db
        self.bus = bus
        self.storage = storage
        self.pipeline: PersistPipeline | None = None

    async def publish(
        self,
        payload: bytes,
        *,
        staged: bool = False,
        content_type: str = "json",
        subtype: str = "bundle",
    ) -> IngestEvent:
        """Publish ``payload`` as the HTTP door would: inline, or claim-checked."""
        submission = str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC)
        staged_path = None
        if staged:
            blob = await StagedBlob.create(self.storage.staging, f"api/{submission}")
            for start in range(0, len(payload), 1 << 20):
                await blob.write(payload[start : start + (1 << 20)])
            await blob.commit()
            staged_path = blob.url
        event = IngestEvent(
            uuid=submission,
            source="api",
            format="fhir" if content_type == "json" else "hl7",
            content_type=content_type,
            version="R4" if content_type == "json" else "2.5.1",
            subtype=subtype,
            sha256=hashlib.sha256(payload).hexdigest(),
            size=len(payload),
            received_at=now,
            payload=None if staged else payload,
            staged_path=staged_path,
        )
        await self.bus.publish(TOPIC, event.sha256.encode(), encode_event(event))
        return event

    @contextlib.asynccontextmanager
    async def running(self, settings: ConsumerSettings | None = None) -> AsyncIterator[None]:
        """Run one pipeline until the block ends."""
        consumer = await self.bus.consumer(TOPIC, "bronze-storage-api")
        self.pipeline = PersistPipeline(
            consumer, self.storage, self.db.pool, settings or ConsumerSettings()
        )
        stop = asyncio.Event()
        task = asyncio.create_task(self.pipeline.run(stop))
        try:
            yield
        finally:
            stop.set()
            await task

    async def drained(self, timeout: float = 120) -> None:
        await wait_for_async(
            self.depth, lambda depth: depth == 0, timeout=timeout, what="the queue drained"
        )

    async def depth(self) -> int:
        return await self.bus.depth(TOPIC)

    async def scalar(self, sql: str) -> Any:
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(sql)
            row = await cur.fetchone()
            return row[0] if row else None


@contextlib.asynccontextmanager
async def harness(
    dsn: str,
    data_dir: Path,
    base_url: str,
    options: dict[str, Any],
    *,
    compression: str = "none",
) -> AsyncIterator[Harness]:
    """Database, queue and storage under ``base_url`` (raw objects in ``raw/``)."""
    db = Database(dsn, data_dir, min_size=1, max_size=6)
    await db.open()
    try:
        bus = PgQueueBus(db.pool)
        await bus.open()
        storage = StorageRegistry(
            f"{base_url}/raw",
            f"{base_url}/_staging",
            StorageSettings().path_template,
            options,
            compression=compression,
        )
        async with storage:
            yield Harness(db, bus, storage)
        await bus.close()
    finally:
        await db.close()
