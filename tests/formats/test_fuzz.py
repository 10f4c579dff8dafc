"""No input crashes a validator: random bytes and mutated corpus files only ever get an answer.

Every validator (FHIR JSON decoded at once and streamed, FHIR XML, FHIR NDJSON, HL7 v2), at
both levels, in random chunk sizes, either returns metadata or raises ``InvalidPayload``;
any other exception (a RecursionError, a KeyError, an assertion) fails the test, and
hypothesis prints the input that caused it. The number of examples keeps the whole module
well under a minute; ``MM_BRONZE_FUZZ_EXAMPLES`` raises it for a longer hunt.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.fhir import json_stream, json_validator
from tests.formats.helpers import validate
from tests.formats.mutations import (
    EXAMPLES,
    HL7_SEEDS,
    JSON_SEEDS,
    NDJSON_SEEDS,
    XML_SEEDS,
    inputs,
)


@contextmanager
def streamed(on: bool) -> Iterator[None]:
    saved = json_validator.BUFFER_LIMIT
    json_validator.BUFFER_LIMIT = 0 if on else saved
    try:
        yield
    finally:
        json_validator.BUFFER_LIMIT = saved


def answers(body: bytes, fmt: str, content_type: str, version: str | None, chunk: int) -> None:
    """Validate at both levels; only metadata or ``InvalidPayload`` may come out."""
    for level in ("strict", "lenient"):
        try:
            validate(body, fmt, content_type, version=version, level=level, chunk=chunk)
        except InvalidPayload:
            pass


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CHUNKS = st.sampled_from([1, 7, 4096, 65536])


@FUZZ
@given(body=inputs(JSON_SEEDS), chunk=CHUNKS, stream=st.booleans())
def test_fhir_json(body: bytes, chunk: int, stream: bool) -> None:
    with streamed(stream):
        answers(body, "fhir", "json", "R4", chunk)


def verdict(body: bytes, chunk: int) -> bool:
    try:
        validate(body, "fhir", "json", version="R4", chunk=chunk)
    except InvalidPayload:
        return False
    return True


@FUZZ
@given(body=inputs(JSON_SEEDS), chunk=CHUNKS, piece=st.sampled_from([256, 64 * 1024]))
def test_fhir_json_paths_agree(body: bytes, chunk: int, piece: int) -> None:
    """Decoded at once (fast path, then walker) and streamed (in pieces: Bundle entries
    through the fast path, the rest through the walker), one verdict."""
    with streamed(False):
        decoded = verdict(body, chunk)
    saved = json_stream.PIECE_LIMIT
    json_stream.PIECE_LIMIT = piece
    try:
        with streamed(True):
            assert verdict(body, chunk) == decoded
    finally:
        json_stream.PIECE_LIMIT = saved


@FUZZ
@given(body=inputs(XML_SEEDS), chunk=CHUNKS)
def test_fhir_xml(body: bytes, chunk: int) -> None:
    answers(body, "fhir", "xml", "R4", chunk)


@FUZZ
@given(body=inputs(NDJSON_SEEDS), chunk=CHUNKS, stream=st.booleans())
def test_fhir_ndjson(body: bytes, chunk: int, stream: bool) -> None:
    with streamed(stream):
        answers(body, "fhir", "ndjson", "R4", chunk)


@FUZZ
@given(body=inputs(HL7_SEEDS), chunk=CHUNKS)
def test_hl7v2(body: bytes, chunk: int) -> None:
    answers(body, "hl7", "text", None, chunk)


@FUZZ
@given(body=inputs(JSON_SEEDS + XML_SEEDS + HL7_SEEDS), chunk=CHUNKS)
@pytest.mark.parametrize(
    ("fmt", "content_type", "version"),
    [("fhir", "json", "R5"), ("fhir", "json", None), ("fhir", "xml", "R4B"), ("hl7", "text", None)],
)
def test_any_input_to_any_validator(
    fmt: str, content_type: str, version: str | None, body: bytes, chunk: int
) -> None:
    answers(body, fmt, content_type, version, chunk)
