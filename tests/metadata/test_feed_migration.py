"""Migration 0004 on a database that already holds submissions: each gets a seq, in the
order it was recorded, and new submissions continue after them."""

from __future__ import annotations

import psycopg

from tests.metadata.migrated_before import migrate_before
from tests.services.mm_bronze import run_cli

OBJECT = "11111111-1111-4111-8111-111111111111"
# (submission, recorded_at): inserted out of order on purpose.
EXISTING = [
    ("33333333-3333-4333-8333-333333333333", "2026-12-01T10:00:03Z"),
    (OBJECT, "2026-12-01T10:00:01Z"),
    ("22222222-2222-4222-8222-222222222222", "2026-12-01T10:00:02Z"),
]


def test_existing_submissions_get_seqs_in_recorded_order(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate_before(conn, 4)
        conn.execute(
            "INSERT INTO ingestion.raw_ingestion (object_id, ingestion_source, storage_path,"
            " fingerprint, object_size) VALUES (%s, 'api', 'file:///x', %s, 1)",
            (OBJECT, b"\x01" * 32),
        )
        for submission, recorded_at in EXISTING:
            conn.execute(
                "INSERT INTO ingestion.submissions (submission_id, object_id, is_duplicate,"
                " ingestion_source, client, payload_size, received_at, recorded_at)"
                " VALUES (%s, %s, %s, 'api', 'alice', 1, %s, %s)",
                (submission, OBJECT, submission != OBJECT, recorded_at, recorded_at),
            )
    result = run_cli("migrate", env={"POSTGRES_DSN": dsn})
    assert result.returncode == 0, result.stderr
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT submission_id::text, seq FROM ingestion.submissions ORDER BY seq"
        ).fetchall()
        assert [sid for sid, _ in rows] == [s for s, _ in sorted(EXISTING, key=lambda e: e[1])]
        assert [seq for _, seq in rows] == [1, 2, 3]
        conn.execute(
            "INSERT INTO ingestion.submissions (submission_id, object_id, is_duplicate,"
            " ingestion_source, payload_size, received_at)"
            " VALUES (gen_random_uuid(), %s, true, 'api', 1, now())",
            (OBJECT,),
        )
        (newest,) = conn.execute("SELECT max(seq) FROM ingestion.submissions").fetchone() or (0,)
    assert newest == 4
