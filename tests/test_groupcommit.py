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
        self.flushed = asyncio.Event()  # set once a batch is recorded

    async def flush(self, items: list[int]) -> None:
        self.tasks.append(asyncio.current_task())
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.batches.append(list(items))
        self.flushed.set()


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


async def test_concurrent_submits_share_one_flush_at_a_time() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    committer: GroupCommitter[int] = GroupCommitter(recorder.flush)
    await committer.open()
    try:
        submits = [asyncio.create_task(committer.submit(n)) for n in range(50)]
        await asyncio.sleep(0.05)
        # The first caller flushes alone, inline; nothing else starts while it is in flight.
        assert recorder.tasks == [submits[0]]
        recorder.gate.set()
        await asyncio.gather(*submits)
    finally:
        recorder.gate.set()
        await committer.close()
    # Everything that arrived during the first flush went into the second, which ran in a
    # task of the batch's own (no flusher task between flushes).
    assert recorder.batches == [[0], list(range(1, 50))]
    assert recorder.tasks[0] is submits[0]
    assert recorder.tasks[1] not in submits and len(recorder.tasks) == 2


async def test_batches_are_capped_at_max_batch() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    committer: GroupCommitter[int] = GroupCommitter(recorder.flush, max_batch=4)
    await committer.open()
    try:
        submits = [asyncio.create_task(committer.submit(n)) for n in range(10)]
        await asyncio.sleep(0.01)
        recorder.gate.set()
        await asyncio.gather(*submits)
    finally:
        await committer.close()
    assert recorder.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]


async def test_a_failed_flush_fails_its_whole_batch_and_the_next_one_still_runs() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    committer: GroupCommitter[int] = GroupCommitter(recorder.flush, max_batch=3)
    await committer.open()
    try:
        submits = [asyncio.create_task(committer.submit(n)) for n in range(7)]
        await asyncio.sleep(0.01)
        recorder.fail = ConnectionError("database down")
        recorder.gate.set()
        results = await asyncio.gather(*submits, return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results)
        # Each failed flush still started the next: [0], then [1, 2, 3], then [4, 5, 6].
        assert recorder.tasks[0] is submits[0] and len(recorder.tasks) == 3
        recorder.fail = None
        await committer.submit(7)  # and the committer is still usable
    finally:
        await committer.close()
    assert recorder.batches == [[7]]


async def test_a_cancelled_waiting_caller_still_gets_its_batch_flushed() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    committer: GroupCommitter[int] = GroupCommitter(recorder.flush)
    await committer.open()
    first = asyncio.create_task(committer.submit(0))
    await asyncio.sleep(0.01)
    later = [asyncio.create_task(committer.submit(n)) for n in range(1, 5)]
    await asyncio.sleep(0.01)
    later[0].cancel()  # the first caller waiting for the next flush
    await asyncio.sleep(0.01)
    recorder.gate.set()
    await first
    await asyncio.gather(*later[1:])
    await asyncio.wait_for(committer.close(), 5)
    assert later[0].cancelled()
    assert recorder.batches == [[0], [1, 2, 3, 4]]  # its item was submitted: it still goes


async def test_a_caller_cancelled_as_the_previous_flush_ends_still_has_its_item_flushed() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    committer: GroupCommitter[int] = GroupCommitter(recorder.flush)
    await committer.open()
    first = asyncio.create_task(committer.submit(0))
    await asyncio.sleep(0.01)
    later = [asyncio.create_task(committer.submit(n)) for n in range(1, 4)]
    await asyncio.sleep(0.01)
    recorder.gate.set()
    # The first flush ends and the next one starts; later[0] is cancelled as it does.
    await recorder.flushed.wait()
    later[0].cancel()
    await first
    await asyncio.wait_for(asyncio.gather(*later[1:]), 5)
    await asyncio.wait_for(committer.close(), 5)
    assert later[0].cancelled()
    assert recorder.batches == [[0], [1, 2, 3]]


async def test_a_caller_cancelled_mid_flush_leaves_the_others_answered() -> None:
    """A client that goes away while its request's batch is in flight must not fail it."""
    recorder = Recorder()
    recorder.gate.clear()
    second = asyncio.Event()  # holds the second flush once it has begun

    async def flush(items: list[int]) -> None:
        if items[0] != 0:
            await second.wait()
        await recorder.flush(items)

    committer: GroupCommitter[int] = GroupCommitter(flush)
    await committer.open()
    first = asyncio.create_task(committer.submit(0))
    await asyncio.sleep(0.01)
    later = [asyncio.create_task(committer.submit(n)) for n in range(1, 4)]
    await asyncio.sleep(0.01)
    recorder.gate.set()
    await first
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in later)  # the second flush is in flight, held
    later[0].cancel()  # its caller is cancelled mid-flush
    await asyncio.sleep(0.01)
    second.set()
    await asyncio.wait_for(asyncio.gather(*later[1:]), 5)  # answered, and not with an error
    await asyncio.wait_for(committer.close(), 5)
    assert later[0].cancelled()
    assert recorder.batches == [[0], [1, 2, 3]]


async def test_close_waits_for_every_pending_item() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    committer: GroupCommitter[int] = GroupCommitter(recorder.flush)
    await committer.open()
    submits = [asyncio.create_task(committer.submit(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    closing = asyncio.create_task(committer.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    with pytest.raises(RuntimeError):
        await committer.submit(9)
    recorder.gate.set()
    await asyncio.wait_for(closing, 5)
    await asyncio.gather(*submits)
    assert recorder.batches == [[0], [1, 2, 3, 4]]
