"""The worker pool: results and exceptions come back, a dead worker is replaced, and a
cancelled call does not leave its reply to the next one."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from mm_bronze.formats.worker_pool import WorkerPool


def _nothing() -> None:
    pass


def _echo(value: object, delay: float = 0.0) -> object:
    time.sleep(delay)
    return value


def _fail(message: str) -> None:
    raise ValueError(message)


def _pid() -> int:
    return os.getpid()


async def test_results_exceptions_and_large_calls() -> None:
    pool = WorkerPool(2, initializer=_nothing)
    try:
        assert await pool.run(_echo, "x") == "x"
        large = os.urandom(1024 * 1024)  # written to the pipe from a thread
        assert await pool.run(_echo, large) == large
        with pytest.raises(ValueError, match="bad"):
            await pool.run(_fail, "bad")
        results = await asyncio.gather(*(pool.run(_echo, n, 0.05) for n in range(6)))
        assert results == list(range(6))
        assert len(pool.pids()) == 2
    finally:
        await pool.close()


async def test_a_dead_worker_fails_its_call_and_is_replaced() -> None:
    pool = WorkerPool(1, initializer=_nothing)
    try:
        first = await pool.run(_pid)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await pool.run(_echo, 1, 0.0)
        second = await pool.run(_pid)
        assert second != first
    finally:
        await pool.close()


async def test_a_cancelled_call_leaves_no_reply_behind() -> None:
    pool = WorkerPool(1, initializer=_nothing)
    try:
        slow = asyncio.ensure_future(pool.run(_echo, "slow", 0.3))
        await asyncio.sleep(0.1)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert await pool.run(_echo, "next") == "next"
    finally:
        await pool.close()


async def _large_calls_on_one_worker() -> set[int]:
    pool = WorkerPool(1, initializer=_nothing)
    try:
        pids = set()
        for _ in range(4):
            large = os.urandom(4 * 1024 * 1024)  # far beyond a socket buffer, both ways
            assert await pool.run(_echo, large) == large
            pids.add(await pool.run(_pid))
        return pids
    finally:
        await pool.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_large_calls_and_replies_keep_their_worker(loop: str) -> None:
    """The server runs on uvloop, whose ``add_reader`` leaves the pipe non-blocking: a large
    call or reply must still go through whole, not fail as if the worker had died."""
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        assert len(runner.run(_large_calls_on_one_worker())) == 1
