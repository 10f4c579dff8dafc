"""Request-body read deadlines on one shared timer: a slow body times out, a steady one not."""

from __future__ import annotations

import asyncio
import time

import pytest

from mm_bronze.budget import ByteBudget
from mm_bronze.ingest.http.deadlines import SharedDeadlines
from mm_bronze.ingest.http.ingest import BodyTimeout, body_chunks

TIMEOUT = 0.3
TICK = 0.1


def chunks_of(receive: object, deadlines: SharedDeadlines) -> object:
    return body_chunks(
        receive,  # type: ignore[arg-type]
        deadline=deadlines.deadline(TIMEOUT),
        inflight=ByteBudget(1 << 20),
        held_limit=1 << 20,
    )


async def test_a_body_that_stops_coming_gets_its_timeout_error() -> None:
    deadlines = SharedDeadlines(tick=TICK)
    sent = 0

    async def receive() -> dict:
        nonlocal sent
        sent += 1
        if sent > 2:
            await asyncio.Event().wait()  # the client stops sending
        return {"type": "http.request", "body": b"x", "more_body": True}

    began = time.monotonic()
    with pytest.raises(BodyTimeout):
        async for _ in chunks_of(receive, deadlines):  # type: ignore[attr-defined]
            pass
    assert TIMEOUT <= time.monotonic() - began <= TIMEOUT + TICK + 0.5
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_steady_body_slower_in_total_than_the_timeout_is_read_whole() -> None:
    deadlines = SharedDeadlines(tick=TICK)
    parts = 8

    async def receive() -> dict:
        nonlocal parts
        await asyncio.sleep(TIMEOUT / 3)
        parts -= 1
        return {"type": "http.request", "body": b"x", "more_body": parts > 0}

    body = [chunk async for chunk in chunks_of(receive, deadlines)]  # type: ignore[attr-defined]
    assert body == [b"x"] * 8
    await asyncio.sleep(TIMEOUT + 2 * TICK)  # no cancellation arrives later either


async def test_many_bodies_share_the_timer_and_only_the_slow_one_times_out() -> None:
    deadlines = SharedDeadlines(tick=TICK)

    async def read(delay: float) -> str:
        async def receive() -> dict:
            await asyncio.sleep(delay)
            return {"type": "http.request", "body": b"x", "more_body": False}

        try:
            return b"".join([c async for c in chunks_of(receive, deadlines)]).decode()  # type: ignore[attr-defined]
        except BodyTimeout:
            return "timeout"

    results = await asyncio.gather(*(read(0.01) for _ in range(20)), read(TIMEOUT + 2 * TICK))
    assert results == ["x"] * 20 + ["timeout"]


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = SharedDeadlines(tick=TICK)

    async def receive() -> dict:
        await asyncio.Event().wait()
        return {}

    async def read() -> None:
        async for _ in chunks_of(receive, deadlines):  # type: ignore[attr-defined]
            pass

    task = asyncio.create_task(read())
    await asyncio.sleep(TICK / 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
