"""The runtime: opens shared resources in dependency order, runs roles, shuts down in reverse.

One event loop (uvloop when installed), one stop event set by SIGINT/SIGTERM. Roles are
tasks that return once the stop event is set and their in-flight work is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from mm_bronze import collector
from mm_bronze.settings import Settings

if TYPE_CHECKING:
    # Imported where used, so that commands which need none of them start fast.
    from mm_bronze.bus import Bus
    from mm_bronze.bus.dead_letters import DeadLetters
    from mm_bronze.metadata import Database
    from mm_bronze.metrics import Metrics
    from mm_bronze.storage import ObjectStore, StorageRegistry

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass
class Resources:
    """What every role in the process shares."""

    settings: Settings
    db: Database
    bus: Bus
    storage: StorageRegistry
    metrics: Metrics
    deployment: str | None = None  # the deployment's id (``ingestion.deployment``)
    health: dict[str, Callable[[], str | None]] = field(default_factory=dict)

    def topics(self) -> dict[str, tuple[str, str]]:
        """Source name → (topic, consumer group)."""
        kafka = self.settings.kafka
        return {
            "api": (kafka.api_topic, kafka.api_group),
            "sftp": (kafka.sftp_topic, kafka.sftp_group),
            "mllp": (kafka.mllp_topic, kafka.mllp_group),
        }

    async def readiness(self) -> dict[str, str]:
        from mm_bronze.ingest.http.app import check_readiness

        checks = await check_readiness(
            {"database": self.db.ping, "bus": self.bus.ping, "storage": self.storage.raw.ping}
        )
        for name, probe in self.health.items():
            problem = probe()
            checks[name] = "ok" if problem is None else f"degraded ({problem})"
        return checks


def build_bus(settings: Settings, db: Database, deployment: str | None = None) -> Bus:
    """The bus ``settings`` name; on Kafka, what it publishes is stamped with ``deployment``
    (``mm_bronze.bus.stamp``)."""
    if settings.kafka.servers:
        from mm_bronze.bus.kafka import KafkaBus

        return KafkaBus(
            settings.kafka, inline_limit=settings.http.inline_limit, deployment=deployment
        )
    from mm_bronze.bus.pgqueue import PgQueueBus

    return PgQueueBus(db.pool, lease_seconds=settings.consumer.lease_seconds)


def dead_letters_for(
    settings: Settings, db: Database, bus: Bus, staging: ObjectStore
) -> DeadLetters:
    """The dead letters of ``bus`` (opened by the caller); a purge removes staged payloads
    from ``staging``."""
    if settings.kafka.servers:
        from mm_bronze.bus.kafka import KafkaBus
        from mm_bronze.bus.kafka_dead_letters import KafkaDeadLetters

        assert isinstance(bus, KafkaBus)
        return KafkaDeadLetters(bus, settings.kafka, db.pool, staging)
    from mm_bronze.bus.pg_dead_letters import PgDeadLetters

    return PgDeadLetters(db.pool, staging)


@contextlib.asynccontextmanager
async def open_dead_letters(settings: Settings) -> AsyncIterator[DeadLetters]:
    """The database, the bus and the staging store, for the dead-letter commands."""
    from mm_bronze.storage import ObjectStore

    async with open_database(settings) as db:
        bus = build_bus(settings, db)
        await bus.open()
        staging = ObjectStore(
            settings.staging_url,
            settings.storage.options,
            call_timeout=settings.storage.staging_timeout,
        )
        try:
            await staging.open()
            yield dead_letters_for(settings, db, bus, staging)
        finally:
            await staging.close()
            await bus.close()


@contextlib.asynccontextmanager
async def open_database(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Database]:
    """The database alone (embedded or external), for admin commands."""
    from mm_bronze.metadata import Database

    if not settings.postgres.dsn:  # the embedded server lives under the data directory
        settings.data_path.mkdir(parents=True, exist_ok=True)
    db = Database(
        settings.postgres.dsn,
        settings.data_path,
        min_size=1,
        max_size=max(2, settings.postgres.min_size),
    )
    await db.open(run_migrations=migrate)
    try:
        yield db
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    """Open database, bus and storage in that order; close them in reverse."""
    from mm_bronze.metadata import Database
    from mm_bronze.metadata.deployment import bus_of, check_bus
    from mm_bronze.metrics import Metrics
    from mm_bronze.storage import StorageRegistry

    settings.data_path.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        db = Database(
            settings.postgres.dsn,
            settings.data_path,
            min_size=settings.postgres.min_size,
            max_size=settings.postgres.max_size,
        )
        await db.open()
        stack.push_async_callback(db.close)
        deployment = await check_bus(db.pool, bus_of(settings.kafka.servers))
        bus = build_bus(settings, db, deployment)
        await bus.open()
        stack.push_async_callback(bus.close)
        storage = StorageRegistry(
            settings.storage_url,
            settings.staging_url,
            settings.storage.path_template,
            settings.storage.options,
            compression=settings.storage.compression,
            staging_timeout=settings.storage.staging_timeout,
        )
        await storage.open()
        stack.push_async_callback(storage.close)
        resources = Resources(
            settings=settings,
            db=db,
            bus=bus,
            storage=storage,
            metrics=Metrics(),
            deployment=deployment,
        )
        resources.metrics.watch_bus(bus, dict(resources.topics().values()))
        resources.metrics.watch_readiness(resources.readiness)
        yield resources


RoleRunner = Callable[[Resources, asyncio.Event], Coroutine[Any, Any, None]]


async def serve(settings: Settings, roles: dict[str, RoleRunner]) -> None:
    """Run ``roles`` until SIGINT/SIGTERM, then stop them and close everything."""
    collector.tune()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    try:
        async with open_resources(settings) as resources:
            log.info("mm-bronze started", roles=sorted(roles), data_dir=str(settings.data_path))
            tasks = {
                asyncio.create_task(runner(resources, stop), name=f"role-{name}"): name
                for name, runner in roles.items()
            }
            await _supervise(tasks, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("mm-bronze stopped")


async def _supervise(tasks: dict[asyncio.Task[None], str], stop: asyncio.Event) -> None:
    """Wait for the stop event; if a role fails first, stop the others and re-raise."""
    stopper = asyncio.create_task(stop.wait())
    failure: BaseException | None = None
    pending: set[asyncio.Task[Any]] = set(tasks)
    done, _ = await asyncio.wait({*pending, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending & done:
        if task.exception() is not None:
            failure = task.exception()
            log.error("role failed", role=tasks[task], error=repr(failure))
    stop.set()
    await asyncio.wait(pending)
    stopper.cancel()
    for task in pending:
        if failure is None and not task.cancelled() and task.exception() is not None:
            failure = task.exception()
    if failure is not None:
        raise failure


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if stop.is_set():
        log.warning("second signal, still shutting down", signal=sig.name)
        return
    stop.set()  # before the log line, which must not be what stops the stop
    log.info("shutting down", signal=sig.name)


def run(main: Awaitable[T]) -> T:
    """Run ``main`` on uvloop when it is installed, else on the default loop."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)  # type: ignore[arg-type]
