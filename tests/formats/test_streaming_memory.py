"""Large payloads are validated as they stream: memory stays far below the body's size."""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Callable

import msgspec
import pytest

from mm_bronze import formats
from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.fhir import json_stream, json_validator
from tests.formats.helpers import validate


def peak_memory(run: Callable[[], dict]) -> tuple[dict, int]:
    # What a version builds once per process (its model, the fast path's types) is not part
    # of what a body costs: ``run`` once untraced builds it, whichever test runs first.
    run()
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


def test_a_huge_json_string_is_checked_in_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # A 24 MiB Binary.data: read in slices, never held whole, still checked as base64.
    monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 64 * 1024)
    piece = b"QUJD" * 16384  # 64 KiB of base64

    def run(middle: bytes) -> dict:
        validator = formats.validator_for("fhir", "json", version="R4")
        validator.feed(b'{"resourceType": "Binary", "contentType": "application/pdf", "data": "')
        for index in range(384):
            validator.feed(middle if index == 200 else piece)
        validator.feed(b'", "id": "b1"}')
        return validator.finish()

    meta, peak = peak_memory(lambda: run(piece))
    assert meta["resource_type"] == "Binary"
    assert "findings" not in meta
    assert peak < 1024 * 1024
    with pytest.raises(InvalidPayload) as caught:
        run(piece[:-1] + b"*")
    assert [(i.diagnostics, i.expression) for i in caught.value.issues] == [
        ("Binary.data is not valid base64", "Binary.data")
    ]


@pytest.mark.parametrize("chunk", [1000, 4093])
def test_a_huge_json_string_keeps_escapes_and_characters_whole(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 1024)
    monkeypatch.setattr(json_stream, "PIECE_LIMIT", 2048)
    text = (
        'line \\n with \\\\ \\"quotes\\" \\u00e9t\\u00e9 and \u00e9t\u00e9 \u20ac\U0001f600 ' * 5000
    )
    head = b'{"resourceType": "Observation", "status": "final", "code": {"text": "x"},\n'
    body = head + b' "valueString": "' + text.encode() + b'"}'
    meta = validate(body, chunk=chunk)
    assert "findings" not in meta
    bad = head + b' "valueString": "' + text.encode()[:50_000] + b"\\x" + b'"}'
    with pytest.raises(InvalidPayload, match="malformed JSON") as caught:
        validate(bad, chunk=chunk)
    assert (caught.value.location or "").startswith("line 2, column ")
    uri = head + b' "implicitRules": "http://e.org/' + b"a" * 100_000 + b' b"}'
    with pytest.raises(InvalidPayload, match=r"Observation\.implicitRules is not a valid uri"):
        validate(uri, chunk=chunk)


def _task(value: dict[str, str]) -> dict[str, object]:
    return {
        "resourceType": "Task",
        "status": "draft",
        "intent": "order",
        "input": [{"type": {"text": "t"}, **value}],
    }


def _bundle(kind: str, *full_urls: str) -> dict[str, object]:
    resource = {"resourceType": "Basic", "code": {"text": "x"}}
    entries = [{"fullUrl": url, "resource": resource} for url in full_urls]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


LONG = 5000  # characters: over the piece limit below, so the string is read in slices
LONG_VALUES = [
    # (the resource, its version, the reason it is invalid or None)
    ({"resourceType": "Patient", "gender": "c" * LONG}, "R4", None),
    ({"resourceType": "Patient", "gender": " ".join(["ab"] * LONG)}, "R4", None),
    ({"resourceType": "Patient", "gender": "ab  " + "c" * LONG}, "R4", "not a valid code"),
    ({"resourceType": "Patient", "gender": "c" * LONG + "  d"}, "R4", "not a valid code"),
    ({"resourceType": "Patient", "gender": "ab\t" + "c" * LONG}, "R4", "not a valid code"),
    ({"resourceType": "Patient", "gender": " " + "c" * LONG}, "R4", "not a valid code"),
    ({"resourceType": "Patient", "gender": "c" * LONG + " "}, "R4", "not a valid code"),
    ({"resourceType": "Patient", "gender": "c" * LONG + "\u00a0"}, "R4", "not a valid code"),
    (_task({"valueOid": "urn:oid:1" + ".12345" * LONG}), "R4", None),
    (_task({"valueOid": "urn:oid:1" + ".0.10" * LONG}), "R4", None),
    (_task({"valueOid": "urn:oid:1" + ".12345" * LONG + ".012"}), "R4", "not a valid oid"),
    (_task({"valueOid": "urn:oid:1" + ".12345" * LONG + ".."}), "R4", "not a valid oid"),
    (_task({"valueOid": "urn:oid:1" + ".12345" * LONG + "."}), "R4", "not a valid oid"),
    (_task({"valueOid": "urn:oid:3" + ".12345" * LONG}), "R4", "not a valid oid"),
    (_task({"valueOid": "urn:oid:1" + ".12a45" * LONG}), "R4", "not a valid oid"),
    (_task({"valueInteger64": "-1" + "0" * LONG}), "R5", None),
    (_task({"valueInteger64": "0" * LONG}), "R5", "not a valid integer64"),
    (_task({"valueInteger64": "1" * LONG + "x"}), "R5", "not a valid integer64"),
    (_task({"valueDate": "2" * LONG}), "R4", "not a valid date"),
    ({"resourceType": "Bundle", "type": "c" * LONG}, "R4", "not a valid bundle type"),
    (_bundle("collection", "urn:x:" + "a" * LONG, "urn:x:" + "b" * LONG), "R4", None),
    (_bundle("collection", *["urn:x:" + "a" * LONG] * 2), "R4", "repeats the fullUrl"),
    (_bundle("history", *["urn:x:" + "a" * LONG] * 2), "R4", None),
]


@pytest.mark.parametrize("chunk", [1, 1000])
@pytest.mark.parametrize(("resource", "version", "reason"), LONG_VALUES)
def test_a_long_string_gets_the_verdict_the_whole_string_gets(
    monkeypatch: pytest.MonkeyPatch,
    resource: dict[str, object],
    version: str,
    reason: str | None,
    chunk: int,
) -> None:
    """Read in slices (a body over the buffer limit), a string too long to hold is checked on
    its summary: a code, an oid or an integer64 of any length, a Bundle's type and repeated
    fullUrls get the verdict of the whole string, whichever slices it arrives in."""
    body = msgspec.json.encode(resource)

    def verdict() -> str | None:
        try:
            validate(body, version=version, chunk=chunk)
        except InvalidPayload as exc:
            return exc.reason
        return None

    whole = verdict()
    monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 1024)
    monkeypatch.setattr(json_stream, "PIECE_LIMIT", 2048)
    sliced = verdict()
    if reason is None:
        assert whole is None and sliced is None
    else:
        assert whole is not None and reason in whole
        assert sliced is not None and reason in sliced
