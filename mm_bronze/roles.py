"""The role registry: what ``serve --<role>`` starts. Each role wires adapters to a door.

Adapters are imported inside each role, so that commands which serve nothing start fast.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from mm_bronze.binding import Door, bind_error
from mm_bronze.errors import ConfigError
from mm_bronze.settings import Settings

if TYPE_CHECKING:
    from mm_bronze.runtime import Resources, RoleRunner

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Role:
    name: str
    run: RoleRunner
    door: Callable[[Settings], Door] | None = None  # the address it listens on, if any


def _door(
    name: str, host: str, port: int, port_env: str, host_env: str, reuse_port: bool = False
) -> Door:
    return Door(
        name,
        host,
        port,
        port_names=f"--{name}-port, {port_env} or {name}.port",
        host_names=f"--{name}-host, {host_env} or {name}.host",
        reuse_port=reuse_port,
    )


def http_door(settings: Settings) -> Door:
    http = settings.http
    return _door(
        "http", http.host, http.port, "MM_BRONZE_HTTP_PORT", "MM_BRONZE_HTTP_HOST", http.reuse_port
    )


def mllp_door(settings: Settings) -> Door:
    mllp = settings.mllp
    return _door(
        "mllp", mllp.host, mllp.port, "MM_BRONZE_MLLP_PORT", "MM_BRONZE_MLLP_HOST", mllp.reuse_port
    )


def sftp_door(settings: Settings) -> Door:
    return _door("sftp", settings.sftp.host, settings.sftp.port, "SFTP_PORT", "SFTP_HOST")


async def run_http(res: Resources, stop: asyncio.Event) -> None:
    from mm_bronze.addresses import is_loopback
    from mm_bronze.bus.kafka_accepted import AcceptedPublisher
    from mm_bronze.bus.pgqueue import PgQueueBus
    from mm_bronze.formats.workers import ValidationWorkers
    from mm_bronze.ingest.http.app import HttpDeps, build_app
    from mm_bronze.ingest.http.auth import Authenticator
    from mm_bronze.ingest.http.deps import PublishAccepted
    from mm_bronze.ingest.http.server import serve_http
    from mm_bronze.metadata import clients
    from mm_bronze.metadata.feed import FeedListener
    from mm_bronze.runtime import dead_letters_for

    settings = res.settings.http
    pool = res.db.pool
    count = await clients.client_count(pool)
    required = await clients.tokens_required(pool)
    loopback = is_loopback(settings.host)
    if count == 0 and not loopback:
        raise ConfigError(
            f"refusing to serve HTTP on non-loopback address {settings.host} without API "
            "clients: create one with `mm-bronze clients add NAME`"
        )
    if count == 0 and required:
        log.warning(
            "no API clients left: every request is refused until one is added "
            "with `mm-bronze clients add NAME`"
        )
    elif count == 0:
        log.warning("no API clients configured: accepting unauthenticated requests on loopback")

    bus = res.bus
    publish: PublishAccepted
    accepted: AcceptedPublisher | None = None
    if isinstance(bus, PgQueueBus):
        # The event and its "accepted" entry in one statement, one commit.
        publish = bus.publish_accepted
    else:
        accepted = AcceptedPublisher(bus.publish, pool)
        publish = accepted.publish

    workers_wanted = settings.validation_workers
    if workers_wanted < 0:
        workers_wanted = os.cpu_count() or 1
    workers = ValidationWorkers(workers_wanted) if workers_wanted > 0 else None
    feed = FeedListener(res.db.dsn)
    if accepted is not None:
        await accepted.open()
    await feed.open()
    if workers is not None:
        await workers.open()
    # /readyz is served by this door, so whenever it answers, the door is listening.
    res.health["http"] = lambda: None
    try:
        app = build_app(
            HttpDeps(
                settings=settings,
                publish=publish,
                topic=res.topics()["api"][0],
                storage=res.storage,
                pool=pool,
                auth=Authenticator(pool, open_access=loopback),
                readiness=res.readiness,
                metrics=res.metrics,
                validation_level=res.settings.validation.level,
                validation_workers=workers,
                dead_letters=dead_letters_for(res.settings, res.db, res.bus, res.storage.staging),
                feed=feed,
            )
        )
        # Long polls answer as soon as the server stops, not after its graceful timeout.
        end_waits = asyncio.create_task(_when_set(stop, feed.stop_waits))
        # hypercorn announces "http listening" (through structlog) once it has bound.
        try:
            await serve_http(app, settings, stop)
        except OSError as exc:
            raise bind_error(http_door(res.settings), exc) from None
        finally:
            end_waits.cancel()
    finally:
        await feed.close()
        if accepted is not None:
            await accepted.close()
        if workers is not None:
            await workers.close()


async def _when_set(event: asyncio.Event, action: Callable[[], None]) -> None:
    await event.wait()
    action()


async def run_consumers(res: Resources, stop: asyncio.Event) -> None:
    from mm_bronze.consumers.persist import Announce, PersistPipeline
    from mm_bronze.consumers.stored import StoredTopic

    res.health["consumers"] = lambda: "starting"  # until every pipeline has its consumer
    announce: Announce | None = None
    stored_topic = res.settings.kafka.stored_topic
    if res.settings.kafka.servers and stored_topic:  # Kafka only: the next layer reads it there
        from mm_bronze.bus.kafka import KafkaBus

        assert isinstance(res.bus, KafkaBus)
        await res.bus.ensure_topics([stored_topic])
        announce = StoredTopic(res.bus.publish_many, stored_topic).announce
    pipelines: list[PersistPipeline] = []
    consumers = []
    for source, (topic, group) in res.topics().items():
        counted = res.metrics.consumer(source)
        for _ in range(res.settings.consumer.concurrency):
            consumer = await res.bus.consumer(topic, group)
            consumers.append(consumer)
            pipelines.append(
                PersistPipeline(
                    consumer,
                    res.storage,
                    res.db.pool,
                    res.settings.consumer,
                    metrics=counted,
                    announce=announce,
                    deployment=res.deployment,
                )
            )

    def degraded() -> str | None:
        return next((p.degraded for p in pipelines if p.degraded), None)

    res.health["consumers"] = degraded
    log.info("consumers running", pipelines=len(pipelines))
    # Set by the process's stop, or by a pipeline that fails (another deployment's events,
    # ``bus.stamp``): the others then end their batch and stop, as at a stop, before their
    # consumers close.
    halt = asyncio.Event()
    relay = asyncio.create_task(_when_set(stop, halt.set))
    runs = [asyncio.ensure_future(_halting(p.run(halt), halt)) for p in pipelines]
    try:
        await _run_until_stopped(
            asyncio.gather(*runs, return_exceptions=True),
            halt,
            grace=res.settings.consumer.stop_grace,
        )
    finally:
        relay.cancel()
        for consumer in consumers:
            await consumer.close()
        log.info("consumers stopped", stored=sum(p.stored for p in pipelines))
    for run in runs:
        if not run.cancelled() and (failure := run.exception()) is not None:
            raise failure


async def _halting(run: Coroutine[Any, Any, None], halt: asyncio.Event) -> None:
    """``run``; should it fail, ``halt`` is set first."""
    try:
        await run
    except Exception:
        halt.set()
        raise


async def _run_until_stopped(
    runs: asyncio.Future[Any], stop: asyncio.Event, *, grace: float
) -> None:
    """Wait for ``runs``; once ``stop`` is set, for ``grace`` seconds more at most
    (``consumer.stop_grace``), then cancel them. A batch waiting on a store or database that
    does not answer would otherwise hold the stop for as long as that lasts; a cancelled batch
    is not acknowledged but given back (``PersistPipeline``), so it is delivered again (its
    writes are idempotent), as after a crash."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({runs, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not runs.done():
            await asyncio.wait({runs}, timeout=grace)
        if not runs.done():
            log.warning("consumers cancelled: a batch did not finish in time", grace=grace)
            runs.cancel()
            await asyncio.wait({runs})
    finally:
        stopping.cancel()
        runs.cancel()  # when this wait itself is cancelled; nothing once runs is done


async def run_mllp(res: Resources, stop: asyncio.Event) -> None:
    from mm_bronze.ingest.mllp.access import PeerPolicy, check_exposure, server_ssl_context
    from mm_bronze.ingest.mllp.receiver import MessageReceiver
    from mm_bronze.ingest.mllp.server import MllpServer

    settings = res.settings.mllp
    check_exposure(settings)
    receiver = MessageReceiver(
        bus=res.bus,
        topic=res.topics()["mllp"][0],
        staging=res.storage.staging,
        inline_limit=settings.inline_limit,
        metrics=res.metrics.door("mllp"),
    )
    policy = PeerPolicy(settings.allowed_peers, settings.tls_client_fingerprints)
    ssl_context = server_ssl_context(settings)
    server = MllpServer(
        settings,
        receiver,
        policy=policy,
        ssl_context=ssl_context,
        connections=res.metrics.mllp_connections,
    )
    res.health["mllp"] = lambda: "starting"
    try:
        await server.open()
    except OSError as exc:
        raise bind_error(mllp_door(res.settings), exc) from None
    res.health["mllp"] = lambda: None
    log.info("mllp listening", host=settings.host, port=server.port, tls=ssl_context is not None)
    try:
        await stop.wait()
    finally:
        await server.close()


async def run_sftp(res: Resources, stop: asyncio.Event) -> None:
    from mm_bronze.ingest.sftp.door import run_sftp_door

    topic = res.topics()["sftp"][0]
    # Starting until it listens: its start replays kept uploads first, which may take long,
    # and /readyz must not answer ready meanwhile.
    res.health["sftp"] = lambda: "starting"
    try:
        await run_sftp_door(
            res.settings,
            res.bus,
            res.storage.staging,
            topic,
            res.health,
            stop,
            metrics=res.metrics.door("sftp"),
        )
    except OSError as exc:
        raise bind_error(sftp_door(res.settings), exc) from None


def metrics_door(settings: Settings) -> Door:
    metrics = settings.metrics
    return Door(
        "metrics",
        metrics.host,
        metrics.port,
        port_names="MM_BRONZE_METRICS_PORT or metrics.port",
        host_names="MM_BRONZE_METRICS_HOST or metrics.host",
    )


async def run_metrics(res: Resources, stop: asyncio.Event) -> None:
    """``GET /metrics`` on ``metrics.port``, beside whatever roles the process runs."""
    from mm_bronze.metrics.server import serve_metrics

    try:
        await serve_metrics(res.metrics, res.settings.metrics, stop)
    except OSError as exc:
        raise bind_error(metrics_door(res.settings), exc) from None


# The order in which roles start; their help texts are in mm_bronze.cli.parser.
ROLES: dict[str, Role] = {
    "http": Role("http", run_http, http_door),
    "consumers": Role("consumers", run_consumers),
    "mllp": Role("mllp", run_mllp, mllp_door),
    "sftp": Role("sftp", run_sftp, sftp_door),
}
