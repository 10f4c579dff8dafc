"""Fixtures for ``mm-bronze doctor``: a broker of its own, TLS files, a healthy setup."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trustme

from tests.services.kafka import kafka_servers
from tests.services.mm_bronze import run_cli

Doctor = Callable[..., tuple[int, dict[str, dict[str, Any]]]]


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real broker (Tansu, or MM_BRONZE_TEST_KAFKA)."""
    with kafka_servers(tmp_path_factory.mktemp("kafka")) as servers:
        yield servers


@pytest.fixture(scope="module")
def migrated_dsn(module_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with every migration applied."""
    data = tmp_path_factory.mktemp("migrate")
    done = run_cli("migrate", "--data-dir", str(data), env={"POSTGRES_DSN": module_dsn})
    assert done.returncode == 0, done.stderr
    return module_dsn


def tls_files(directory: Path, *, days: int = 365) -> dict[str, str]:
    """A certificate valid for ``days`` more days, its key and the CA that issued it."""
    ca = trustme.CA()
    now = dt.datetime.now(dt.UTC)
    leaf = ca.issue_cert(
        "localhost", not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=days)
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "cert": directory / "cert.pem",
        "key": directory / "key.pem",
        "ca": directory / "ca.pem",
    }
    leaf.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    return {name: str(path) for name, path in paths.items()}


def host_key(path: Path, mode: int = 0o600) -> Path:
    import asyncssh

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    os.chmod(path, mode)
    return path


def run_doctor(
    *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Run ``mm-bronze doctor --json``; the exit status and the checks by name."""
    done = run_cli("doctor", "--json", *args, env=env)
    assert done.returncode in (0, 1), done.stderr
    report = msgspec.json.decode(done.stdout)
    assert report["ok"] is (done.returncode == 0)
    return done.returncode, {check["name"]: check for check in report["checks"]}
