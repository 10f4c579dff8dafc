"""Large payloads are validated as they stream: memory stays far below the body's size."""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Callable

import msgspec
import pytest

from mm_bronze import formats
from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.fhir import json_validator


def peak_memory(run: Callable[[], dict]) -> tuple[dict, int]:
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_a_large_fhir_json_body_is_never_held_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2 MiB with a 64 KiB msgspec window (4 MiB in production, which would make this slow
    # under tracemalloc): beyond the window, the body streams through ijson.
    monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 64 * 1024)
    entry = msgspec.json.encode({"resource": {"resourceType": "Patient", "id": "p"}})
    chunk = b",".join([entry] * 400)

    def run() -> dict:
        validator = formats.validator_for("fhir", "json", version="R4")
        validator.feed(b'{"resourceType": "Bundle", "type": "collection", "entry": [' + chunk)
        for _ in range(2 * 1024 * 1024 // len(chunk)):
            validator.feed(b"," + chunk)
        validator.feed(b"]}")
        return validator.finish()

    meta, peak = peak_memory(run)
    assert meta["entry_count"] > 40_000
    assert peak < 512 * 1024


def test_a_huge_hl7_segment_is_not_held_whole() -> None:
    # A 24 MiB document embedded in OBX-5 (ED), followed by OBX-11: checked, not buffered.
    head = (
        b"MSH|^~\\&|LAB|HOSP|EHR|CLINIC|20240501||ORU^R01|C1|P|2.5.1\rPID|1||123^^^H^MR\r"
        b"OBR|1|||88304^Pathology^CPT\rOBX|1|ED|DOC^Report||^application^pdf^Base64^"
    )
    piece = b"QUJD" * 16384  # 64 KiB of base64

    def run(end: bytes) -> dict:
        validator = formats.validator_for("hl7", "text")
        validator.feed(head)
        for _ in range(384):
            validator.feed(piece)
        validator.feed(end)
        return validator.finish()

    meta, peak = peak_memory(lambda: run(b"||||||F\r"))
    assert meta["message_count"] == 1
    assert peak < 4 * 1024 * 1024
    with pytest.raises(InvalidPayload, match=re.escape("OBX-11 (Observation Result Status)")):
        run(b"||||||\r")
