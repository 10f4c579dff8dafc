"""PostgreSQL reachable, and its schema at the version this build expects (nothing applied)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import psycopg

from mm_bronze.doctor.check import Check, describe, failed, passed
from mm_bronze.metadata.migrate import pending
from mm_bronze.settings import Settings

CONNECT_TIMEOUT = 3  # seconds; psycopg's connect_timeout takes whole seconds


async def check_postgres(settings: Settings, stack: AsyncExitStack) -> tuple[Check, str]:
    """The check, and the DSN to use for the checks that follow ("" when unreachable).

    The embedded server is started (or joined, when ``serve`` runs) for the doctor's run,
    the way ``mm-bronze db shell`` does, but never created: a missing one is a failure.
    """
    name = "postgres"
    dsn = settings.postgres.dsn
    where = "postgres.dsn"
    if not dsn:
        from mm_bronze.metadata.embedded import EmbeddedPostgres, pgdata_for

        pgdata = pgdata_for(settings.data_path)
        where = f"embedded at {pgdata}"
        if not pgdata.is_dir():
            return failed(
                name,
                f"no embedded database at {pgdata}",
                "point --data-dir (MM_BRONZE_DATA_DIR) at the directory `mm-bronze serve` uses, "
                "run `mm-bronze migrate` to create the database there, or set postgres.dsn",
            ), ""
        try:
            server = await stack.enter_async_context(EmbeddedPostgres(pgdata))
        except Exception as exc:
            return failed(
                name,
                f"the embedded PostgreSQL at {pgdata} does not start: {describe(exc)}",
                f"look at {pgdata}/log or the server log, and check the disk is not full",
            ), ""
        dsn = server.dsn
    try:
        row = await fetch_one(dsn, "SHOW server_version")
    except psycopg.Error as exc:
        return failed(
            name,
            f"cannot connect ({where}): {describe(exc)}",
            "check that PostgreSQL runs and that postgres.dsn (POSTGRES_DSN) names the right "
            "host, port, database and credentials",
        ), ""
    version = row[0].split()[0] if row else "?"
    return passed(name, f"PostgreSQL {version} reachable ({where})"), dsn


async def fetch_one(dsn: str, query: str) -> tuple[Any, ...] | None:
    """The first row of ``query``, on a connection of its own that gives up after
    ``CONNECT_TIMEOUT``; raises ``psycopg.Error``."""
    async with await psycopg.AsyncConnection.connect(
        dsn, connect_timeout=CONNECT_TIMEOUT, autocommit=True
    ) as conn:
        cur = await conn.execute(query)
        return await cur.fetchone()


async def check_migrations(dsn: str) -> Check:
    name = "migrations"
    try:
        async with await psycopg.AsyncConnection.connect(
            dsn, connect_timeout=CONNECT_TIMEOUT, autocommit=True
        ) as conn:
            missing, unknown = await pending(conn)
    except psycopg.Error as exc:
        return failed(
            name,
            f"cannot read the schema version: {describe(exc)}",
            "check that the database user may read the ingestion schema",
        )
    if unknown:
        return failed(
            name,
            f"the database has migration(s) {_versions(unknown)} that this mm-bronze does not "
            "know: a newer version migrated it",
            "run the mm-bronze version that migrated this database (or a newer one)",
        )
    if missing:
        return failed(
            name,
            f"migration(s) {_versions(missing)} not applied",
            "run `mm-bronze migrate` with the same settings (`mm-bronze serve` also applies "
            "them at start)",
        )
    return passed(name, "schema up to date")


def _versions(versions: list[int]) -> str:
    return ", ".join(f"{v:04d}" for v in versions)
