"""Only ``serve`` and ``migrate`` create a data directory; the others refuse, naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NEEDS_DATA = {
    "status": ["status", "3f1c2a7e-0000-4000-8000-000000000000"],
    "clients add": ["clients", "add", "partner"],
    "clients list": ["clients", "list"],
    "clients remove": ["clients", "remove", "partner"],
    "users add": ["users", "add", "lab1", "--password-stdin"],
    "users list": ["users", "list"],
    "users remove": ["users", "remove", "lab1"],
    "users add-key": ["users", "add-key", "lab1"],
    "db url": ["db", "url"],
    "db shell": ["db", "shell"],
    "storage compression-report": ["storage", "compression-report"],
}


def run_in(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``mm-bronze`` run from ``cwd``, as a user in another directory would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MM_BRONZE_")}
    return subprocess.run(
        [sys.executable, "-m", "mm_bronze", *args],
        cwd=cwd,
        env={**full_env, **(env or {})},
        capture_output=True,
        text=True,
        input="x-Passw0rd-long\n",
        timeout=120,
    )


@pytest.mark.parametrize("name", NEEDS_DATA)
def test_commands_refuse_a_missing_data_directory_and_create_nothing(
    name: str, tmp_path: Path
) -> None:
    result = run_in(tmp_path, *NEEDS_DATA[name])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    looked = tmp_path / "data" if name.startswith("users") else tmp_path / "data" / "pg"
    assert f" at {looked} (the default ./data, in the current directory)" in line
    for way in ("--data-dir", "MM_BRONZE_DATA_DIR", "--config"):
        assert way in line
    assert not (tmp_path / "data").exists()


def test_the_refusal_says_where_the_name_came_from(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    by_flag = run_in(tmp_path, "clients", "list", "--data-dir", str(elsewhere))
    assert f"no embedded database at {elsewhere}/pg (from --data-dir)" in by_flag.stderr
    by_env = run_in(tmp_path, "users", "list", env={"MM_BRONZE_DATA_DIR": str(elsewhere)})
    assert f"no data directory at {elsewhere} (from MM_BRONZE_DATA_DIR)" in by_env.stderr
    config = tmp_path / "c.toml"
    config.write_text(f'data_dir = "{elsewhere}"\n')
    by_file = run_in(
        tmp_path, "status", "3f1c2a7e-0000-4000-8000-000000000000", "--config", str(config)
    )
    assert "(from data_dir in the configuration file)" in by_file.stderr
    assert not elsewhere.exists()


def test_an_external_database_needs_no_data_directory(tmp_path: Path, dsn: str) -> None:
    result = run_in(tmp_path, "clients", "list", env={"POSTGRES_DSN": dsn})
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "data").exists()


def test_migrate_creates_it_with_an_external_database_too(tmp_path: Path, dsn: str) -> None:
    """The data directory holds more than the embedded database (SFTP users, host keys)."""
    created = run_in(tmp_path, "migrate", env={"POSTGRES_DSN": dsn})
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "data").is_dir() and not (tmp_path / "data" / "pg").exists()
    listed = run_in(tmp_path, "users", "list", env={"POSTGRES_DSN": dsn})
    assert listed.returncode == 0, listed.stderr


def test_migrate_creates_it_and_other_commands_then_use_it(tmp_path: Path) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    created = run_in(work, "migrate")
    assert created.returncode == 0, created.stderr
    assert (work / "data" / "pg").is_dir()
    added = run_in(elsewhere, "clients", "add", "partner", "--data-dir", str(work / "data"))
    assert added.returncode == 0, added.stderr
    listed = run_in(work, "clients", "list")
    assert listed.stdout.startswith("partner\t")
    assert not (elsewhere / "data").exists()
