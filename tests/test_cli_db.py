"""``mm-bronze db url`` and ``mm-bronze db shell`` reach the metadata database."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_bronze.cli.db import BUNDLED_PSQL, PSQL_MISSING, find_psql
from mm_bronze.errors import BronzeError
from tests.services.mm_bronze import run_cli

QUERY = "SELECT count(*) AS clients FROM ingestion.api_clients;\n"


def test_embedded_url_and_shell(embedded_data_dir: Path) -> None:
    data = ["--data-dir", str(embedded_data_dir)]
    assert run_cli("migrate", *data).returncode == 0
    assert run_cli("clients", "add", "partner", *data).returncode == 0

    url = run_cli("db", "url", *data)
    assert url.returncode == 0, url.stderr
    assert url.stdout.strip() == f"postgresql://postgres:@/metadata?host={embedded_data_dir}/pg"
    # Nobody serves this data directory: the URL works once `serve` runs.
    (note,) = url.stderr.splitlines()  # the URL alone on stdout, one note on stderr
    assert note.startswith("the embedded PostgreSQL is not running")

    shell = run_cli("db", "shell", *data, input=QUERY.encode())
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.split()[:3] == ["clients", "---------", "1"]


def test_external_url_and_shell(dsn: str, tmp_path: Path) -> None:
    env = {"POSTGRES_DSN": dsn}
    assert run_cli("migrate", "--data-dir", str(tmp_path), env=env).returncode == 0
    url = run_cli("db", "url", env=env)
    assert (url.returncode, url.stdout.strip(), url.stderr) == (0, dsn, "")
    shell = run_cli("db", "shell", env=env, input=QUERY.encode())
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.split()[:3] == ["clients", "---------", "0"]


def test_psql_from_path_else_the_bundled_client_else_a_clear_line(tmp_path: Path) -> None:
    assert BUNDLED_PSQL is not None and BUNDLED_PSQL.is_file()
    assert find_psql(search_path=str(tmp_path)) == str(BUNDLED_PSQL)
    with pytest.raises(BronzeError) as caught:
        find_psql(search_path=str(tmp_path), bundled=None)
    assert str(caught.value) == PSQL_MISSING
    assert "\n" not in PSQL_MISSING
