"""A database migrated as an earlier version left it, to test a later migration on it."""

from __future__ import annotations

import psycopg

from mm_bronze.metadata.migrate import available


def migrate_before(conn: psycopg.Connection, version: int) -> None:
    """Apply, on ``conn`` (autocommit), every packaged migration older than ``version`` and
    record them as ``migrate`` does: ``mm-bronze migrate`` then applies the rest."""
    conn.execute("CREATE SCHEMA ingestion")
    conn.execute(
        "CREATE TABLE ingestion.schema_migrations (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    for number, name, sql in available():
        if number < version:
            conn.execute(sql.encode())
            conn.execute(
                "INSERT INTO ingestion.schema_migrations (version, name) VALUES (%s, %s)",
                (number, name),
            )
