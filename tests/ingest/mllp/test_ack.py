"""ACK construction: codes per acknowledgment mode, echoed fields, ERR segments."""

from __future__ import annotations

import datetime as dt

import pytest

from mm_bronze import formats
from mm_bronze.errors import InvalidPayload
from mm_bronze.ingest.mllp import ack as ack_module
from mm_bronze.ingest.mllp import receiver
from mm_bronze.ingest.mllp.ack import (
    AckError,
    Outcome,
    build_ack,
    classify,
    locate,
    segment_sequence,
    wanted,
)
from mm_bronze.ingest.mllp.header import parse_header

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def msh(version: str = "2.5.1", accept: str = "", app: str = "", enc: str = "^~\\&") -> bytes:
    return (
        f"MSH|{enc}|SND^1.2^ISO|SFAC|RCV|RFAC|20250101||ORU^R01^ORU_R01|CTRL-7|T|{version}|||"
        f"{accept}|{app}\rPID|1\r"
    ).encode()


def segments(ack: bytes) -> list[list[str]]:
    assert ack.endswith(b"\r")
    return [s.split("|") for s in ack.decode().split("\r") if s]


def test_accept_in_original_mode_swaps_sender_and_receiver() -> None:
    ack = segments(build_ack(parse_header(msh()), Outcome.ACCEPTED, now=NOW))
    assert [s[0] for s in ack] == ["MSH", "MSA"]
    assert ack[0][1:12] == [
        "^~\\&",
        "RCV",
        "RFAC",
        "SND^1.2^ISO",
        "SFAC",
        "20260102030405+0000",
        "",
        "ACK^R01^ACK",
        ack[0][9],
        "T",
        "2.5.1",
    ]
    assert len(ack[0][9]) == 20
    assert ack[1] == ["MSA", "AA", "CTRL-7"]


def test_reject_from_v2_5_locates_the_field_in_err_2() -> None:
    error = AckError("PID-3 (patient identifier list) is empty", segment="PID", field=3)
    ack = segments(build_ack(parse_header(msh()), Outcome.REJECTED, error, now=NOW))
    assert ack[1][:3] == ["MSA", "AR", "CTRL-7"]
    assert ack[2][:5] == ["ERR", "", "PID^1^3", "101^Required field missing^HL70357", "E"]
    assert ack[2][7] == "PID-3 (patient identifier list) is empty"


def test_reject_before_v2_5_uses_err_1() -> None:
    error = AckError("OBX-5 is not numeric", segment="OBX", field=5)
    ack = segments(build_ack(parse_header(msh("2.3.1")), Outcome.REJECTED, error, now=NOW))
    assert ack[2] == ["ERR", "OBX^1^5^102&Data type error&HL70357"]


def test_delimiters_in_reasons_are_escaped() -> None:
    error = AckError("bad value a|b^c&d~e\\f\r\nnext line")
    ack = build_ack(parse_header(msh()), Outcome.REJECTED, error, now=NOW)
    assert b"bad value a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f next line" in ack
    assert ack.count(b"\r") == 3


@pytest.mark.parametrize(
    ("accept", "outcome", "code"),
    [
        ("AL", Outcome.ACCEPTED, "CA"),
        ("AL", Outcome.ERROR, "CE"),
        ("", Outcome.REJECTED, "CR"),  # MSH-16 alone selects enhanced mode; MSH-15 empty = AL
        ("NE", Outcome.ACCEPTED, None),
        ("NE", Outcome.REJECTED, None),
        ("ER", Outcome.ACCEPTED, None),
        ("ER", Outcome.ERROR, "CE"),
        ("SU", Outcome.ACCEPTED, "CA"),
        ("SU", Outcome.REJECTED, None),
    ],
)
def test_enhanced_mode(accept: str, outcome: Outcome, code: str | None) -> None:
    header = parse_header(msh(accept=accept, app="NE"))
    if code is None:
        assert not wanted(header, outcome)
    else:
        assert wanted(header, outcome)
        assert segments(build_ack(header, outcome, now=NOW))[1][1] == code


def test_batch_echoes_the_batch_control_id_and_first_message_header() -> None:
    batch = (
        b"FHS|^~\\&|FSND|FFAC|FRCV|FRFAC|2025\nBHS|^~\\&|BSND|BFAC|BRCV|BRFAC|2025||||BATCH-9\n"
        + msh().replace(b"\r", b"\n")
        + b"BTS|1\nFTS|1\n"
    )
    header = parse_header(batch)
    assert (header.control_id, header.subtype, header.version_label) == (
        b"BATCH-9",
        "oru_r01",
        "2.5.1",
    )
    ack = segments(build_ack(header, Outcome.ACCEPTED, now=NOW))
    assert ack[0][2:6] == ["RCV", "RFAC", "SND^1.2^ISO", "SFAC"]
    assert ack[1] == ["MSA", "AA", "BATCH-9"]


def test_headers_that_cannot_be_used() -> None:
    assert parse_header(b"PID|1|\r").problem is not None
    bad = parse_header(msh(enc="&&&&"))
    assert bad.problem is not None and (bad.problem.segment, bad.problem.field) == ("MSH", 2)
    ack = segments(build_ack(bad, Outcome.REJECTED, AckError(bad.problem.reason), now=NOW))
    assert ack[1][:3] == ["MSA", "AR", "CTRL-7"]  # still echoed, in default delimiters
    lenient = parse_header(msh(enc="^~\\\\&"))  # a doubled escape character is tolerated
    assert lenient.problem is None and lenient.encoding == b"^~\\&"


def test_error_codes_follow_the_reason() -> None:
    assert classify("PID-3 (Patient Identifier List) is required but empty").value[0] == "101"
    assert classify("segment 1: data before the first MSH segment").value[0] == "100"
    problem = parse_header(msh(enc="&&&&")).problem
    assert problem is not None and classify(problem.reason).value[0] == "102"
    assert classify("OBX-5 is not a number").value[0] == "102"


def test_locate_reads_segment_and_field_from_messages() -> None:
    assert locate("required field is empty", "PID-3") == ("PID", 3)
    assert locate("MSH-9 (message type) is missing") == ("MSH", 9)
    assert locate("the message must start with an MSH segment") == ("MSH", None)
    assert locate("nothing to see") == (None, None)
    assert locate("MSH fills 187 fields where HL7 v2 defines 28", "MSH") == ("MSH", None)


def test_character_sets_are_not_read_as_fields() -> None:
    reason = "not HL7 v2: no MSH (or FHS/BHS) segment found (the body is not UTF-8: ...)"
    assert locate(reason) == (None, None)
    assert locate("MSH-18 says ISO-8859-1, the body is UTF-8") == ("MSH", 18)


def test_segment_sequence_counts_occurrences_of_the_segment() -> None:
    batch = b"FHS|^~\\&\rBHS|^~\\&\r" + msh() + b"OBX|1\r" + msh() + b"OBX|1\r\r\nOBX|2\rBTS|2\r"
    # Message 2: MSH, PID, OBX, OBX -> its 4th segment is the second OBX.
    assert segment_sequence(batch, "message 2, segment 4 (OBX)", "OBX") == 2
    assert segment_sequence(batch, "segment 6 (OBX)", "OBX") == 1  # counted over the file
    assert segment_sequence(batch, None, "OBX") == 1


@pytest.mark.parametrize(
    "message",
    [
        msh(),
        msh(version="2.3", accept="AL", app="NE"),
        msh(enc="#*!@"),  # the sender's own encoding characters
        msh(enc="^~"),  # two of four: the ACK uses the standard ones
        b"MSH|^~\\&|A|B\rPID|1\r",  # a short header: the missing fields are empty
        b"MSH|^~\\&|A|B|C|D|1||ADT|9\x0b9|P|2.4|||||8859/1\r",  # an unsafe byte in MSH-10
        b"FHS|^~\\&|F|G|||||||FILE-1\rBHS|^~\\&|||||||||B-1\rMSH|^~\\&|S|T|U|V|1||ORU^R01|M-1|P\r",
        b"MSH|^~\\&|S|T|U|V|1||ORU^R01|M-1|P|2.5.1|7|cont|SU|AL|US|UNICODE UTF-8|en\r",
    ],
)
@pytest.mark.parametrize("outcome", list(Outcome))
def test_acks_without_err_come_out_of_the_cache_as_built_in_full(
    message: bytes, outcome: Outcome
) -> None:
    header = parse_header(message)
    expected = ack_module._build(header, outcome, None, ack_module._stamp(NOW), b"ACK-ID")
    for now in (NOW, NOW):  # built once, then taken from the cache
        assert build_ack(header, outcome, now=now, control_id=b"ACK-ID") == expected
    other = parse_header(message.replace(b"M-1", b"M-2").replace(b"|9\x0b9|", b"|99|"))
    later = NOW + dt.timedelta(seconds=61)
    assert build_ack(other, outcome, now=later, control_id=b"ID-2") == ack_module._build(
        other, outcome, None, ack_module._stamp(later), b"ID-2"
    )


def test_large_header_fields_are_acknowledged_without_entering_the_cache() -> None:
    """A sender cannot pin large headers in memory through the ACK cache."""
    big = b"S" * 4096
    message = b"MSH|^~\\&|" + big + b"|F|R|RF|2025||ORU^R01|C-1|P|2.5.1\r"
    header = parse_header(message)
    before = ack_module._ack_parts.cache_info()
    built = build_ack(header, Outcome.ACCEPTED, now=NOW, control_id=b"ACK-ID")
    after = ack_module._ack_parts.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)
    assert built == ack_module._build(
        header, Outcome.ACCEPTED, None, ack_module._stamp(NOW), b"ACK-ID"
    )


@pytest.mark.parametrize(
    "message",
    [
        # Field separator '#': MSH-3 holds the ACK's '|'.
        b"MSH#^^\\&#SEND|APP#SF#RA#RF#20240101##ORU^R01#C1#P#2.5.1\r",
        # Field separator '^', also the component separator: every field is mis-split.
        b"MSH^^~\\&|SENDAPP|SF|RA|RF|2024||ORU^R01^ORU_R01|C1|P|2.5.1\r",
    ],
)
def test_a_reject_for_unusable_delimiters_escapes_what_it_echoes(message: bytes) -> None:
    """The ACK then uses |^~\\& while the echoed fields were split at the sender's own
    separator: the ACK's separator in them is escaped, so its MSH keeps its fields in place."""
    header = parse_header(message)
    assert header.problem is not None
    ack = segments(build_ack(header, Outcome.REJECTED, AckError(header.problem.reason), now=NOW))
    head = ack[0]
    assert head[1] == "^~\\&"
    assert head[6] == "20260102030405+0000"
    assert head[8].split("^")[0] == "ACK"
    assert len(head) == 12
    assert ack[1][:2] == ["MSA", "AR"]
    assert [s[0] for s in ack] == ["MSH", "MSA", "ERR"]
    if message.startswith(b"MSH#"):
        assert head[2:6] == ["RA", "RF", "SEND\\F\\APP", "SF"]


@pytest.mark.parametrize(
    "reason",
    [
        "BHS appears inside a message: a batch header comes first",
        "FHS repeats: a file has one file header",
        "FHS must be the first segment of the file",
        "BHS starts a batch before the BTS that ends the previous one",
        "segment 5 does not start with a segment ID and a field separator",
        "OBX appears outside a message (before any MSH)",
        "MSH fills 187 fields where HL7 v2 defines 28: the segments after it seem to run into it",
    ],
)
def test_segments_out_of_place_are_segment_sequence_errors(reason: str) -> None:
    assert classify(reason).value == ("100", "Segment sequence error")


def test_an_error_in_a_batch_names_its_message() -> None:
    """ERR-2 counts segments within a message: in a frame of several, the text says which."""
    first = msh().replace(b"CTRL-7", b"B1").replace(b"PID|1", b"PID|1||7^^^H^MR")
    second = first.replace(b"B1", b"B2") + b"OBX|2|NM|1^X^LN||abc||||||F\r"
    frame = b"BHS|^~\\&|A|B|C|D|2024||||BATCH-1\r" + first + second + b"BTS|2\r"
    validator = formats.validator_for("hl7", "text")
    validator.feed(frame)
    with pytest.raises(InvalidPayload) as caught:
        validator.finish()
    error = receiver._located(caught.value, frame)
    assert error.reason.startswith("message 2, segment 3 (OBX): OBX-5")
    assert (error.segment, error.sequence, error.field) == ("OBX", 1, 5)
    alone = receiver._located(caught.value, second)  # the same error, one message sent
    assert alone.reason.startswith("OBX-5")


@pytest.mark.parametrize(("msh9", "subtype"), [("!!!", "unknown"), ("..^..", "unknown")])
def test_a_message_type_with_nothing_usable_is_an_unknown_subtype(msh9: str, subtype: str) -> None:
    """Never an empty storage path segment (``hl7/text/2.5.1//date=...``)."""
    header = parse_header(msh().replace(b"ORU^R01^ORU_R01", msh9.encode()))
    assert header.subtype == subtype
