"""Inputs for property tests of the validators and of what reads uploads: random bytes, and
corpus files mutated where parsers are fragile (tokens, deep nesting, repeated warnings)."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import strategies as st

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
SEED_LIMIT = 48 * 1024  # larger corpus files make slow examples, not different ones
# Examples per property test: keeps each module well under a minute; raise it for a longer hunt.
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
