"""A body in UTF-16 or UTF-32 (some Windows tools write text so by default) is refused with
the reason, not as some other kind of malformed input."""

from __future__ import annotations

import pytest

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.encoding import wide_encoding
from mm_bronze.formats.fhir import json_validator
from tests.formats.helpers import validate

UTF16_BOM = "found a UTF-16 byte order mark"
UTF32_BOM = "found a UTF-32 byte order mark"
NUL = "it starts like UTF-16 or UTF-32: NUL bytes between its first characters"
ENCODINGS = [("utf-16", UTF16_BOM), ("utf-16-le", NUL), ("utf-16-be", NUL), ("utf-32", UTF32_BOM)]
JSON = '{"resourceType": "Patient", "id": "a"}'
HL7 = "MSH|^~\\&|LAB|HOSP|EHR|CLINIC|20240501101500||ORU^R01|CTRL-1|P|2.5.1\rPID|1||12345\r"


@pytest.mark.parametrize(
    ("opening", "problem"),
    [
        (b"\xff\xfe{\x00", UTF16_BOM),
        (b"\xfe\xff\x00{", UTF16_BOM),
        (b"\xff\xfe\x00\x00", UTF32_BOM),
        (b"\x00\x00\xfe\xff", UTF32_BOM),
        (b"{\x00", NUL),
        (b" \x00<\x00", NUL),
        (b"\xef\xbb\xbf{", None),  # the UTF-8 BOM: UTF-8
        (b'{"re', None),
        (b"\xff", None),  # not yet told
        (b"\xff\xfe", None),  # a UTF-16 BOM, or the start of a UTF-32 one: not yet told
        (b"\xff\xfe<", UTF16_BOM),
    ],
)
def test_what_the_first_bytes_tell(opening: bytes, problem: str | None) -> None:
    assert wide_encoding(opening) == problem


@pytest.mark.parametrize(("encoding", "problem"), ENCODINGS)
@pytest.mark.parametrize("chunk", [1, 4096])
@pytest.mark.parametrize("streamed", [False, True])
def test_fhir_json_and_ndjson_say_they_are_not_utf8(
    encoding: str, problem: str, chunk: int, streamed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if streamed:  # as a body over 4 MiB is
        monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 0)
    for content_type, text, prefix in (("json", JSON, ""), ("ndjson", JSON + "\n", "line 1: ")):
        with pytest.raises(InvalidPayload) as caught:
            validate(text.encode(encoding), content_type=content_type, chunk=chunk)
        assert caught.value.reason == f"{prefix}malformed JSON: not UTF-8 ({problem})"
        assert caught.value.location == "line 1, column 1"


@pytest.mark.parametrize(("encoding", "problem"), ENCODINGS)
@pytest.mark.parametrize("chunk", [1, 4096])
def test_hl7v2_says_it_is_not_utf8(encoding: str, problem: str, chunk: int) -> None:
    with pytest.raises(InvalidPayload) as caught:
        validate(HL7.encode(encoding), "hl7", "text", version=None, chunk=chunk)
    assert caught.value.reason == (
        f"not HL7 v2: no MSH (or FHS/BHS) segment found (the body is not UTF-8: {problem})"
    )


def test_other_malformed_bodies_keep_their_reasons() -> None:
    with pytest.raises(InvalidPayload) as caught:
        validate(b"x{}")
    assert caught.value.reason == "malformed JSON: invalid character"
    with pytest.raises(InvalidPayload) as caught:
        validate(b"hello", "hl7", "text", version=None)
    assert caught.value.reason == "not HL7 v2: no MSH (or FHS/BHS) segment found"
