"""The bus a deployment publishes to is recorded in its database: a process configured for
the other one is refused rather than left to strand what it accepts."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from mm_bronze.bus import pgqueue
from mm_bronze.metadata import Database
from mm_bronze.metadata.deployment import WrongBus, adopt, check_bus, record_bus
from tests.metadata.migrated_before import migrate_before
from tests.ports import free_port
from tests.services.mm_bronze import run_cli


async def test_the_first_bus_is_recorded_and_the_other_refused_until_moved(
    dsn: str, tmp_path: Path
) -> None:
    async with Database(dsn, tmp_path) as db:
        await check_bus(db.pool, "embedded")  # the first process records its bus
        await check_bus(db.pool, "embedded")
        async with db.pool.connection() as conn:  # the embedded queue, as its bus creates it
            await conn.execute(pgqueue._SCHEMA.encode())
            await conn.execute(
                "INSERT INTO bus.messages (topic, key, value) VALUES ('t', 'k', 'v')"
            )
        with pytest.raises(WrongBus) as caught:
            await check_bus(db.pool, "kafka")
        assert "still holds 1 event(s) and 0 dead letter(s)" in str(caught.value)
        async with db.pool.connection() as conn:
            await conn.execute("DELETE FROM bus.messages")
        await check_bus(db.pool, "kafka")  # nothing would be stranded: the deployment moves
        with pytest.raises(WrongBus) as caught:
            await check_bus(db.pool, "embedded")
        assert "publishes to Kafka, and these settings have no kafka.servers" in str(caught.value)
        assert await record_bus(db.pool, "embedded") == "kafka"  # `mm-bronze db bus`
        await check_bus(db.pool, "embedded")


def test_serve_without_kafka_servers_is_refused_on_a_kafka_deployment(
    dsn: str, tmp_path: Path
) -> None:
    env = {"POSTGRES_DSN": dsn}
    recorded = run_cli("db", "bus", "kafka", "--data-dir", str(tmp_path), env=env)
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.strip() == "the deployment's bus is kafka"
    serve = run_cli(
        "serve",
        "--http",
        "--data-dir",
        str(tmp_path),
        "--http-port",
        str(free_port()),
        env=env,
        timeout=60,
    )
    assert serve.returncode == 2
    assert "mm-bronze: wrong bus: this database's deployment publishes to Kafka" in serve.stderr
    assert "mm-bronze db bus embedded" in serve.stderr
    with psycopg.connect(dsn) as conn:  # refused before it published anything
        row = conn.execute("SELECT to_regclass('bus.messages')").fetchone()
    assert row is not None and row[0] is None
    moved = run_cli("db", "bus", "embedded", "--data-dir", str(tmp_path), env=env)
    assert moved.stdout.strip() == "the deployment's bus is embedded (was kafka)"


async def test_a_deployment_keeps_one_id_until_a_database_adopts_another(
    dsn: str, tmp_path: Path
) -> None:
    async with Database(dsn, tmp_path) as db:
        first = await check_bus(db.pool, "kafka")
        assert str(uuid.UUID(first)) == first
        assert await check_bus(db.pool, "kafka") == first  # every process gets the same id
        other = uuid.uuid4()
        assert await adopt(db.pool, other, "kafka") == first  # `mm-bronze db adopt`
        assert await check_bus(db.pool, "kafka") == str(other)


async def test_a_database_with_no_record_yet_can_adopt_an_id(dsn: str, tmp_path: Path) -> None:
    async with Database(dsn, tmp_path) as db:
        other = uuid.uuid4()
        assert await adopt(db.pool, other, "kafka") is None
        assert await check_bus(db.pool, "kafka") == str(other)
        with pytest.raises(WrongBus):  # the bus recorded with it stands
            await check_bus(db.pool, "embedded")


def test_a_deployment_recorded_before_ids_gets_one_that_stays(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate_before(conn, 8)  # 0008 adds the id
        conn.execute("INSERT INTO ingestion.deployment (bus) VALUES ('kafka')")
    migrated = run_cli("migrate", env={"POSTGRES_DSN": dsn})
    assert migrated.returncode == 0, migrated.stderr
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT bus, id::text FROM ingestion.deployment").fetchall()
    assert len(rows) == 1 and rows[0][0] == "kafka"
    again = run_cli("migrate", env={"POSTGRES_DSN": dsn})
    assert again.returncode == 0, again.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT id::text FROM ingestion.deployment").fetchall() == [
            (rows[0][1],)
        ]
