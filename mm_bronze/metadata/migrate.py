"""Versioned SQL migrations (``migrations/NNNN_name.sql``), applied once each, in order."""

from __future__ import annotations

from importlib import resources

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

log = structlog.get_logger(__name__)

# Any constant works; it only has to be the same for every mm-bronze process.
MIGRATION_LOCK = 0x6D6D_6272


def available() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every packaged migration, in order."""
    out = []
    for entry in resources.files("mm_bronze.metadata.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            out.append((int(version), name, entry.read_text(encoding="utf-8")))
    return sorted(out)


async def migrate(pool: AsyncConnectionPool[AsyncConnection]) -> list[int]:
    """Apply pending migrations under an advisory lock; return the versions applied."""
    applied: list[int] = []
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE SCHEMA IF NOT EXISTS ingestion")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS ingestion.schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM ingestion.schema_migrations")
        done = {row[0] for row in await cur.fetchall()}
        for version, name, sql in available():
            if version in done:
                continue
            await conn.execute(sql.encode())
            await conn.execute(
                "INSERT INTO ingestion.schema_migrations (version, name) VALUES (%s, %s)",
                (version, name),
            )
            applied.append(version)
            log.info("migration applied", version=version, name=name)
    return applied


async def pending(conn: AsyncConnection) -> tuple[list[int], list[int]]:
    """Without changing anything: the packaged migrations not yet applied, and the versions
    applied that this build does not know (the database was migrated by a newer one)."""
    known = [version for version, _, _ in available()]
    cur = await conn.execute("SELECT to_regclass('ingestion.schema_migrations')")
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return known, []
    cur = await conn.execute("SELECT version FROM ingestion.schema_migrations")
    done = {int(version) for (version,) in await cur.fetchall()}
    return [v for v in known if v not in done], sorted(done - set(known))
