"""A plain message held whole is read the short way (``hl7v2.plain``), with the answer the
validator gives reading it the long way; anything not plain, or possibly wrong, is left to
the validator, which then reports it as always."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.hl7v2 import plain
from mm_bronze.formats.hl7v2.validator import Hl7v2Validator
from tests.formats.mutations import EXAMPLES, HL7_SEEDS, mutated
from tests.formats.test_hl7v2 import MSH, OBR, OBX, PID, message
from tests.formats.test_hl7v2_paths import LongWay, answer

WHOLE = 1 << 30  # a chunk larger than any body here: the body arrives in one


def whole(body: bytes, level: str = "strict", version: str | None = None) -> object:
    return answer(Hl7v2Validator(version, level), body, WHOLE)


def long_way(body: bytes, level: str = "strict", version: str | None = None) -> object:
    return answer(LongWay(version, level), body, WHOLE)


@settings(
    max_examples=EXAMPLES * 2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=mutated(HL7_SEEDS), level=st.sampled_from(["strict", "lenient"]))
def test_whole_bodies_agree_with_the_long_way(body: bytes, level: str) -> None:
    assert whole(body, level) == long_way(body, level)


@pytest.mark.parametrize("body", HL7_SEEDS)
def test_corpus_answers_agree(body: bytes) -> None:
    assert whole(body) == long_way(body)


def test_the_short_way_reads_the_plain_corpus_messages() -> None:
    taken = [body for body in HL7_SEEDS if plain.metadata(body, None, "strict") is not None]
    assert len(taken) >= len(HL7_SEEDS) // 3  # most single messages in the corpus are plain
    for body in taken:
        assert plain.metadata(body, None, "strict") == long_way(body)


BODY = (MSH, PID, OBR, OBX)


@pytest.mark.parametrize("end", ["\r", "\n", "\r\n"])
@pytest.mark.parametrize("encoding", ["^~\\&", "^~\\&#"])
def test_segment_ends_and_encoding_characters(end: str, encoding: str) -> None:
    body = message(MSH.replace("^~\\&", encoding), *BODY[1:], end=end)
    found = plain.metadata(body, None, "strict")
    assert found is not None
    assert found == long_way(body)
    assert found["encoding_characters"] == encoding
    assert plain.metadata(body.rstrip(end.encode()), None, "strict") == found  # no last end


@pytest.mark.parametrize(
    "body",
    [
        message(MSH, PID, end="\r").replace(b"\r", b"\n", 1),  # LF and CR mixed
        message(MSH, "", PID),  # a blank line
        message(MSH, PID, " "),  # a line of a space
        b"\xef\xbb\xbf" + message(*BODY),  # a byte order mark
        message(MSH.replace("Doe", "Doé"), PID.replace("Doe", "Doé")),  # beyond ASCII
        message(MSH.replace("^~\\&", "^~\\&&"), PID),  # other encoding characters
        message(MSH.replace("^~\\&", "$~\\&"), PID),
        message(MSH.replace("|", "!"), PID),  # another field separator
        message(MSH, PID, MSH.replace("CTRL-1", "CTRL-2"), PID),  # a second message
        message("FHS|^~\\&", MSH, PID),  # a batch
        message(MSH, PID, "BTS|1"),
        message(MSH, PID, "pid|1||x"),  # not a segment ID
        message(MSH, PID, "PIDX|1||x"),  # no separator after the ID
        message(MSH, "PID|1||"),  # a required field empty
        message(MSH, "PID|1||^~^"),
        message(MSH, "PID"),
        message(MSH.replace("|ORU^R01^ORU_R01|", "||"), PID),  # MSH-9 empty
        message(MSH.replace("|LAB^1.2.3^ISO|", "|^^ISO|"), PID),  # HD without either ID
        message(MSH + "|" * 20 + "X", PID),  # MSH-29: segments run into the header
        message(MSH, PID, OBX.replace("5.4", "1~2")),  # an NM value not one plain number
        message(MSH, PID, OBX.replace("|NM|", "|SN|").replace("5.4", "x")),
        message(MSH, PID, OBX.replace("|F", "|")),  # OBX-11 empty
    ],
)
def test_what_is_not_plain_is_left_to_the_validator(body: bytes) -> None:
    assert plain.metadata(body, None, "strict") is None
    assert whole(body) == long_way(body)
    assert whole(body, "lenient") == long_way(body, "lenient")


def test_a_message_with_every_header_field_is_plain() -> None:
    header = MSH + "||UNICODE UTF-8|||PROFILE^HL7" + "|" * 7 + "X"
    assert header.count("|") + 1 == 28  # MSH-28 filled, the last field there is
    body = message(header, PID)
    found = plain.metadata(body, None, "strict")
    assert found is not None and found == long_way(body)
    assert found["character_set"] == "UNICODE UTF-8"


def test_a_structured_numeric_value_is_plain() -> None:
    body = message(MSH, PID, OBX.replace("|NM|", "|SN|").replace("5.4", ">=^1^-^2"))
    found = plain.metadata(body, None, "strict")
    assert found is not None and found == long_way(body)


def test_the_declared_version_is_compared() -> None:
    body = message(*BODY)
    assert plain.metadata(body, "2.5.1", "strict") == long_way(body, version="2.5.1")
    assert plain.metadata(body, "2.3", "strict") is None  # the validator notes the difference
    noted = whole(body, version="2.3")
    assert isinstance(noted, dict) and noted["findings"][0]["severity"] == "information"


def test_a_long_first_chunk_is_not_held() -> None:
    body = message(MSH, PID, *[OBX] * 2000)  # over PLAIN_HOLD: read as it arrives
    validator = Hl7v2Validator()
    validator.feed(body)
    assert validator._held is None
    assert validator.finish()["message_count"] == 1


def test_a_rejection_read_whole_names_its_place() -> None:
    with pytest.raises(InvalidPayload, match=r"PID-3 \(Patient Identifier List\)") as caught:
        validator = Hl7v2Validator()
        validator.feed(message(MSH, "PID|1||"))
        validator.finish()
    assert caught.value.location == "message 1, segment 2 (PID)"
