"""Shared fixtures: a real PostgreSQL, fresh databases, mm-bronze processes, the corpus."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.mm_bronze import MmBronze
from tests.services.object_stores import (  # noqa: F401 (fixtures)
    azure,
    gcs,
    object_store,
    s3,
    s3_alone,
)
from tests.services.postgres import create_database, outside_pytest_tmp, postgres_server

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

# Processes the tests start see only what `make install` installs (see its sitecustomize).
INSTALLED_SITE = Path(__file__).parent / "services" / "installed_site"
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(INSTALLED_SITE), os.environ.get("PYTHONPATH")) if p
)


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    with (
        outside_pytest_tmp("mmb-test-pg-") as workdir,
        postgres_server(workdir, durable=False) as dsn,
    ):
        yield dsn


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A data dir for tests of the embedded PostgreSQL itself."""
    with outside_pytest_tmp("mmb-test-data-") as workdir:
        yield workdir


@pytest.fixture
def dsn(pg_admin_dsn: str) -> str:
    """A fresh, empty database for one test."""
    return create_database(pg_admin_dsn)


@pytest.fixture(scope="module")
def module_dsn(pg_admin_dsn: str) -> str:
    return create_database(pg_admin_dsn)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[MmBronze]:
    """One `serve --all` process per test module, on its own database and data dir."""
    proc = MmBronze(tmp_path_factory.mktemp("mmb"), env={"POSTGRES_DSN": module_dsn})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"test corpus not found at {CORPUS}")
    return CORPUS
