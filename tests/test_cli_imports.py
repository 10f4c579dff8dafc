"""Commands import only what they use: ``validate``, ``users``, ``clients`` and ``--help``
never load the Kafka client, the SSH server or the cloud storage SDKs (they take seconds).
How fast they start is measured in benchmarks/startup.py, not asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "confluent_kafka",
    "asyncssh",
    "s3fs",
    "gcsfs",
    "adlfs",
    "starlette",
    "hypercorn",
    "prometheus_client",
)
PROBE = """
import json, sys
from mm_bronze.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def imported(*args: str, env: dict[str, str] | None = None) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("MM_BRONZE_")},
            **(env or {}),
        },
    )
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [["--help"], ["validate", "--help"], ["status", "--help"], ["serve", "--help"]],
)
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    assert imported(*args) == []


def test_validate_imports_nothing_heavy(corpus: Path) -> None:
    assert imported("validate", str(corpus / "hl7v2")) == []


def test_admin_commands_import_nothing_heavy(tmp_path: Path, dsn: str) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert imported("users", "list", *data) == []
    assert imported("clients", "list", env={"POSTGRES_DSN": dsn}) == []
    assert (
        imported("status", "3f1c2a7e-0000-4000-8000-000000000000", env={"POSTGRES_DSN": dsn}) == []
    )
