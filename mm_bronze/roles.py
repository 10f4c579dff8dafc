"""The role registry: what ``serve --<role>`` starts. Each role wires adapters to a door."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import structlog

from mm_bronze.addresses import is_loopback
from mm_bronze.bus.pgqueue import PgQueueBus
from mm_bronze.consumers.persist import PersistPipeline
from mm_bronze.errors import ConfigError
from mm_bronze.formats.workers import ValidationWorkers
from mm_bronze.groupcommit import GroupCommitter
from mm_bronze.ingest.http.app import HttpDeps, build_app
from mm_bronze.ingest.http.auth import Authenticator
from mm_bronze.ingest.http.deps import PublishAccepted
from mm_bronze.ingest.http.server import serve_http
from mm_bronze.ingest.mllp.access import PeerPolicy, check_exposure, server_ssl_context
from mm_bronze.ingest.mllp.receiver import MessageReceiver
from mm_bronze.ingest.mllp.server import serve_mllp
from mm_bronze.ingest.sftp.door import run_sftp_door
from mm_bronze.metadata import clients, records
from mm_bronze.runtime import Resources, RoleRunner

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Role:
    name: str
    help: str
    run: RoleRunner


async def run_http(res: Resources, stop: asyncio.Event) -> None:
    settings = res.settings.http
    pool = res.db.pool
    count = await clients.client_count(pool)
    loopback = is_loopback(settings.host)
    if count == 0 and not loopback:
        raise ConfigError(
            f"refusing to serve HTTP on non-loopback address {settings.host} without API "
            "clients: create one with `mm-bronze clients add NAME`"
        )
    if count == 0:
        log.warning("no API clients configured: accepting unauthenticated requests on loopback")

    async def flush(entries: list[tuple[str, str, str | None]]) -> None:
        await records.log_status(pool, entries)

    status_log: GroupCommitter[tuple[str, str, str | None]] = GroupCommitter(flush)
    bus = res.bus
    publish: PublishAccepted
    if isinstance(bus, PgQueueBus):
        # The event and its "accepted" entry in one statement, one commit.
        publish = bus.publish_accepted
    else:

        async def publish(topic: str, key: bytes, value: bytes, submission: str) -> None:
            await bus.publish(topic, key, value)
            try:
                await status_log.submit((submission, "accepted", None))
            except Exception as exc:  # the event is durable; the entry is informational
                log.warning("accepted status not logged", uuid=submission, error=type(exc).__name__)

    workers_wanted = settings.validation_workers
    if workers_wanted < 0:
        workers_wanted = os.cpu_count() or 1
    workers = ValidationWorkers(workers_wanted) if workers_wanted > 0 else None
    await status_log.open()
    if workers is not None:
        await workers.open()
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
                validation_level=res.settings.validation.level,
                validation_workers=workers,
            )
        )
        log.info("http listening", host=settings.host, port=settings.port)
        await serve_http(app, settings, stop)
    finally:
        await status_log.close()
        if workers is not None:
            await workers.close()


async def run_consumers(res: Resources, stop: asyncio.Event) -> None:
    pipelines: list[PersistPipeline] = []
    consumers = []
    for topic, group in res.topics().values():
        for _ in range(res.settings.consumer.concurrency):
            consumer = await res.bus.consumer(topic, group)
            consumers.append(consumer)
            pipelines.append(
                PersistPipeline(consumer, res.storage, res.db.pool, res.settings.consumer)
            )

    def degraded() -> str | None:
        return next((p.degraded for p in pipelines if p.degraded), None)

    res.health["consumers"] = degraded
    log.info("consumers running", pipelines=len(pipelines))
    try:
        await asyncio.gather(*(p.run(stop) for p in pipelines))
    finally:
        for consumer in consumers:
            await consumer.close()
        log.info("consumers stopped", stored=sum(p.stored for p in pipelines))


async def run_mllp(res: Resources, stop: asyncio.Event) -> None:
    settings = res.settings.mllp
    check_exposure(settings)
    receiver = MessageReceiver(
        bus=res.bus,
        topic=res.topics()["mllp"][0],
        staging=res.storage.staging,
        inline_limit=settings.inline_limit,
    )
    policy = PeerPolicy(settings.allowed_peers, settings.tls_client_fingerprints)
    ssl_context = server_ssl_context(settings)
    log.info("mllp listening", host=settings.host, port=settings.port, tls=ssl_context is not None)
    await serve_mllp(settings, receiver, stop, policy=policy, ssl_context=ssl_context)


async def run_sftp(res: Resources, stop: asyncio.Event) -> None:
    topic = res.topics()["sftp"][0]
    await run_sftp_door(res.settings, res.bus, res.storage.staging, topic, res.health, stop)


ROLES: dict[str, Role] = {
    "http": Role("http", "the HTTP front door (POST /ingest/...)", run_http),
    "consumers": Role(
        "consumers", "the persist pipeline (bus → storage → metadata)", run_consumers
    ),
    "mllp": Role("mllp", "the MLLP listener for HL7 v2 (port 2575)", run_mllp),
    "sftp": Role("sftp", "the SFTP front door (uploads land on close)", run_sftp),
}
