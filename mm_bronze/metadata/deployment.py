"""The bus a deployment publishes to, recorded in its database.

Every process of a deployment shares one database and must share one bus. A process that
misses the shared Kafka setting would otherwise start on the embedded queue and acknowledge
what it receives there, where no consumer of the deployment reads it. So the first process
that starts records its bus (``ingestion.deployment``), and each later one is checked
against it (``check_bus``):

- the same bus: it starts;
- Kafka where the embedded queue is recorded: it starts, and the deployment moves to Kafka,
  only if the embedded queue holds nothing (no event waiting, no dead letter), which would
  otherwise wait for good; else it is refused;
- the embedded queue where Kafka is recorded: it is refused. Kafka's backlog cannot be seen
  from here; an operator who has drained it moves the deployment back with
  ``mm-bronze db bus embedded`` (``record_bus``).

The record also holds the deployment's id, which its processes stamp on what they publish to
Kafka (``mm_bronze.bus.stamp``): a database that replaces the deployment's takes it over
(``adopt``).
"""

from __future__ import annotations

from uuid import UUID

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze.errors import ConfigError

log = structlog.get_logger(__name__)

EMBEDDED, KAFKA = "embedded", "kafka"
# One check at a time: processes that start together record one bus, not one each.
_LOCK = 0x6D6D_6275


class WrongBus(ConfigError):
    """This process is configured for another bus than its deployment's."""


def bus_of(kafka_servers: str) -> str:
    """The bus a process with ``kafka.servers`` set to ``kafka_servers`` publishes to."""
    return KAFKA if kafka_servers else EMBEDDED


async def check_bus(pool: AsyncConnectionPool[AsyncConnection], bus: str) -> str:
    """Record ``bus`` as the deployment's if none is, or check it against the one recorded;
    raise ``WrongBus`` where this process would strand what it accepts. Returns the
    deployment's id."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        recorded = await recorded_bus(conn)
        if recorded != bus:
            problem = await _refusal(conn, bus, recorded)
            if problem is not None:
                detail, fix = problem
                raise WrongBus(f"wrong bus: {detail}. {fix[0].upper()}{fix[1:]}")
            await _record(conn, bus)
            if recorded is not None:
                log.info("deployment moved to kafka: the embedded queue is empty")
        deployment = await recorded_id(conn)
        assert deployment is not None  # recorded above if it was not
        return deployment


async def recorded_bus(conn: AsyncConnection) -> str | None:
    """The bus recorded for the deployment; None if none is (or the database predates the
    record)."""
    cur = await conn.execute("SELECT to_regclass('ingestion.deployment')")
    exists = await cur.fetchone()
    if exists is None or exists[0] is None:
        return None
    cur = await conn.execute("SELECT bus FROM ingestion.deployment")
    row = await cur.fetchone()
    return None if row is None else str(row[0])


async def recorded_id(conn: AsyncConnection) -> str | None:
    """The deployment's id; None if no deployment is recorded yet. Raises ``psycopg.Error``
    on a database that predates the id (migration 0008)."""
    cur = await conn.execute("SELECT id::text FROM ingestion.deployment")
    row = await cur.fetchone()
    return None if row is None else str(row[0])


async def refusal(conn: AsyncConnection, bus: str) -> tuple[str, str] | None:
    """Why a process publishing to ``bus`` must not start on this database, and what to do
    about it; None if it may (changes nothing)."""
    return await _refusal(conn, bus, await recorded_bus(conn))


async def _refusal(conn: AsyncConnection, bus: str, recorded: str | None) -> tuple[str, str] | None:
    """``refusal``, the deployment's bus being ``recorded``."""
    if recorded is None or recorded == bus:
        return None
    if recorded == KAFKA:
        return (
            "this database's deployment publishes to Kafka, and these settings have no "
            "kafka.servers: what a process accepted with them would wait on the embedded "
            "queue, which no consumer of the deployment reads",
            "set kafka.servers (KAFKA_SERVERS) as on the deployment's other processes; to move "
            "the deployment back to the embedded queue, drain Kafka, then run "
            "`mm-bronze db bus embedded`",
        )
    events, letters = await _embedded_backlog(conn)
    if not (events or letters):
        return None  # nothing would be stranded: the deployment may move to Kafka
    return (
        "this database's deployment publishes to the embedded queue, which still holds "
        f"{events} event(s) and {letters} dead letter(s): on Kafka they would wait for good",
        "let consumers without kafka.servers store them, and replay or purge the dead letters "
        "(`mm-bronze dlq`), before moving to Kafka; or leave kafka.servers empty, as on the "
        "deployment's other processes",
    )


async def record_bus(pool: AsyncConnectionPool[AsyncConnection], bus: str) -> str | None:
    """Record ``bus`` as the deployment's whatever was recorded; return what was."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        recorded = await recorded_bus(conn)
        await _record(conn, bus)
        return recorded


async def adopt(
    pool: AsyncConnectionPool[AsyncConnection], deployment: UUID, bus: str
) -> str | None:
    """Make ``deployment`` this database's id (its bus ``bus`` if none is recorded yet), for a
    database that replaces that deployment's; return the id it had, if any."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        before = await recorded_id(conn)
        await conn.execute(
            "INSERT INTO ingestion.deployment (bus, id) VALUES (%s, %s) ON CONFLICT (singleton)"
            " DO UPDATE SET id = excluded.id, recorded_at = now()",
            (bus, deployment),
        )
        return before


async def _record(conn: AsyncConnection, bus: str) -> None:
    await conn.execute(
        "INSERT INTO ingestion.deployment (bus) VALUES (%s) ON CONFLICT (singleton)"
        " DO UPDATE SET bus = excluded.bus, recorded_at = now()",
        (bus,),
    )


async def _embedded_backlog(conn: AsyncConnection) -> tuple[int, int]:
    """Events waiting on the embedded queue, and its dead letters (none if it never ran)."""
    counts: list[int] = []
    for table in ("bus.messages", "bus.dead_letters"):
        cur = await conn.execute("SELECT to_regclass(%s)", (table,))
        exists = await cur.fetchone()
        if exists is None or exists[0] is None:
            counts.append(0)
            continue
        cur = await conn.execute(f"SELECT count(*) FROM {table}")
        found = await cur.fetchone()
        counts.append(int(found[0]) if found else 0)
    return counts[0], counts[1]
