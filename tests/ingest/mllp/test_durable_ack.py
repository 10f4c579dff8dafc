"""An AA is durable: every message acknowledged before the door is killed is on the bus."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.ingest.mllp.helpers import RawMllp, oru, parse_ack
from tests.polling import wait_listening
from tests.services.mm_bronze import MmBronze


def test_every_acknowledged_message_is_on_the_bus_after_sigkill(dsn: str, tmp_path: Path) -> None:
    door = MmBronze(tmp_path, "--mllp", env={"POSTGRES_DSN": dsn}).start()
    wait_listening(door.mllp_port)
    acknowledged = 0
    try:
        with RawMllp(door.mllp_port) as conn:
            for n in range(200):
                assert parse_ack(conn.ask(oru(f"KILL{n}"))).code == "AA"
                acknowledged += 1
    finally:
        door.kill()  # SIGKILL right after the last ACK: nothing is flushed on the way out
    with psycopg.connect(dsn) as db:
        row = db.execute("SELECT count(*) FROM bus.messages").fetchone()
    assert row is not None and row[0] == acknowledged == 200
