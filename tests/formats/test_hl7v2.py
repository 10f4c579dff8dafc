"""HL7 v2: delimiters, MSH fields, segment endings, batches, levels, located errors."""

from __future__ import annotations

import re

import pytest

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.base import MAX_RECORDED
from tests.formats.helpers import validate

MSH = (
    "MSH|^~\\&|LAB^1.2.3^ISO|HOSP|EHR|CLINIC|20240501101500||ORU^R01^ORU_R01|CTRL-1|P|2.5.1|||AL|NE"
)
PID = "PID|1||12345^^^HOSP^MR||Doe^John"
OBR = "OBR|1|||88304^Pathology^CPT"
OBX = "OBX|1|NM|1234-5^Glucose^LN||5.4|mmol/L|||||F"


def message(*segments: str, end: str = "\r") -> bytes:
    return end.join(segments).encode() + end.encode()


def hl7(body: bytes, *, level: str = "strict", chunk: int = 7) -> dict:
    return validate(body, "hl7", "text", version=None, level=level, chunk=chunk)


def test_metadata_is_read_from_the_message() -> None:
    meta = hl7(message(MSH, PID, OBR, OBX))
    assert meta["message_type"] == "ORU"
    assert meta["trigger_event"] == "R01"
    assert meta["message_structure"] == "ORU_R01"
    assert meta["control_id"] == "CTRL-1"
    assert meta["hl7_version"] == "2.5.1"
    assert meta["sending_application"] == "LAB^1.2.3^ISO"
    assert meta["sending_facility"] == "HOSP"
    assert meta["receiving_application"] == "EHR"
    assert meta["receiving_facility"] == "CLINIC"
    assert meta["accept_ack_type"] == "AL"
    assert meta["application_ack_type"] == "NE"
    assert meta["field_separator"] == "|"
    assert meta["encoding_characters"] == "^~\\&"
    assert meta["message_count"] == 1
    assert meta["batch"] is False


@pytest.mark.parametrize("end", ["\r", "\n", "\r\n"])
@pytest.mark.parametrize("chunk", [1, 2, 5, 1000])
def test_segment_endings_and_chunking(end: str, chunk: int) -> None:
    meta = hl7(message(MSH, PID, OBR, OBX, end=end), chunk=chunk)
    assert meta["control_id"] == "CTRL-1"
    assert "findings" not in meta


def test_bom_and_leading_blank_lines_are_tolerated() -> None:
    body = b"\xef\xbb\xbf\r\n\n" + message(MSH, PID)
    assert hl7(body, chunk=1)["message_type"] == "ORU"


def test_multiple_messages_and_batches_are_counted() -> None:
    second = MSH.replace("CTRL-1", "CTRL-2").replace("ORU^R01^ORU_R01", "ADT^A01")
    assert hl7(message(MSH, PID, second, PID))["message_count"] == 2
    batch = message(
        "FHS|^~\\&|LAB", "BHS|^~\\&|LAB", MSH, PID, second, PID, "BTS|2", "FTS|1", end="\n"
    )
    meta = hl7(batch)
    assert meta["batch"] is True
    assert meta["message_count"] == 2
    assert meta["message_types"] == {"ADT^A01": 1, "ORU^R01": 1}
    assert meta["control_id"] == "CTRL-1"


def test_empty_batch_is_valid() -> None:
    meta = hl7(b"FHS|^~\\&|LAB\nBHS|^~\\&|LAB\nBTS|0\nFTS|1")
    assert meta["message_count"] == 0
    assert meta["message_type"] is None


@pytest.mark.parametrize(
    ("body", "reason", "expression"),
    [
        (
            message(MSH.replace("ORU^R01^ORU_R01", ""), PID),
            "MSH-9 (Message Type) is required",
            "MSH-9",
        ),
        (message(MSH.replace("CTRL-1", ""), PID), "MSH-10 (Message Control ID)", "MSH-10"),
        (message(MSH.replace("|2.5.1", "|"), PID), "MSH-12 (Version ID)", "MSH-12"),
        (message(MSH.replace("^~\\&", "&&&&"), PID), "MSH-2 (Encoding Characters)", "MSH-2"),
        (message(MSH, "PID|1||"), "PID-3 (Patient Identifier List) is required", "PID-3"),
        (message(MSH, PID, "OBR|1|||"), "OBR-4 (Universal Service Identifier)", "OBR-4"),
        (message(MSH, PID, OBX.replace("5.4", "high")), "OBX-5 (Observation Value)", "OBX-5"),
        (
            message(MSH, PID, OBX.replace("|NM|", "|SN|").replace("5.4", "^test")),
            "not a structured numeric",
            "OBX-5",
        ),
        (message(MSH.replace("EHR", "^^ISO"), PID), "MSH-5 (Receiving Application)", "MSH-5"),
        (b"junk\r" + message(MSH, PID), "data before the first MSH segment", None),
        (message(MSH, "pid|1"), "does not start with a segment ID", None),
        (message(MSH, PID, "MSH"), "MSH-1 (Field Separator) is not a valid", "MSH-1"),
    ],
)
def test_errors_name_segment_and_field(body: bytes, reason: str, expression: str | None) -> None:
    with pytest.raises(InvalidPayload, match=re.escape(reason)) as caught:
        hl7(body)
    issue = caught.value.issues[0]
    assert issue.expression == expression
    assert caught.value.location
    meta = hl7(body, level="lenient")
    assert meta["findings"][0]["diagnostics"] == issue.diagnostics


def test_error_location_names_message_and_segment() -> None:
    second = MSH.replace("CTRL-1", "CTRL-2")
    with pytest.raises(InvalidPayload) as caught:
        hl7(message(MSH, PID, second, PID, "PID|2||"))
    assert caught.value.location == "message 2, segment 3 (PID)"


def test_an_error_after_more_warnings_than_are_kept_still_rejects() -> None:
    unusual = MSH.replace("^~\\&", "^~\\&&")  # a doubled subcomponent character: a warning
    body = b"".join(
        message(unusual.replace("CTRL-1", f"CTRL-{n}"), PID) for n in range(MAX_RECORDED + 5)
    )
    body += message(MSH, "PID|2||")
    with pytest.raises(InvalidPayload, match="PID-3") as caught:
        hl7(body)
    assert caught.value.location == f"message {MAX_RECORDED + 6}, segment 2 (PID)"
    meta = hl7(body, level="lenient")
    assert meta["finding_count"] == MAX_RECORDED + 6


@pytest.mark.parametrize("last", ["PID|2||", "pid|2", "ZZZ|1"])
def test_an_unended_last_segment_is_checked_like_the_others(last: str) -> None:
    ended = message(MSH, PID, last)
    unended = ended.removesuffix(b"\r")
    for body in (ended, unended, ended, unended):  # after its segment ID was seen valid too
        for level in ("strict", "lenient"):
            try:
                outcome: object = hl7(body, level=level)
            except InvalidPayload as exc:
                outcome = (exc.reason, exc.location)
            assert outcome == _outcome(ended, level)


def _outcome(body: bytes, level: str) -> object:
    try:
        return hl7(body, level=level)
    except InvalidPayload as exc:
        return (exc.reason, exc.location)


@pytest.mark.parametrize("body", [b"", b"\r\n\r\n", b"hello world", b'{"resourceType": 1}'])
def test_not_hl7_is_rejected_even_when_lenient(body: bytes) -> None:
    with pytest.raises(InvalidPayload, match="not HL7 v2"):
        hl7(body, level="lenient")


def test_profile_level_problems_are_not_rejected() -> None:
    # PID-22 with an identifier and no coding system: a profile rule, not base structure.
    meta = hl7(message(MSH, PID + "|||||||||||||||||2135-2^Hispanic^"))
    assert meta["message_count"] == 1


def _run_together(*segments: str) -> bytes:
    """A message whose segment separators were removed, as ``curl -d @file`` sends it."""
    return "".join(segments).encode()


@pytest.mark.parametrize(
    ("body", "header", "fields"),
    [
        (_run_together(MSH, PID, OBR, OBX), "MSH", 36),
        (_run_together("FHS|^~\\&|LAB", "BHS|^~\\&|LAB", MSH, PID, "BTS|1", "FTS|1"), "FHS", 27),
        (b"FHS|^~\\&|LAB\r" + _run_together("BHS|^~\\&|LAB", MSH, PID, "BTS|1"), "BHS", 24),
    ],
)
def test_segments_run_together_are_rejected(body: bytes, header: str, fields: int) -> None:
    """The fields past the last one a header defines are the rest of the message: without
    this check such a body read as one long header (a valid empty batch, for FHS)."""
    with pytest.raises(InvalidPayload) as caught:
        hl7(body)
    assert caught.value.reason.startswith(f"{header} fills {fields} fields where HL7 v2 defines")
    assert "curl --data-binary" in caught.value.reason
    assert caught.value.issues[0].expression == header


def test_a_header_may_fill_every_field_it_defines() -> None:
    msh = MSH + "|" * 12 + "PHLabReport-NoAck^ELR251R1_Rcvr_Prof^2.16.840.1.113883.9.11^ISO"
    fhs = "FHS|^~\\&|LAB" + "|x" * 14  # FHS-17
    assert msh.count("|") + 1 == 28
    assert hl7(message(fhs, msh, PID))["message_count"] == 1
    empty_fields_after = message(msh + "|" * 40, PID)  # empty ones are not filled
    assert hl7(empty_fields_after)["message_count"] == 1
