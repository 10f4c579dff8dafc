"""The bus a deployment publishes to is recorded in its database: a process configured for
the other one is refused rather than left to strand what it accepts."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from mm_bronze.bus import pgqueue
from mm_bronze.metadata import Database
from mm_bronze.metadata.deployment import WrongBus, check_bus, record_bus
from tests.ports import free_port
from tests.services.mm_bronze import run_cli


async def test_the_first_bus_is_recorded_and_the_other_refused_until_moved(
    dsn: str, tmp_path: Path
) -> None:
    db = Database(dsn, tmp_path)
    await db.open()
    try:
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
    finally:
        await db.close()


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
