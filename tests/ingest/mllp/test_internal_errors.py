"""A defect of the MLLP door's own (an exception no check expects) answers AE, "resend", and
keeps the connection; it never drops the connection without an ACK, nor logs the message."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from mm_bronze.bus import Bus
from mm_bronze.ingest.mllp import receiver
from mm_bronze.ingest.mllp.receiver import FAILED, MessageReceiver, Peer
from mm_bronze.metrics.registry import Metrics
from mm_bronze.storage import ObjectStore
from tests.ingest.mllp.helpers import oru, parse_ack

SECRET = "Zyxwvut-Patient-4711"


def broken(*_: Any, **__: Any) -> Any:
    raise RuntimeError(f"a defect that quotes the message: {SECRET}")


@pytest.mark.parametrize("where", ["_validate", "IngestEvent"])
def test_an_unexpected_error_is_answered_ae(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    monkeypatch.setattr(receiver, where, broken)  # before the bus is reached: none is needed
    metrics = Metrics()
    door = MessageReceiver(
        bus=cast(Bus, None),
        topic="bronze-ingest-mllp",
        staging=cast(ObjectStore, None),
        inline_limit=1024 * 1024,
        metrics=metrics.door("mllp"),
    )
    with capture_logs() as logs:
        reply = asyncio.run(door.receive(oru("DEFECT1", extra=SECRET), Peer("127.0.0.1", 1)))
    assert reply is not None
    ack = parse_ack(reply)
    assert (ack.code, ack.control_id, ack.text) == ("AE", "DEFECT1", FAILED)
    assert ack.err is not None and ack.err[3].startswith("207^")
    (failed,) = [line for line in logs if line["event"] == "mllp message failed"]
    assert (failed["log_level"], failed["error"], failed["control_id"]) == (
        "error",
        "RuntimeError",
        "DEFECT1",
    )
    assert SECRET not in repr(logs)
    outcome = {"door": "mllp", "format": "hl7/text", "outcome": "unavailable"}
    assert metrics.registry.get_sample_value("mm_bronze_submissions_total", outcome) == 1
