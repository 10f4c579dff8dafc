"""No input crashes a validator: random bytes and mutated corpus files only ever get an answer.

Every validator (FHIR JSON decoded at once and streamed, FHIR XML, FHIR NDJSON, HL7 v2), at
both levels, in random chunk sizes, either returns metadata or raises ``InvalidPayload``;
any other exception (a RecursionError, a KeyError, an assertion) fails the test, and
hypothesis prints the input that caused it. The number of examples keeps the whole module
well under a minute; ``MM_BRONZE_FUZZ_EXAMPLES`` raises it for a longer hunt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.fhir import json_stream, json_validator
from tests.formats.helpers import validate

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
SEED_LIMIT = 48 * 1024  # larger corpus files make slow examples, not different ones
EXAMPLES = int(os.environ.get("MM_BRONZE_FUZZ_EXAMPLES", "120"))


def seeds(*patterns: str) -> list[bytes]:
    found = [
        path.read_bytes()
        for pattern in patterns
        for path in sorted(CORPUS.glob(pattern))
        if path.stat().st_size <= SEED_LIMIT
    ]
    assert found, f"no corpus files for {patterns} under {CORPUS}"
    return found


JSON_SEEDS = seeds("fhir-r4-resources/json/*.json", "fhir-invalid/*.json")
XML_SEEDS = seeds("fhir-r4-resources/xml/*.xml", "fhir-invalid/*.xml")
HL7_SEEDS = seeds("hl7v2/*")
NDJSON_SEEDS = [b"\n".join(body.splitlines()[:20]) + b"\n" for body in seeds("ndjson/*")]

# Bytes that matter to one of the parsers, to insert where a mutation lands.
TOKENS = [
    b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"null", b"true", b"1e999", b"-0",
    b'"resourceType": "Bundle"', b'"_id": ', b'"extension": [', b'"fhir_comments": 1',
    b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\x00", b"\r", b"\n", b"\r\n", b"\t",
    b"<", b">", b"/>", b"&", b"&amp;", b"&#0;", b"<!DOCTYPE x>", b' value=""', b' url="x"',
    b"<![CDATA[x]]>", b"<?pi x?>", b'xmlns="http://hl7.org/fhir"',
    b"MSH|^~\\&|", b"FHS|^~\\&|", b"BHS|^~\\&|", b"BTS|x", b"FTS|9", b"|", b"^", b"~",
]  # fmt: skip
NESTS = [b"[", b"{", b'{"a":', b'{"extension":[', b'{"resourceType":"Patient","contained":[',
         b"<extension>", b"<a>"]  # fmt: skip
# Pieces that each cost a warning, repeated past the findings a validator keeps: an error
# found after them must still be reported (it once crashed the rejection).
WARNINGS = [b"\n \n", b"\rMSH|^~\\&&|A|B|C|D|1||ADT^A01|1|P|2.5.1\r"]


@st.composite
def mutated(draw: st.DrawFn, corpus: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 4))):
        ops = ["flip", "delete", "insert", "repeat", "truncate", "nest", "warn"]
        op = draw(st.sampled_from(ops))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == "repeat":
            piece = data[at : at + draw(st.integers(1, 256))]
            data[at:at] = piece * draw(st.integers(1, 4))
        elif op == "truncate":
            del data[at:]
        elif op == "nest":
            data[at:at] = draw(st.sampled_from(NESTS)) * draw(st.integers(50, 3000))
        elif op == "warn":
            data[at:at] = draw(st.sampled_from(WARNINGS)) * draw(st.integers(21, 40))
    return bytes(data)


def inputs(corpus: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=256), mutated(corpus), mutated(corpus))


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
