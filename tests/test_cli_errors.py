"""A user's mistake on the command line is one clear line and exit status 2, never a traceback.

Every subcommand is run with a missing file, a bad value and an unknown flag. Mistakes in
the arguments come after that subcommand's usage; a bad setting is one line of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services.mm_bronze import run_cli

MISSING = "/nonexistent/mm-bronze-missing"
# Each subcommand with the arguments it needs to get past parsing.
COMMANDS: dict[str, list[str]] = {
    "serve": ["serve", "--all"],
    "migrate": ["migrate"],
    "config": ["config"],
    "status": ["status", "3f1c2a7e-0000-4000-8000-000000000000"],
    "clients add": ["clients", "add", "partner"],
    "clients list": ["clients", "list"],
    "clients remove": ["clients", "remove", "partner"],
    "users add": ["users", "add", "lab1", "--key", "KEY"],
    "users list": ["users", "list"],
    "users remove": ["users", "remove", "lab1"],
    "users add-key": ["users", "add-key", "lab1"],
    "db url": ["db", "url"],
    "db shell": ["db", "shell"],
    "validate": ["validate", "FILE"],
    "fhir split": ["fhir", "split", "FILE", "--out", "OUT"],
    "doctor": ["doctor"],
    "storage compression-report": ["storage", "compression-report"],
}
# A bad value for each: (arguments, environment).
BAD_VALUES: dict[str, tuple[list[str], dict[str, str]]] = {
    "serve": (["serve", "--all", "--http-port", "eighty"], {}),
    "migrate": (["migrate"], {"SFTP_PORT": "x"}),
    "config": (["config"], {"API_MAX_FILE_SIZE": "10MB"}),
    "status": (["status", "not-a-uuid"], {}),
    "clients add": (["clients", "add", "partner"], {"MM_BRONZE_LOG_LEVEL": "loud"}),
    "clients list": (["clients", "list"], {"DB_MAX_SIZE": "many"}),
    "clients remove": (["clients", "remove", "p"], {"MM_BRONZE_CONSUMER_BATCH_SIZE": "lots"}),
    "users add": (["users", "add", "lab1", "--perms", "fly"], {}),
    "users list": (["users", "list"], {"SFTP_MAX_FILE_SIZE": "1GB"}),
    "users remove": (["users", "remove", "no/such/user"], {}),
    "users add-key": (["users", "add-key", "../escape"], {}),
    "db url": (["db", "url"], {"MM_BRONZE_POSTGRES_MIN_SIZE": "two"}),
    "db shell": (["db", "shell"], {"MM_BRONZE_STORAGE_COMPRESSION": "rar"}),
    "validate": (["validate", "--fhir-version", "R9", "FILE"], {}),
    "fhir split": (["fhir", "split", "FILE"], {}),  # --out missing
    # doctor reports a bad setting as a failed check (tests/doctor), not as a usage error.
    "doctor": (["doctor", "--min-free", "lots"], {}),
    "storage compression-report": (["storage", "compression-report", "--sample", "0"], {}),
}


def _one_clear_line(result: object, *, usage_of: str | None) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 2, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    if usage_of is None:
        assert len(lines) == 1, stderr
    else:
        assert lines[0].startswith(f"usage: mm-bronze {usage_of} "), stderr
        assert lines[-1].startswith(f"mm-bronze {usage_of}: error: "), stderr
        assert sum("error" in line for line in lines) == 1, stderr
    return lines[-1]


def _fill(args: list[str], tmp_path: Path, file: str) -> list[str]:
    return [
        file if a in ("FILE", "KEY") else str(tmp_path / "out") if a == "OUT" else a for a in args
    ]


@pytest.mark.parametrize("name", COMMANDS)
def test_a_missing_file(name: str, tmp_path: Path) -> None:
    args = COMMANDS[name]
    if "FILE" in args or "KEY" in args:
        line = _one_clear_line(
            run_cli(*_fill(args, tmp_path, MISSING), "--data-dir", str(tmp_path)),
            usage_of=name,
        )
        assert MISSING in line
    line = _one_clear_line(
        run_cli(*_fill(args, tmp_path, str(tmp_path)), "--config", MISSING), usage_of=name
    )
    assert line.endswith(f"--config {MISSING}: no such file")


@pytest.mark.parametrize("name", BAD_VALUES)
def test_a_bad_value(name: str, tmp_path: Path) -> None:
    args, env = BAD_VALUES[name]
    (tmp_path / "sftp").mkdir()
    usage = not env and name not in ("users remove", "users add-key")
    line = _one_clear_line(
        run_cli(*_fill(args, tmp_path, str(tmp_path)), "--data-dir", str(tmp_path), env=env),
        usage_of=name if usage else None,
    )
    for key, value in env.items():
        assert key in line and (value in line or "DSN" in key)


@pytest.mark.parametrize("name", COMMANDS)
def test_an_unknown_flag(name: str, tmp_path: Path) -> None:
    args = _fill(COMMANDS[name], tmp_path, str(tmp_path))
    line = _one_clear_line(run_cli(*args, "--colour"), usage_of=name)
    assert line.endswith("unrecognized arguments: --colour")


def test_an_unknown_command() -> None:
    result = run_cli("serv")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "invalid choice: 'serv'" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_help_is_plain_text(name: str) -> None:
    result = run_cli(*name.split(), "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: mm-bronze {name}".rstrip())
    assert "``" not in result.stdout  # no reST markup


def test_serve_without_roles_is_a_usage_error(tmp_path: Path) -> None:
    line = _one_clear_line(run_cli("serve", "--data-dir", str(tmp_path)), usage_of="serve")
    assert line.endswith(
        "choose the roles to run: --all, or any of --http, --consumers, --mllp, --sftp"
    )
    assert not any(tmp_path.iterdir())


def test_a_reader_that_goes_away_is_not_a_traceback(tmp_path: Path) -> None:
    """``mm-bronze ... | head -1``: the pipe closes before the output is written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mm_bronze", "config", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("MM_BRONZE_")},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["submissions", "list", "--format", "fhir/json"],
            "argument --format: 'fhir/json' is not a format name such as fhir or hl7",
        ),
        (
            ["submissions", "get", "3f1c2a7e-0000-4000-8000-000000000000", "--out", MISSING + "/x"],
            f"--out {MISSING}/x: no such directory {MISSING}",
        ),
        (
            ["submissions", "get", "3f1c2a7e-0000-4000-8000-000000000000", "--out", "/tmp"],
            "--out /tmp: is a directory; name the file to write",
        ),
    ],
)
def test_submissions_mistakes_are_usage_errors(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = run_cli(*args, "--data-dir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr
