"""The persist pipeline: claim a batch → store payloads → record metadata → announce what
was recorded (Kafka's stored topic, when set) → acknowledge.

Every step is idempotent, so a crash anywhere followed by redelivery ends in the same
state: objects are content-addressed and written only when absent, metadata inserts
ignore rows that already exist, and the acknowledgement comes last.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec
import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze.bus.base import Consumer, Message
from mm_bronze.bus.stamp import WrongDatabase, foreign
from mm_bronze.consumers.stored import stored_events
from mm_bronze.errors import PoisonMessage, Unavailable
from mm_bronze.metadata import records
from mm_bronze.metrics import ConsumerMetrics, Metrics
from mm_bronze.models import IngestEvent, StoredEvent, decode_event
from mm_bronze.settings import ConsumerSettings
from mm_bronze.storage import ObjectStore, StorageRegistry

log = structlog.get_logger(__name__)

WRITE_CONCURRENCY = 8
FETCH_TIMEOUT = 0.5
# How long a batch cancelled by a stop may take to give its events back (the database may be
# what it waited on): past it they come back when their claim's lease ends.
GIVE_BACK_TIMEOUT = 2.0
# While claims come back full (a backlog), each claims twice as many, up to this many
# batch_size: a batch's fixed costs (claim, lookup, recording transaction, ack, directory
# fsyncs) are then paid for more events. A short claim goes back to batch_size.
BACKLOG_GROWTH = 4
# ... but only while the full claim's messages held at most this many bytes: a backlog of
# large inline events (up to 1 MiB each) keeps batch_size, so memory stays as it was.
GROWTH_BYTES = 8 * 1024 * 1024
# Called with a batch's submissions once they are recorded, before the batch is acked; an
# ``Unavailable`` it raises gives the batch back to be retried, like a storage outage.
Announce = Callable[[Sequence[StoredEvent]], Awaitable[None]]


class PersistPipeline:
    """Drains one consumer into storage and metadata until ``stop`` is set.

    A batch that has started is always finished (or released) before ``run`` returns.
    ``degraded`` names the current transient failure, or is None when healthy.
    """

    def __init__(
        self,
        consumer: Consumer,
        storage: StorageRegistry,
        pool: AsyncConnectionPool[AsyncConnection],
        settings: ConsumerSettings,
        *,
        metrics: ConsumerMetrics | None = None,
        announce: Announce | None = None,
        deployment: str | None = None,
    ) -> None:
        self._consumer = consumer
        self._deployment = deployment  # events stamped by another one are refused (stamp.py)
        self._metrics = metrics or Metrics().consumer("unknown")
        self._announce = announce
        self._storage = storage
        self._pool = pool
        self._settings = settings
        self._writes = asyncio.Semaphore(WRITE_CONCURRENCY)
        self.degraded: str | None = None
        self._batch_failed = False  # degraded by a batch that failed unexpectedly
        self._in_hand: Sequence[Message] = ()  # the batch claimed, until it is through
        self.stored = 0

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._run(stop)
        except asyncio.CancelledError:
            if self._in_hand:  # a batch claimed and not yet through
                await self._give_back(self._in_hand)
            raise

    async def _run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        claim = self._settings.batch_size
        while not stop.is_set():
            messages: Sequence[Message] = ()
            self._in_hand = messages
            try:
                messages = self._in_hand = await self._consumer.fetch(claim, FETCH_TIMEOUT)
                grow = len(messages) == claim and (
                    sum(len(message.value) for message in messages) <= GROWTH_BYTES
                )
                claim = (
                    min(claim * 2, self._settings.batch_size * BACKLOG_GROWTH)
                    if grow
                    else self._settings.batch_size
                )
                if messages:
                    await self.process(messages)
                self._in_hand = ()
                # An empty fetch says nothing of a batch that failed and waits for its lease:
                # only a batch that went through clears that.
                if messages or not self._batch_failed:
                    self.degraded = None
                    self._batch_failed = False
                backoff = 0.1
                if 0 < len(messages) < self._settings.batch_size and self._settings.linger > 0:
                    # Let a trickle gather: the next batch then costs its fsyncs once.
                    await _pause(stop, self._settings.linger)
            except WrongDatabase:
                raise  # given back by ``_persist``: the deployment's own consumers take them
            except (Unavailable, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._in_hand = ()  # released by ``process``
                self.degraded = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "persist retrying after transient failure", error=self.degraded, backoff=backoff
                )
                await _pause(stop, backoff)
                backoff = min(backoff * 2, self._settings.retry_backoff_max)
            except Exception as exc:
                # A bug, not an outage: each event of the batch is tried alone, and those that
                # fail again come back later with one more attempt counted, to be
                # dead-lettered after max_attempts (Kafka would never deliver them again
                # while this process runs, were they only left unacknowledged).
                self.degraded = f"{type(exc).__name__}"
                self._batch_failed = True
                log.exception("persist batch failed unexpectedly", error=self.degraded)
                failed = await self._one_by_one(messages) if len(messages) > 1 else messages
                if messages and not failed:
                    self.degraded = None  # every event went through alone
                    self._batch_failed = False
                if failed:
                    with contextlib.suppress(Unavailable):
                        await self._consumer.release(
                            failed, delay=self._settings.retry_backoff_max, counted=True
                        )
                self._in_hand = ()
                await _pause(stop, backoff)
                backoff = min(backoff * 2, self._settings.retry_backoff_max)

    async def _one_by_one(self, messages: Sequence[Message]) -> list[Message]:
        """After a batch failed unexpectedly, each of its events alone: one event may be at
        fault, and the others (other clients' submissions among them) are not to share its
        fate. The events that failed again, for the caller to give back counted. An outage
        stops the retries: the event it hit is released (``process``), and the rest too, as
        after any outage, its attempt not counted."""
        failed: list[Message] = []
        for index, message in enumerate(messages):
            try:
                await self.process([message])
            except (Unavailable, psycopg.OperationalError, psycopg.InterfaceError):
                with contextlib.suppress(Unavailable):
                    await self._consumer.release(messages[index + 1 :], delay=0)
                return failed
            except Exception as exc:
                failed.append(message)
                log.warning("persist event failed unexpectedly", error=type(exc).__name__)
        log.info("persist batch retried event by event", events=len(messages), failed=len(failed))
        return failed

    async def process(self, messages: Sequence[Message]) -> None:
        """Persist one batch; on a transient failure release it and re-raise."""
        started = time.perf_counter()
        try:
            await self._persist(messages)
            self._metrics.batch_done(started)
        except (Unavailable, psycopg.OperationalError, psycopg.InterfaceError):
            with contextlib.suppress(Unavailable):
                await self._consumer.release(messages, delay=0)
            raise

    async def _give_back(self, messages: Sequence[Message]) -> None:
        """Release the events of a batch cancelled by a stop (its store or database did not
        answer within ``consumer.stop_grace``), uncounted, so that the next consumer takes
        them at once rather than after the lease (``consumer.lease_seconds``). Bounded by
        ``GIVE_BACK_TIMEOUT``; should it fail, the lease still returns them."""
        try:
            async with asyncio.timeout(GIVE_BACK_TIMEOUT):
                await self._consumer.release(messages, delay=0)
        except Exception as exc:  # whatever it is, the batch's cancellation goes on
            log.warning(
                "cancelled batch not given back: its events return when their lease ends",
                events=len(messages),
                error=type(exc).__name__,
            )
        else:
            log.info("cancelled batch given back", events=len(messages))

    async def _persist(self, messages: Sequence[Message]) -> None:
        if self._deployment is not None and (refusal := foreign(messages, self._deployment)):
            self._in_hand = ()
            await self._consumer.release(messages, delay=0)
            raise refusal
        batch: list[tuple[Message, IngestEvent]] = []
        for message in messages:
            event = await self._decode(message)
            if event is not None:
                batch.append((message, event))
        if not batch:
            return
        existing = await records.stored_objects(self._pool, list({e.sha256 for _, e in batch}))
        # One writer per payload not yet stored: the first event carrying it in this batch;
        # should its staged blob be gone, the next event carrying the same bytes writes them.
        candidates: dict[str, collections.deque[IngestEvent]] = {}
        for _, event in batch:
            if event.sha256 not in existing:
                candidates.setdefault(event.sha256, collections.deque()).append(event)
        paths = dict(existing)
        keys: list[str] = []
        written: set[str] = set()  # keys this batch wrote (absent before)
        writers = {sha: events.popleft() for sha, events in candidates.items()}
        while writers:
            work = [(event, self._storage.object_key(event)) for event in writers.values()]
            results = await self._write_all(work)
            again: dict[str, IngestEvent] = {}
            for sha, (_, key), result in zip(writers, work, results, strict=True):
                if isinstance(result, PoisonMessage):
                    if candidates[sha]:
                        again[sha] = candidates[sha].popleft()
                    continue
                if isinstance(result, BaseException):
                    raise result
                keys.append(key)
                paths[sha] = self._storage.raw.url_for(key)
                if result:
                    written.add(key)
            writers = again
        # Objects are written without their directory entries synced: one fsync per directory
        # for the whole batch, before anything is recorded. Objects found already present are
        # included: an earlier attempt may have written them without syncing.
        await self._storage.raw.sync_directories(keys)
        keep = [(m, e) for m, e in batch if e.sha256 in paths]
        dead = [(m, e) for m, e in batch if e.sha256 not in paths]
        recorded = await records.record_batch(
            self._pool,
            [(e, paths[e.sha256]) for _, e in keep],
            compression=self._storage.compression,
        )
        await self._remove_unrecorded(keep, recorded, written)
        if self._announce is not None:
            stored_at = dt.datetime.now(dt.UTC)
            await self._announce(
                stored_events(list(zip(recorded, (e for _, e in keep), strict=True)), stored_at)
            )
        for message, event in dead:
            # Where it was looked for goes to the dead letter (for the operator), not into the
            # client's status: a door and consumers that see different storage show there.
            await self._fail(
                message, event, "staged payload is missing", f"looked for at {event.staged_path}"
            )
        # Staged blobs go before the acknowledgement: once recorded, an event delivered again
        # finds its bytes stored and never reads its blob, whereas a stop between an
        # acknowledgement and the removal would leave the blob behind for good.
        await self._remove_staged([e for _, e in keep])
        await self._consumer.ack([m for m, _ in keep])
        self.stored += len(keep)
        duplicates = sum(outcome.duplicate for outcome in recorded)
        self._metrics.duplicate.inc(duplicates)
        self._metrics.stored.inc(len(recorded) - duplicates)

    async def _remove_unrecorded(
        self,
        keep: Sequence[tuple[Message, IngestEvent]],
        recorded: Sequence[records.Recorded],
        written: set[str],
    ) -> None:
        """Remove the copy of each duplicate's bytes under its own key when its object is
        recorded under another key (another date, subtype or source): the copy this batch
        wrote when another consumer recorded the same bytes first, or one an earlier
        delivery of the event wrote and did not remove (it stopped in between; Kafka keeps
        no delivery count to single such events out). A recorded object's key never changes
        and a key holds one SHA-256's bytes, so nothing refers to such a copy; a missing one
        is no error, and one that cannot be removed is only logged (it costs space, never
        data). Keys are compared within this store: a recorded URL that is not under it
        (the storage URL changed, or is spelt another way) may name the very same object,
        so the copy is then left, unless this batch wrote it."""
        stray = set()
        for outcome, (_, event) in zip(recorded, keep, strict=True):
            if not outcome.duplicate:
                continue  # a payload's first submission is recorded under its own key
            key = self._storage.object_key(event)
            try:
                elsewhere = self._storage.raw.key_for(outcome.storage_path) != key
            except ValueError:
                elsewhere = key in written
            if elsewhere:
                stray.add(key)
        await self._remove_all(self._storage.raw, sorted(stray), "stray copy not removed")

    async def _decode(self, message: Message) -> IngestEvent | None:
        try:
            event = decode_event(message.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await self._consumer.dead_letter(message, f"undecodable event: {exc}")
            self._metrics.failed.inc()
            return None
        if message.attempts > self._settings.max_attempts:
            await self._fail(message, event, f"gave up after {message.attempts - 1} deliveries")
            return None
        return event

    async def _fail(
        self, message: Message, event: IngestEvent, reason: str, detail: str = ""
    ) -> None:
        await self._consumer.dead_letter(message, f"{reason} ({detail})" if detail else reason)
        await records.log_status(self._pool, [(event.uuid, "failed", reason, event.client)])
        self._metrics.failed.inc()
        log.error("submission failed", uuid=event.uuid, reason=reason)

    async def _write_all(
        self, writers: list[tuple[IngestEvent, str]]
    ) -> list[bool | BaseException]:
        """Write every payload; inline ones in one hand-off to the store's threads (one wakeup
        of the event loop per batch, not per object), staged ones one by one."""
        inline = [(key, event.payload) for event, key in writers if event.payload is not None]
        staged = [(event, key) for event, key in writers if event.payload is None]
        outcomes: list[bool | BaseException] = []
        if inline:
            outcomes = list(await self._storage.raw.put_many_bytes(inline, sync_directory=False))
        staged_outcomes = iter(
            await asyncio.gather(
                *(self._write(event, key) for event, key in staged), return_exceptions=True
            )
        )
        inline_outcomes = iter(outcomes)
        return [
            next(inline_outcomes) if event.payload is not None else next(staged_outcomes)
            for event, _ in writers
        ]

    async def _write(self, event: IngestEvent, key: str) -> bool:
        async with self._writes:
            if event.payload is not None:
                return await self._storage.raw.put_bytes(key, event.payload, sync_directory=False)
            if event.staged_path is None:
                raise PoisonMessage("event has neither payload nor staged_path")
            try:
                staged_key = self._storage.staging.key_for(event.staged_path)
                return await self._storage.raw.put_from(
                    key, self._storage.staging, staged_key, sync_directory=False
                )
            except (FileNotFoundError, ValueError) as exc:
                raise PoisonMessage("staged payload is missing") from exc

    async def _remove_staged(self, events: Sequence[IngestEvent]) -> None:
        staging = self._storage.staging
        keys = []
        for event in events:
            if event.staged_path is not None:
                try:
                    keys.append(staging.key_for(event.staged_path))
                except ValueError as exc:  # staged elsewhere than this process stages
                    log.warning("staged blob not removed", uuid=event.uuid, error=str(exc))
        await self._remove_all(staging, keys, "staged blob not removed")

    async def _remove_all(self, store: ObjectStore, keys: Sequence[str], failure: str) -> None:
        """Remove ``keys`` from ``store``, a few at a time (bounded as the writes are). They
        are leftovers of what is stored and recorded: one that cannot be removed costs space,
        never data, and is only logged as ``failure``."""

        async def remove(key: str) -> None:
            async with self._writes:
                try:
                    await store.remove(key)
                except (Unavailable, OSError) as exc:
                    log.warning(failure, key=key, error=str(exc))

        await asyncio.gather(*(remove(key) for key in keys))


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` unless ``stop`` is set first."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
