"""The HL7 v2 validator's short ways change no answer: through common body segments, and
through a whole plain message (``plain``, taken when a body is fed in one chunk).

``Hl7v2Validator._segments`` counts a body segment whose ID it has already seen valid, and
checks its required fields on bytes; the reference below sends every segment the long way
(``_segment``). On corpus messages, on mutations of them and in any chunking, both give the
same metadata or the same located findings.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.hl7v2.validator import Hl7v2Validator
from tests.formats.mutations import EXAMPLES, HL7_SEEDS, mutated
from tests.formats.test_hl7v2 import MSH, OBX, PID, hl7, message


class LongWay(Hl7v2Validator):
    """Every segment through ``_segment``, as before the short ways existed (a body of one
    chunk is not read by ``plain`` either)."""

    def _plain(self, body: bytes) -> dict[str, Any] | None:
        return None

    def _segments(self, segments: list[bytes]) -> None:
        for segment in segments:
            self._segment(segment)


def answer(validator: Hl7v2Validator, body: bytes, chunk: int) -> Any:
    try:
        for start in range(0, len(body), chunk):
            validator.feed(body[start : start + chunk])
        return validator.finish()
    except InvalidPayload as exc:
        return ("rejected", str(exc), [(i.code, i.diagnostics, i.location) for i in exc.issues])


@settings(
    max_examples=EXAMPLES * 2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    body=mutated(HL7_SEEDS),
    chunk=st.integers(1, 4096),
    level=st.sampled_from(["strict", "lenient"]),
)
def test_short_and_long_ways_agree(body: bytes, chunk: int, level: str) -> None:
    expected = answer(LongWay(level=level), body, chunk)
    assert answer(Hl7v2Validator(level=level), body, chunk) == expected


@pytest.mark.parametrize("body", HL7_SEEDS)
def test_corpus_answers_agree(body: bytes) -> None:
    assert answer(Hl7v2Validator(), body, 4096) == answer(LongWay(), body, 4096)


def test_required_field_of_only_non_ascii_separators_is_empty() -> None:
    """Component and repetition characters outside ASCII still count as empty filler."""
    header = MSH.replace("^~\\&", "§¤\\&").replace("^", "§")
    with pytest.raises(InvalidPayload, match=r"PID-3 \(Patient Identifier List\) is required"):
        hl7(message(header, PID, "PID|2||§§¤"))


def test_numeric_value_in_other_digits_is_a_number() -> None:
    """NM values are matched as text: digits of any script count, as the long way says."""
    meta = hl7(message(MSH, PID, "OBX|1|NM|1234-5^Glucose^LN||\u0665.\u0664|mmol/L|||||F"))
    assert "findings" not in meta


@pytest.mark.parametrize("encoding", ["^~\\&", "-~\\&", ".~\\&", "^:\\&", "^^\\&", "#~\\&"])
@pytest.mark.parametrize(
    ("value_type", "value"),
    [
        ("SN", "^60"),
        ("SN", ">=^1^-^2"),
        ("SN", "<>^"),
        ("SN", "^1^:^x"),
        ("SN", "--5"),
        ("SN", "-^5"),
        ("SN", "^5~<^3"),
        ("SN", "^.5^.^1."),
        ("SN", "60"),
        ("SN", ""),
        ("NM", "-1.5"),
        ("NM", "1.5~2"),
        ("NM", "1-5"),
    ],
)
def test_numeric_values_agree_under_any_encoding_characters(
    encoding: str, value_type: str, value: str
) -> None:
    """An SN or NM value found valid at once on bytes is one the long way finds valid too,
    whatever the component and repetition characters (some are also sign or separator)."""
    header = MSH.replace("^~\\&", encoding)
    body = message(header, PID, OBX.replace("|NM|", f"|{value_type}|").replace("5.4", value))
    for level in ("strict", "lenient"):
        expected = answer(LongWay(level=level), body, 4096)
        assert answer(Hl7v2Validator(level=level), body, 4096) == expected
