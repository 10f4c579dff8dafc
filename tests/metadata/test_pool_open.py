"""Opening the pool: when PostgreSQL refuses, the error says why, not only that it waited."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from mm_bronze.errors import Unavailable
from mm_bronze.metadata import Database
from mm_bronze.metadata import pool as pool_module


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"dbname": "no_such_database"}, 'database "no_such_database" does not exist'),
        ({"user": "no_such_role"}, 'role "no_such_role" does not exist'),
    ],
)
async def test_a_refused_connection_names_its_cause(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, str], why: str
) -> None:
    monkeypatch.setattr(pool_module, "OPEN_WAIT", 1.0)
    db = Database(psycopg.conninfo.make_conninfo(dsn, **change), tmp_path)
    with pytest.raises(Unavailable) as caught:
        await db.open()
    message = str(caught.value)
    assert message.startswith("cannot connect to PostgreSQL: connection failed: ")
    assert why in message and "pool initialization" not in message
