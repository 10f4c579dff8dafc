"""The submissions feed: a cursor in commit order, and wake-ups when submissions are recorded.

Every recording transaction takes ``FEED_LOCK`` (``pg_advisory_xact_lock``) just before it
inserts submissions, so their ``seq`` values come from the sequence in the order the
transactions commit: the lock is held until commit, and the next writer takes its seqs only
after that. A reader that has seen seq N therefore never later finds a row with seq <= N.
Consumers record one batch per transaction, so the lock is taken once per batch.

The same transaction sends ``NOTIFY`` on ``FEED_CHANNEL`` (delivered at commit);
``FeedListener`` turns those into wake-ups for long-polling readers.
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import structlog

log = structlog.get_logger(__name__)

# Any constant works; it only has to be the same for every mm-bronze process.
FEED_LOCK = 0x6D6D_6266
FEED_CHANNEL = "mm_bronze_submissions"
RECONNECT_BACKOFF_MAX = 5.0


class FeedListener:
    """One dedicated connection that ``LISTEN``s on ``FEED_CHANNEL``.

    ``next_change()`` is set by the next notification. While the connection is down it
    reconnects with backoff and nothing is set: readers wait with a timeout and re-query
    after each wait, so polling is the fallback.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stopping = False

    def stop_waits(self) -> None:
        """Wake every waiter for good (the server is stopping): long polls answer now."""
        self.stopping = True
        self._changed.set()

    async def open(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="feed-listener")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> FeedListener:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def next_change(self) -> asyncio.Event:
        """An event set when the next submission is recorded (take it before querying)."""
        return self._changed

    def _wake(self) -> None:
        # Every current waiter wakes; later waiters wait for the next notification.
        self._changed.set()
        if not self.stopping:
            self._changed = asyncio.Event()

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {FEED_CHANNEL}")
                    backoff = 0.1
                    self._wake()  # anything recorded while not listening
                    async for _ in conn.notifies():
                        self._wake()
            except psycopg.Error as exc:
                log.warning("feed listener reconnecting", error=type(exc).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX)
