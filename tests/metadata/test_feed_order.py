"""The feed's cursor is safe with concurrent writers: a reader that has seen seq N never
later finds a new submission with a smaller seq.

A recording transaction is held open after it has drawn its seq (its foreign-key check
waits on a row lock the test holds) while a second transaction records another payload.
With seqs drawn in commit order the second one waits, so a reader following ``after``
cannot step past the first one's seq before it commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from pathlib import Path

import psycopg

from mm_bronze.metadata import Database, records
from mm_bronze.metadata.submissions import SubmissionQuery, list_submissions
from mm_bronze.models import IngestEvent


def event(body: bytes) -> IngestEvent:
    return IngestEvent(
        uuid=str(uuid.uuid4()),
        source="api",
        format="fhir",
        content_type="json",
        version="R4",
        subtype="patient",
        sha256=hashlib.sha256(body).hexdigest(),
        size=len(body),
        received_at=dt.datetime.now(dt.UTC),
        client="alice",
        payload=body,
    )


def test_a_reader_cannot_pass_a_submission_still_committing(dsn: str, tmp_path: Path) -> None:
    asyncio.run(_scenario(dsn, tmp_path))


async def _scenario(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path) as db:
        first = event(b"first")
        (recorded,) = await records.record_batch(db.pool, [(first, "file:///first")])
        page = await list_submissions(db.pool, SubmissionQuery(after=0), owner=None)
        cursor = page.next
        assert cursor is not None
        seen = [item.uuid for item in page.items]
        holder = await psycopg.AsyncConnection.connect(dsn)
        try:
            # Hold the first object's row: a duplicate of it blocks in its foreign-key check,
            # after it has drawn its seq, before it commits.
            await holder.execute(
                "SELECT 1 FROM ingestion.raw_ingestion WHERE object_id = %s FOR UPDATE",
                (recorded.object_id,),
            )
            duplicate = event(b"first")
            slow = asyncio.create_task(
                records.record_batch(db.pool, [(duplicate, "file:///first")])
            )
            await asyncio.sleep(0.5)
            other = event(b"other")
            fast = asyncio.create_task(records.record_batch(db.pool, [(other, "file:///other")]))
            await asyncio.sleep(1)
            page = await list_submissions(db.pool, SubmissionQuery(after=cursor), owner=None)
            seen += [item.uuid for item in page.items]
            cursor = page.next
        finally:
            await holder.rollback()
            await holder.close()
        await asyncio.wait_for(asyncio.gather(slow, fast), 30)
        page = await list_submissions(db.pool, SubmissionQuery(after=cursor), owner=None)
        seen += [item.uuid for item in page.items]
    assert sorted(seen) == sorted([first.uuid, duplicate.uuid, other.uuid])
