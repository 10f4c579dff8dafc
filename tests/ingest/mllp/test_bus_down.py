"""Bus down: MLLP answers AE (CE in enhanced mode), keeps nothing, and accepts the resend."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import psycopg
import pytest

from tests.ingest.mllp.helpers import (
    RawMllp,
    oru,
    parse_ack,
    stored_rows,
    wait_rows,
)
from tests.polling import wait_listening
from tests.services.mm_bronze import MmBronze


class Queue:
    """Takes the embedded queue's table away (every publish fails) and puts it back."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.down = False

    def _rename(self, old: str, new: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE bus.{old} RENAME TO {new}")

    def take_down(self) -> None:
        self._rename("messages", "messages_offline")
        self.down = True

    def restore(self) -> None:
        if self.down:
            self._rename("messages_offline", "messages")
            self.down = False


@pytest.fixture
def queue(server: MmBronze, module_dsn: str) -> Iterator[Queue]:
    wait_listening(server.mllp_port)
    queue = Queue(module_dsn)
    try:
        yield queue
    finally:
        queue.restore()


def test_bus_down_answers_ae_and_the_resend_is_stored_once(
    server: MmBronze, module_dsn: str, queue: Queue
) -> None:
    message = oru("DOWN1")
    enhanced = oru("DOWN2", accept_ack="ER", app_ack="NE")
    digest = hashlib.sha256(message).hexdigest()
    with RawMllp(server.mllp_port) as conn:
        queue.take_down()
        ack = parse_ack(conn.ask(message))
        assert (ack.code, ack.control_id) == ("AE", "DOWN1")
        assert "resend" in ack.text
        assert ack.err is not None and ack.err[3].startswith("207^")
        ack = parse_ack(conn.ask(enhanced))  # MSH-15 "ER": acknowledged because it failed
        assert (ack.code, ack.control_id) == ("CE", "DOWN2")
        assert stored_rows(module_dsn, digest) == []

        queue.restore()
        ack = parse_ack(conn.ask(message))
        assert (ack.code, ack.control_id) == ("AA", "DOWN1")
        conn.send(enhanced)  # "ER" and accepted: no ACK; the next answer is the probe's
        ack = parse_ack(conn.ask(oru("PROBE1")))
        assert (ack.code, ack.control_id) == ("AA", "PROBE1")
    rows = wait_rows(module_dsn, digest, 1)
    assert len(rows) == 1 and rows[0][1] is False  # stored once, not a duplicate
    wait_rows(module_dsn, hashlib.sha256(enhanced).hexdigest(), 1)
    assert "mllp message not accepted now" in server.logs()
