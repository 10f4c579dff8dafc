"""A backlog is drained in growing batches: claims double while they come back full."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_bronze.consumers import persist
from mm_bronze.consumers.persist import BACKLOG_GROWTH
from mm_bronze.settings import ConsumerSettings
from tests.consumers.harness import harness

BATCH = 5
EVENTS = BATCH * BACKLOG_GROWTH * 3


async def stored_batch_sizes(dsn: str, tmp_path: Path) -> list[int]:
    """Drain a backlog of EVENTS with batch_size BATCH: the sizes of the stored batches."""
    settings = ConsumerSettings(concurrency=1, batch_size=BATCH, linger=0)
    async with harness(dsn, tmp_path, f"file://{tmp_path}", {}) as h:
        for n in range(EVENTS):
            await h.publish(b'{"resourceType": "Patient", "id": "b%d"}' % n)
        async with h.running(settings):
            await h.drained(60)
        assert await h.scalar("SELECT count(*) FROM ingestion.submissions") == EVENTS
        # One batch is one transaction: its rows share recorded_at.
        sizes: list[int] = await h.scalar(
            "SELECT array_agg(n ORDER BY t) FROM (SELECT recorded_at t, count(*) n"
            " FROM ingestion.submissions GROUP BY recorded_at) b"
        )
        return sizes


async def test_a_backlog_is_stored_in_batches_larger_than_batch_size(
    dsn: str, tmp_path: Path
) -> None:
    sizes = await stored_batch_sizes(dsn, tmp_path)  # 5, 10, then 20 at a time
    assert max(sizes) == BATCH * BACKLOG_GROWTH
    assert len(sizes) < EVENTS / BATCH


async def test_a_backlog_of_large_events_keeps_batch_size(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five of these events hold more than GROWTH_BYTES: claims never grow past batch_size.
    monkeypatch.setattr(persist, "GROWTH_BYTES", 100)
    sizes = await stored_batch_sizes(dsn, tmp_path)
    assert max(sizes) == BATCH
