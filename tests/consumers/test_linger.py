"""A trickle of events is stored in few batches: after a short batch the pipeline lingers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mm_bronze.errors import ConfigError
from mm_bronze.settings import ConsumerSettings, load_settings
from tests.consumers.harness import harness
from tests.polling import wait_for_async


async def test_events_arriving_during_the_linger_are_stored_in_one_batch(
    dsn: str, tmp_path: Path
) -> None:
    settings = ConsumerSettings(concurrency=1, linger=2.0)
    async with harness(dsn, tmp_path, f"file://{tmp_path}", {}) as h, h.running(settings):
        await h.publish(b'{"resourceType": "Patient", "id": "first"}')
        await h.drained(30)
        # The pipeline now waits (2 s) before claiming again: these trickle in meanwhile,
        # further apart than its polls (without the wait, each would be a batch of its own).
        for n in range(5):
            await h.publish(b'{"resourceType": "Patient", "id": "p%d"}' % n)
            await asyncio.sleep(0.15)
        await wait_for_async(
            lambda: h.scalar("SELECT count(*) FROM ingestion.submissions"),
            lambda count: count == 6,
            what="the six events stored",
        )
        # One batch is one transaction: its rows share recorded_at (now() of the transaction).
        batches = await h.scalar("SELECT count(DISTINCT recorded_at) FROM ingestion.submissions")
        assert batches == 2


def test_linger_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match=r"MM_BRONZE_CONSUMER_LINGER=-1 .*0 or more seconds"):
        load_settings(environ={"MM_BRONZE_CONSUMER_LINGER": "-1"})
