"""A backlog is drained in growing batches: claims double while they come back full."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_bronze.consumers import persist
from mm_bronze.consumers.persist import BACKLOG_GROWTH
from mm_bronze.settings import ConsumerSettings
from tests.consumers.harness import harness


async def test_a_backlog_is_stored_in_batches_larger_than_batch_size(
    dsn: str, tmp_path: Path
) -> None:
    settings = ConsumerSettings(concurrency=1, batch_size=5, linger=0)
    events = 5 * BACKLOG_GROWTH * 3
    async with harness(dsn, tmp_path, f"file://{tmp_path}", {}) as h:
        for n in range(events):
            await h.publish(b'{"resourceType": "Patient", "id": "b%d"}' % n)
        async with h.running(settings):
            await h.drained(60)
        assert await h.scalar("SELECT count(*) FROM ingestion.submissions") == events
        # One batch is one transaction: its rows share recorded_at. 5, 10, then 20 at a time.
        sizes = await h.scalar(
            "SELECT array_agg(n ORDER BY t) FROM (SELECT recorded_at t, count(*) n"
            " FROM ingestion.submissions GROUP BY recorded_at) b"
        )
        assert max(sizes) == 5 * BACKLOG_GROWTH
        assert len(sizes) < events / 5


async def test_a_backlog_of_large_events_keeps_batch_size(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five of these events hold more than GROWTH_BYTES: claims never grow past batch_size.
    monkeypatch.setattr(persist, "GROWTH_BYTES", 100)
    settings = ConsumerSettings(concurrency=1, batch_size=5, linger=0)
    events = 5 * BACKLOG_GROWTH * 3
    async with harness(dsn, tmp_path, f"file://{tmp_path}", {}) as h:
        for n in range(events):
            await h.publish(b'{"resourceType": "Patient", "id": "large%d"}' % n)
        async with h.running(settings):
            await h.drained(60)
        assert await h.scalar("SELECT count(*) FROM ingestion.submissions") == events
        sizes = await h.scalar(
            "SELECT array_agg(n ORDER BY t) FROM (SELECT recorded_at t, count(*) n"
            " FROM ingestion.submissions GROUP BY recorded_at) b"
        )
        assert max(sizes) == 5
