"""The embedded queue's consumers vacuum its table as they acknowledge messages, instead of
leaving the dead row versions to an autovacuum that comes about once a minute."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_bronze.bus import pg_vacuum
from mm_bronze.settings import ConsumerSettings
from tests.consumers.harness import Harness, harness
from tests.polling import wait_for_async

EVENTS = 40
VACUUMS = "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'bus.messages'::regclass"


async def drain(h: Harness) -> None:
    for n in range(EVENTS):
        await h.publish(b'{"resourceType": "Patient", "id": "v%d"}' % n)
    async with h.running(ConsumerSettings(concurrency=1, batch_size=10, linger=0)):
        await h.drained(60)


async def test_the_consumers_vacuum_the_queue_as_they_acknowledge(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_vacuum, "VACUUM_EVERY", 10)
    async with harness(dsn, tmp_path, f"file://{tmp_path}", {}) as h:
        assert await h.scalar(VACUUMS) == 0
        await drain(h)
        await wait_for_async(
            lambda: h.scalar(VACUUMS), lambda vacuums: vacuums > 0, timeout=10, what="a vacuum"
        )
        assert await h.scalar("SELECT count(*) FROM ingestion.submissions") == EVENTS


async def test_fewer_acknowledgements_than_the_threshold_leave_it_alone(
    dsn: str, tmp_path: Path
) -> None:
    assert EVENTS < pg_vacuum.VACUUM_EVERY
    async with harness(dsn, tmp_path, f"file://{tmp_path}", {}) as h:
        await drain(h)
        await h.bus.close()  # waits for a vacuum in progress, if one had started
        assert await h.scalar(VACUUMS) == 0
