"""The one PostgreSQL connection pool of the process (embedded server or external DSN)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze.errors import Unavailable
from mm_bronze.metadata.embedded import EmbeddedPostgres, pgdata_for
from mm_bronze.metadata.migrate import migrate

CONNECTION_WAIT = 10.0  # seconds
OPEN_WAIT = 30.0  # seconds the pool's first connections may take (a server still starting)


class Database:
    """Opens the embedded server when no DSN is given, then the pool, then migrates."""

    def __init__(self, dsn: str, data_dir: Path, *, min_size: int = 2, max_size: int = 10) -> None:
        self._dsn = dsn
        self._embedded = None if dsn else EmbeddedPostgres(pgdata_for(data_dir))
        self._min_size = min_size
        self._max_size = max_size
        self._pool: AsyncConnectionPool[AsyncConnection] | None = None

    @property
    def pool(self) -> AsyncConnectionPool[AsyncConnection]:
        if self._pool is None:
            raise RuntimeError("Database is not open")
        return self._pool

    @property
    def dsn(self) -> str:
        return self._embedded.dsn if self._embedded else self._dsn

    async def open(self, *, run_migrations: bool = True) -> None:
        if self._pool is not None:
            return
        if self._embedded is not None:
            await self._embedded.open()
        pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
            self.dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            open=False,
            name="mm-bronze",
            kwargs={"autocommit": True},
            # How long a request waits for a connection before it fails (psycopg's default is
            # 30 s): with PostgreSQL down, a door answers 503 within this, not after a wait
            # longer than most clients' own timeouts.
            timeout=CONNECTION_WAIT,
        )
        try:
            await pool.open(wait=True, timeout=OPEN_WAIT)
        except psycopg.OperationalError as exc:
            await pool.close()
            cause = await _refusal(self.dsn) or exc  # the pool says only that it timed out
            raise Unavailable(f"cannot connect to PostgreSQL: {_first_line(cause)}") from exc
        except Exception:
            await pool.close()
            raise
        self._pool = pool
        if run_migrations:
            await migrate(pool)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        if self._embedded is not None:
            await self._embedded.close()

    async def ping(self) -> None:
        try:
            async with self.pool.connection(timeout=5) as conn:
                await conn.execute("SELECT 1")
        except (psycopg.Error, TimeoutError) as exc:
            raise Unavailable(f"database unreachable: {type(exc).__name__}") from exc

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _refusal(dsn: str) -> psycopg.OperationalError | None:
    """Why a connection to ``dsn`` fails now (a wrong password, no such database, nothing
    listening), or None when one succeeds."""
    try:
        conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=10)
    except psycopg.OperationalError as exc:
        return exc
    await conn.close()
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
