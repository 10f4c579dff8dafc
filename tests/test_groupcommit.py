"""Group commit: a lone caller flushes in its own task; concurrent callers share a flush."""

from __future__ import annotations

import asyncio

import pytest

from mm_bronze.groupcommit import GroupCommitter


class Recorder:
    """A flush that records each batch and the task it ran in; ``gate`` holds it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.tasks: list[asyncio.Task[object] | None] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def flush(self, items: list[int]) -> None:
        self.tasks.append(asyncio.current_task())
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.batches.append(list(items))


async def test_a_lone_submit_flushes_in_the_callers_task() -> None:
    recorder = Recorder()
    committer: GroupCommitter[int] = GroupCommitter(recorder.flush)
    await committer.open()
    try:
        for n in range(3):
            await committer.submit(n)
    finally:
        recorder.gate.set()
        await committer.close()
    assert recorder.batches == [[0], [1], [2]]
    assert recorder.tasks == [asyncio.current_task()] * 3


async def test_a_lone_submit_raises_what_its_flush_raised() -> None:
    recorder = Recorder()
    recorder.fail = ConnectionError("database down")
    committer: GroupCommitter[int] = GroupCommitter(recorder.flush)
    await committer.open()
    try:
        with pytest.raises(ConnectionError, match="database down"):
            await committer.submit(1)
        recorder.fail = None
        await committer.submit(2)  # the committer is still usable
    finally:
        await committer.close()
    assert recorder.batches == [[2]]


async def test_close_waits_for_an_inline_flush() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    committer: GroupCommitter[int] = GroupCommitter(recorder.flush)
    await committer.open()
    submitting = asyncio.create_task(committer.submit(7))
    await asyncio.sleep(0.01)
    assert recorder.tasks == [submitting]  # flushing inline, held by the gate
    closing = asyncio.create_task(committer.close())
    await asyncio.sleep(0.05)
    assert not closing.done()
    recorder.gate.set()
    await asyncio.wait_for(closing, 5)
    assert submitting.done() and submitting.exception() is None
    assert recorder.batches == [[7]]
    with pytest.raises(RuntimeError):
        await committer.submit(8)


async def test_concurrent_submits_share_flushes() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    committer: GroupCommitter[int] = GroupCommitter(recorder.flush, max_in_flight=2)
    await committer.open()
    try:
        submits = [asyncio.create_task(committer.submit(n)) for n in range(50)]
        await asyncio.sleep(0.05)
        # The first caller flushes alone, inline; the flusher took all the others at once
        # into the second slot; nothing else starts while both are in flight.
        assert len(recorder.tasks) == 2
        recorder.gate.set()
        await asyncio.gather(*submits)
    finally:
        recorder.gate.set()
        await committer.close()
    assert recorder.batches == [[0], list(range(1, 50))]


async def test_submits_during_flushes_wait_for_the_next_group() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    committer: GroupCommitter[int] = GroupCommitter(recorder.flush, max_in_flight=2)
    await committer.open()
    try:
        first = [asyncio.create_task(committer.submit(n)) for n in range(2)]
        await asyncio.sleep(0.01)
        later = [asyncio.create_task(committer.submit(n)) for n in range(2, 20)]
        await asyncio.sleep(0.01)
        assert len(recorder.tasks) == 2  # both slots busy: the later ones gather
        recorder.gate.set()
        await asyncio.gather(*first, *later)
    finally:
        recorder.gate.set()
        await committer.close()
    assert recorder.batches == [[0], [1], list(range(2, 20))]
