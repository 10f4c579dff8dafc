"""FHIR bulk NDJSON: one resource per line, findings name the line."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_bronze import formats
from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.base import MAX_RECORDED
from mm_bronze.formats.fhir import json_validator, ndjson_validator
from mm_bronze.formats.fhir.fast.decider import LeanFirst
from tests.formats.helpers import validate

PATIENT = b'{"resourceType": "Patient", "id": "a"}'
CONDITION = b'{"resourceType": "Condition", "subject": {"reference": "Patient/a"}}'


def ndjson(*lines: bytes) -> bytes:
    return b"\n".join(lines) + b"\n"


def test_lines_and_resource_types_are_counted() -> None:
    meta = validate(ndjson(PATIENT, PATIENT, CONDITION), content_type="ndjson", chunk=7)
    assert meta["line_count"] == 3
    assert meta["resource_count"] == 3
    assert meta["resource_types"] == {"Condition": 1, "Patient": 2}


def test_last_line_without_newline_and_crlf() -> None:
    meta = validate(PATIENT + b"\r\n" + PATIENT, content_type="ndjson")
    assert meta["resource_count"] == 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"resourceType": "Patient", "birthDate": "x"}', "line 2: Patient.birthDate"),
        (b'{"resourceType": "Patient"', "line 2: malformed JSON"),
        (b"[]", "line 2: FHIR JSON must be a JSON object"),
        (b'{"id": "x"}', "line 2: FHIR JSON must have a resourceType"),
    ],
)
def test_errors_name_the_line(line: bytes, reason: str) -> None:
    body = ndjson(PATIENT, line, PATIENT)
    with pytest.raises(InvalidPayload, match=reason) as caught:
        validate(body, content_type="ndjson", chunk=5)
    assert caught.value.location is not None
    assert caught.value.location.startswith("line 2")
    meta = validate(body, content_type="ndjson", level="lenient")
    assert meta["findings"][0]["location"].startswith("line 2")


def test_blank_lines_are_noted_not_rejected() -> None:
    meta = validate(PATIENT + b"\n\n" + PATIENT + b"\n", content_type="ndjson")
    assert meta["resource_count"] == 2
    assert meta["findings"][0]["severity"] == "warning"


def test_an_error_after_more_blank_lines_than_findings_kept_still_rejects() -> None:
    bad = b'{"resourceType": "Patient", "gender": 7}'
    body = ndjson(PATIENT, *[b""] * (MAX_RECORDED + 5), bad)
    line = f"line {MAX_RECORDED + 7}"
    with pytest.raises(InvalidPayload, match=rf"{line}: Patient\.gender") as caught:
        validate(body, content_type="ndjson", chunk=5)
    assert caught.value.location == line
    meta = validate(body, content_type="ndjson", level="lenient")
    assert meta["finding_count"] == MAX_RECORDED + 6


def test_no_resource_at_all_is_rejected() -> None:
    with pytest.raises(InvalidPayload, match="at least one resource"):
        validate(b"\n\n", content_type="ndjson", level="lenient")


def test_when_no_line_is_a_resource_the_reason_is_the_first_line_error() -> None:
    run_together = PATIENT + CONDITION  # the line break between them removed
    with pytest.raises(InvalidPayload) as caught:
        validate(run_together, content_type="ndjson")
    assert caught.value.reason == "line 1: malformed JSON: trailing characters"
    assert caught.value.location == f"line 1, column {len(PATIENT) + 1}"
    with pytest.raises(InvalidPayload, match="at least one resource") as lenient:
        validate(run_together, content_type="ndjson", level="lenient")
    assert [issue.diagnostics for issue in lenient.value.issues[1:]] == [
        "line 1: malformed JSON: trailing characters"
    ]


def test_a_long_line_streams_like_a_large_json_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 64)
    long_line = b'{"resourceType": "Patient", "name": [' + b'{"text": "x"},' * 50 + b"{}]}"
    meta = validate(ndjson(PATIENT, long_line, CONDITION), content_type="ndjson", chunk=10)
    assert meta["resource_types"] == {"Condition": 1, "Patient": 2}
    bad = long_line.replace(b'"Patient"', b'"Patient", "gender": 7')
    with pytest.raises(InvalidPayload, match=r"line 2: Patient\.gender must be a JSON string"):
        validate(ndjson(PATIENT, bad), content_type="ndjson", chunk=10)


def bundle(full_url_2: str) -> bytes:
    entries = ",".join(
        f'{{"fullUrl": "{url}", "resource": {PATIENT.decode()}}}' for url in ("urn:a", full_url_2)
    )
    return f'{{"resourceType": "Bundle", "type": "collection", "entry": [{entries}]}}'.encode()


def test_a_bundle_line_that_breaks_a_rule_is_found_among_valid_lines() -> None:
    body = ndjson(PATIENT, bundle("urn:b"), CONDITION, bundle("urn:a"), PATIENT)
    with pytest.raises(InvalidPayload, match="line 4: ") as caught:
        validate(body, content_type="ndjson")
    assert "fullUrl" in str(caught.value)
    meta = validate(body, content_type="ndjson", level="lenient")
    assert meta["resource_types"] == {"Bundle": 2, "Condition": 1, "Patient": 2}
    assert meta["line_count"] == 5
    assert [f["location"].split(",")[0] for f in meta["findings"]] == ["line 4"]


@pytest.mark.parametrize(
    "line",
    [
        rb'{"resourceType": "Patient", "id": "a", "\u0069d": "b"}',  # the key escaped
        # An escaped colon elsewhere in the line makes up for the one the repeat loses.
        rb'{"resourceType": "Patient", "id": "a", "id": "b", "name": [{"text": "x\u003ay"}]}',
        rb'{"resourceType": "Patient", "id": "a", "name": [{"text": "x\u003Ay", "text": "z"}]}',
        # Past many other escapes (the search that follows the first backslashes).
        b'{"resourceType": "Patient", "id": "a", "id": "b", "name": [{"text": "'
        + b'\\"' * 70
        + b'x\\u003ay"}]}',
    ],
)
def test_repeated_keys_are_found_despite_escapes(line: bytes) -> None:
    body = ndjson(PATIENT, CONDITION, line, PATIENT)
    with pytest.raises(InvalidPayload, match="line 3: Duplicate property") as caught:
        validate(body, content_type="ndjson")
    assert caught.value.location is not None and caught.value.location.startswith("line 3")
    with pytest.raises(InvalidPayload, match="Duplicate property"):
        validate(line)
    valid = line.replace(b'"id": "a", ', b"").replace(b', "text": "z"', b"")
    assert validate(ndjson(PATIENT, valid), content_type="ndjson")["resource_count"] == 2


def test_lines_that_span_chunks_are_held_for_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_walker(*args: object, **kwargs: object) -> None:
        raise AssertionError("a valid line went to its own validator")

    monkeypatch.setattr(ndjson_validator, "FhirJsonValidator", no_walker)
    body = ndjson(PATIENT, CONDITION, PATIENT) + PATIENT  # the last line without a newline
    for chunk in (1, 5, 16, 100):
        meta = validate(body, content_type="ndjson", chunk=chunk)
        assert meta["resource_types"] == {"Condition": 1, "Patient": 3}


def test_lines_of_many_chunks_are_checked_in_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks: list[int] = []  # the lines of each block, at once or line by line
    line_kinds, block_kinds = ndjson_validator.line_kinds, ndjson_validator.block_kinds

    def counted(lines: list[bytes], version: str, lean: LeanFirst) -> list[str | None]:
        blocks.append(len(lines))
        return line_kinds(lines, version, lean)

    def counted_at_once(runs: list[bytes], version: str, lean: LeanFirst) -> Any:
        found = block_kinds(runs, version, lean)
        if found is not None:
            blocks.append(sum(run.count(b"\n") + 1 for run in runs))
        return found

    monkeypatch.setattr(ndjson_validator, "line_kinds", counted)
    monkeypatch.setattr(ndjson_validator, "block_kinds", counted_at_once)
    for lines in ([PATIENT, CONDITION], [PATIENT + b" ", CONDITION]):  # at once; line by line
        meta = validate(ndjson(*lines * 20), content_type="ndjson", chunk=50)
        assert meta["resource_types"] == {"Condition": 20, "Patient": 20}
        assert blocks == [40]
        blocks.clear()
    monkeypatch.setattr(ndjson_validator, "BLOCK", 200)  # blocks of about 200 bytes
    bad = b'{"resourceType": "Patient", "gender": 7}'
    with pytest.raises(InvalidPayload, match=r"line 31: Patient\.gender") as caught:
        validate(ndjson(*[PATIENT] * 30, bad, PATIENT), content_type="ndjson", chunk=50)
    assert len(blocks) > 1
    assert caught.value.location is not None and caught.value.location.startswith("line 31")


OBSERVATION = (
    b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
    b'"component":[' + b",".join([b'{"code":{"text":"y"},"valueQuantity":{"value":5}}'] * 5) + b"]}"
)


@pytest.mark.parametrize(
    "line",
    [
        # Compact, so that only the repeat (10 bytes) makes the re-encoded line shorter: the
        # five decimals written as integers must not grow it back (``5`` as ``5.0``).
        OBSERVATION.replace(b'"status"', b'"id":"ab","id":"ab","status"'),
        OBSERVATION.replace(b'{"value":5}}]', b'{"value":5,"value":5}}]'),
    ],
)
def test_repeated_keys_are_found_among_integer_decimals(line: bytes) -> None:
    assert validate(ndjson(OBSERVATION, OBSERVATION), content_type="ndjson")["line_count"] == 2
    with pytest.raises(InvalidPayload, match="line 2: Duplicate property"):
        validate(ndjson(OBSERVATION, line, OBSERVATION), content_type="ndjson")
    with pytest.raises(InvalidPayload, match="Duplicate property"):
        validate(line)


@pytest.mark.parametrize(
    ("value", "valid"),
    [(b"1.50", True), (b"-0", True), (b"1E-245", True), (b'"5"', False), (b"true", False)],
)
def test_decimals_are_json_numbers(value: bytes, valid: bool) -> None:
    line = OBSERVATION.replace(b'"value":5}', b'"value":' + value + b"}")
    if valid:
        assert validate(ndjson(line), content_type="ndjson")["resource_count"] == 1
    else:
        with pytest.raises(InvalidPayload, match=r"line 1: Quantity\.value must be a JSON number"):
            validate(ndjson(line), content_type="ndjson")


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_where_the_chunks_end_changes_nothing(cuts: list[int]) -> None:
    """Lines split at any bytes (newlines, CRLF, blank lines, a line that fails) give the
    findings and figures of the whole body fed at once."""
    bad = b'{"resourceType": "Patient", "birthDate": "x"}'
    body = ndjson(PATIENT, CONDITION, b"", bad) + PATIENT + b"\r\n\n" + CONDITION
    whole = formats.validator_for("fhir", "ndjson", version="R4", level="lenient")
    whole.feed(body)
    expected = whole.finish()
    validator = formats.validator_for("fhir", "ndjson", version="R4", level="lenient")
    start = 0
    for cut in [*sorted({min(cut, len(body)) for cut in cuts}), len(body)]:
        validator.feed(body[start:cut])
        start = cut
    assert validator.finish() == expected
    assert expected["resource_count"] == 5
    assert [finding["location"] for finding in expected["findings"]] == [
        "line 3",
        "line 4",
        "line 6",
    ]
