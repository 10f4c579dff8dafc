"""Primitive formats checked in batches: a batch accepts exactly the values that each pass
alone, and a failing batch names the value and the NDJSON line at fault."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_bronze.formats.fhir.fast import decider, formats
from mm_bronze.formats.fhir.fast.primitives import FormatError

SAMPLES = {
    "code": ["final", "a b", " a", "a ", "a  b", "é", "a\tb", "a\x00b", "\x00", "x\u2028"],
    "uri": ["http://x/y", "urn:uuid:1", "a b", "ü", "a\nb", "\x00", "a\x7f"],
    "id": ["abc-1.2", "x" * 64, "x" * 65, "a_b", "é", "a\x00b"],
    "date": ["2020", "2020-02", "2020-02-30", "2020-13", "0000", "2020\x002021"],
    "dateTime": [
        "2020-01-01T00:00:00Z",
        "2020-01-01T00:00:00",
        "2020-01-01T24:00:00Z",
        "2020-01-01T00:00:00.5+14:00",
        "2020-01-01T00:00:00+14:01",
        "2020-01-01T00:00:00-05:00x",
        "2020-01",
    ],
    "instant": ["2020-01-01T00:00:00.123+01:00", "2020-01-01"],
    "time": ["23:59:60", "24:00:00", "12:00"],
    "oid": ["urn:oid:1.2.3", "urn:oid:1.02"],
    "uuid": ["urn:uuid:c757873d-ec9a-4326-a141-556f43239520", "urn:uuid:xyz"],
    "integer64": ["-12", "012", "0"],
    "base64Binary": ["AAAA", "AA==", "A A\nA=", "AAA", "****", "AA\x00AA=="],
}
# Decimals are checked as their JSON text (``msgspec.Raw``, bytes here), a token msgspec read.
DECIMALS = [b"1", b"-0", b"1.50", b"1E-245", b"01", b"1.", b"+1", b'"5"', b"null", b"1\x002"]
SAMPLES_OF: dict[str, list[Any]] = {**SAMPLES, "decimal": DECIMALS, "decimals": DECIMALS}


def each_valid(name: str, values: list[Any]) -> bool:
    return not any(formats.BAD[name](v) for v in values)


@pytest.mark.parametrize("name", formats.FORMATS)
def test_batch_accepts_what_each_value_check_accepts(name: str) -> None:
    samples: list[Any] = SAMPLES_OF[name]
    for value in samples:
        for others in ([], [samples[0]], [samples[0], samples[0]]):
            values = [*others, value, *others]
            assert formats.BATCH[name](values) == each_valid(name, values), values


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(formats.FORMATS),
    st.lists(
        st.text(alphabet=st.sampled_from("aZ09 -.:+/=Tenul\x00\té\n"), min_size=1), min_size=1
    ),
)
def test_batch_agrees_on_random_values(name: str, values: list[str]) -> None:
    checked: list[Any] = (
        [v.encode() for v in values] if name in SAMPLES_OF.keys() - SAMPLES.keys() else values
    )
    assert formats.BATCH[name](checked) == each_valid(name, checked)


def test_decimals_and_their_list_items() -> None:
    assert formats.BATCH["decimal"]([b"1", b"-0.50", b"2e-300"])
    assert not formats.BATCH["decimal"]([b"1", b"null"])
    assert formats.BATCH["decimals"]([b"1", b"null"])
    assert not formats.BATCH["decimals"]([b"1", b"true"])
    assert not formats.BATCH["decimal"]([b"{}", b"1"])


def coding(code: str) -> dict[str, str]:
    return {"system": "http://loinc.org", "code": code}


def observation(*codes: str) -> bytes:
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [coding(c) for c in codes]},
    }
    return json.dumps(resource).encode()


def test_a_failing_batch_names_the_value() -> None:
    data = observation("1", "2", "bad  code", "4")
    with pytest.raises(FormatError, match="code value 3 is not a valid code"):
        decider.decode_strict(data, "R4")  # "final" is code value 1, "1" code value 2...
    assert decider.decode(data, "R4") is None
    assert decider.decode(observation("1", "2", "3"), "R4") is not None


def test_a_failing_batch_rejects_only_its_line() -> None:
    lines = [observation("1"), observation("x\ty"), observation("2"), b"{", observation("3")]
    documents = decider.decode_lines(lines, "R4")
    assert [d is not None for d in documents] == [True, False, True, False, True]
    # Nothing is left behind for the next document.
    assert decider.decode(observation("4"), "R4") is not None


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [("uri", "http://loinc.org", "http://a b"), ("code", "final", "a  b"), ("id", "a1", "a b")],
)
def test_repeated_values_hide_no_bad_one(name: str, good: str, bad: str) -> None:
    """Each distinct value is checked once (uris and codes): a bad value among many repeats
    of a good one still fails the batch, and nulls among them are skipped."""
    with formats.lock:
        formats.start()
        formats.EXTEND[name]([good] * 50 + [None, bad] + [good] * 50)
        assert not formats.valid()
        formats.EXTEND[name]([good] * 50 + [None, good])
        assert formats.valid()
