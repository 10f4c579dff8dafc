"""What the MLLP door logs per accepted message: nothing at info, an identifying line at
debug (like the HTTP door's "submission accepted"), never the message's contents."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingest.mllp.helpers import RawMllp, oru, parse_ack
from tests.polling import wait_listening
from tests.services.mm_bronze import MmBronze


@pytest.mark.parametrize(("level", "lines"), [("info", 0), ("debug", 3)])
def test_accepted_messages_are_logged_at_debug_only(
    dsn: str, tmp_path: Path, level: str, lines: int
) -> None:
    env = {"POSTGRES_DSN": dsn, "MM_BRONZE_LOG_LEVEL": level}
    door = MmBronze(tmp_path, "--mllp", env=env).start()
    wait_listening(door.mllp_port)
    try:
        with RawMllp(door.mllp_port) as conn:
            for n in range(3):
                assert parse_ack(conn.ask(oru(f"LOG{n}", extra="Zyxwvut"))).code == "AA"
    finally:
        assert door.stop() == 0
    records = door.log_records()
    accepted = [r for r in records if r["event"] == "mllp message accepted"]
    assert [r["control_id"] for r in accepted] == [f"LOG{n}" for n in range(lines)]
    assert any(r["event"] == "mllp connection opened" for r in records), "info lines still go"
    assert "Zyxwvut" not in door.logs()
