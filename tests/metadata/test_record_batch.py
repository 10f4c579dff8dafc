"""Recording a batch: one object row per payload, one submission per event, lineage kept,
and a redelivered batch changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from pathlib import Path

from mm_bronze.metadata import Database, records
from mm_bronze.models import IngestEvent

T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def event(body: bytes, seconds: int, **metadata: str) -> IngestEvent:
    return IngestEvent(
        uuid=str(uuid.uuid4()),
        source="api",
        format="fhir",
        content_type="json",
        version="R4",
        subtype="patient",
        sha256=hashlib.sha256(body).hexdigest(),
        size=len(body),
        received_at=T0 + dt.timedelta(seconds=seconds),
        client="alice",
        payload=body,
        source_metadata=dict(metadata),
    )


def test_duplicates_in_one_batch_point_at_the_earliest(dsn: str, tmp_path: Path) -> None:
    asyncio.run(_duplicates(dsn, tmp_path))


async def _duplicates(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path) as db:
        # Listed out of arrival order: the one received first is the original.
        late, early, later = event(b"a", 5), event(b"a", 1), event(b"a", 9)
        other = event(b"b", 3, note='tab\there, "quoted", back\\slash, é')
        items = [(late, "file:///late"), (early, "file:///early"), (later, "file:///later"),
                 (other, "file:///other")]  # fmt: skip
        recorded = await records.record_batch(db.pool, items, compression="zstd")
        assert [r.uuid for r in recorded] == [late.uuid, early.uuid, later.uuid, other.uuid]
        assert [r.object_id for r in recorded] == [early.uuid] * 3 + [other.uuid]
        assert [r.storage_path for r in recorded] == ["file:///early"] * 3 + ["file:///other"]
        assert [r.duplicate for r in recorded] == [True, False, True, False]

        again = await records.record_batch(db.pool, items, compression="zstd")
        assert again == recorded

        async with db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT object_id::text, encode(fingerprint, 'hex'), object_size, received_at,"
                " compression, source_metadata FROM ingestion.raw_ingestion ORDER BY received_at"
            )
            assert await cur.fetchall() == [
                (early.uuid, early.sha256, 1, early.received_at, "zstd", {"client": "alice"}),
                (other.uuid, other.sha256, 1, other.received_at, "zstd",
                 {"note": 'tab\there, "quoted", back\\slash, é', "client": "alice"}),
            ]  # fmt: skip
            cur = await conn.execute(
                "SELECT submission_id::text, object_id::text, is_duplicate, client"
                " FROM ingestion.submissions ORDER BY seq"
            )
            rows = {row[0]: row[1:] for row in await cur.fetchall()}
            assert rows == {
                late.uuid: (early.uuid, True, "alice"),
                early.uuid: (early.uuid, False, "alice"),
                later.uuid: (early.uuid, True, "alice"),
                other.uuid: (other.uuid, False, "alice"),
            }
            cur = await conn.execute(
                "SELECT object_id::text, status FROM ingestion.ingestion_log ORDER BY log_id"
            )
            log = sorted(await cur.fetchall())
            want = [(late.uuid, "duplicate"), (early.uuid, "stored"), (later.uuid, "duplicate"),
                    (other.uuid, "stored")]  # fmt: skip
            assert log == sorted(want)


def test_a_payload_recorded_before_makes_a_duplicate(dsn: str, tmp_path: Path) -> None:
    asyncio.run(_recorded_before(dsn, tmp_path))


async def _recorded_before(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path) as db:
        first = event(b"x", 1)
        await records.record_batch(db.pool, [(first, "file:///first")])
        resent, new = event(b"x", 2), event(b"y", 2)
        recorded = await records.record_batch(
            db.pool, [(resent, "file:///second"), (new, "file:///new")]
        )
        assert [(r.object_id, r.storage_path, r.duplicate) for r in recorded] == [
            (first.uuid, "file:///first", True),
            (new.uuid, "file:///new", False),
        ]
        assert await records.record_batch(db.pool, []) == []
