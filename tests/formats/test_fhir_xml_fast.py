"""The FHIR XML fast path never accepts what the detailed walker rejects, and says the same.

Every corpus XML file and thousands of mutations of them (an element dropped, repeated,
renamed or unknown, a bad or empty attribute, a bad value, text where FHIR allows none, a
second choice, a narrative moved out of its namespace, nesting, CDATA, comments, an
encoding) go through ``xml_decider.decide`` and through the walker alone: when the fast path
accepts, the walker must accept too, with the same summary.
"""

from __future__ import annotations

import random
import re
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.fhir import xml_decider, xml_tables, xml_validator
from mm_bronze.formats.fhir.structure import MAX_DEPTH
from mm_bronze.formats.fhir.xml_decider import decide
from tests.formats.helpers import validate

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
NS = 'xmlns="http://hl7.org/fhir"'
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'
PATIENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<Patient {NS} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="http://hl7.org/fhir ../patient.xsd">
  <!-- a comment -->
  <id value="pat-1"/>
  <meta><profile value="http://example.org/p"/><lastUpdated value="2024-05-01T10:00:00Z"/></meta>
  <text><status value="generated"/><div {XHTML}><p>x &amp; <b>y</b></p><br/></div></text>
  <contained><Organization><id value="o1"/><name value="Org"/></Organization></contained>
  <extension url="http://example.org/e"><valueString value="v"/></extension>
  <identifier><system value="urn:oid:1.2.3"/><value value="123"/></identifier>
  <active value="true"/>
  <name id="n1"><family value="Example"/><given value="A"/><given value="B"/></name>
  <gender value="female"/>
  <birthDate value="1970-01-01">
    <extension url="http://example.org/t"><valueTime value="10:00:00"/></extension>
  </birthDate>
  <managingOrganization><reference value="#o1"/></managingOrganization>
</Patient>"""
OBSERVATION = f"""<Observation {NS}>
  <status value="final"/>
  <code><coding><system value="http://loinc.org"/><code value="1-8"/></coding></code>
  <valueQuantity><value value="1.5"/><unit value="mg"/></valueQuantity>
  <component><code><text value="c"/></code><valueBoolean value="false"/></component>
</Observation>"""


def bundle(kind: str, *entries: str, type_last: bool = False) -> str:
    kind_element = f'<type value="{kind}"/>'
    body = "".join(f"<entry>{entry}</entry>" for entry in entries)
    inner = body + kind_element if type_last else kind_element + body
    return f'<Bundle {NS}><id value="b"/><meta><profile value="http://p"/></meta>{inner}</Bundle>'


def patient(url: str, version: str | None = None) -> str:
    meta = f'<meta><versionId value="{version}"/></meta>' if version else ""
    return f'<fullUrl value="{url}"/><resource><Patient>{meta}<id value="p"/></Patient></resource>'


REQUEST = '<request><method value="DELETE"/><url value="Patient/1"/></request>'
RESPONSE = '<response><status value="204"/></response>'
BUNDLES = [
    bundle("collection", patient("urn:a"), patient("urn:b")),
    bundle("collection", patient("urn:a"), patient("urn:a")),
    bundle("collection", patient("urn:a", "1"), patient("urn:a", "2")),
    bundle("collection", patient("urn:a", "1"), patient("urn:a", "1")),
    bundle("history", patient("urn:a", "1"), patient("urn:a", "1")),
    bundle("history", patient("urn:a"), patient("urn:a"), type_last=True),
    bundle("transaction", REQUEST, patient("urn:b") + REQUEST),
    bundle("batch-response", RESPONSE),
    bundle("history", REQUEST, RESPONSE),
    bundle("collection", REQUEST),
    bundle("searchset", RESPONSE),
    bundle("searchset", '<fullUrl value="urn:x"/>'),
    bundle("nonsense", patient("urn:a")),
    bundle("collection", patient("urn:a") + "<resource><Patient/></resource>"),
    bundle("collection", '<resource><Bundle><type value="x"/></Bundle></resource>'),
    bundle("document", '<resource><Observation><status value="final"/></Observation></resource>'),
]


def corpus_xml() -> list[bytes]:
    files = sorted(CORPUS.glob("fhir-r4-resources/xml/*.xml"))
    files += sorted(CORPUS.glob("fhir-invalid/*.xml"))
    return [p.read_bytes() for p in files if p.stat().st_size <= 64 * 1024]


SEEDS = [*corpus_xml(), PATIENT.encode(), OBSERVATION.encode(), *(b.encode() for b in BUNDLES)]


def walker(body: bytes, version: str) -> dict | None:
    """The detailed walker's metadata for ``body`` (None if it rejects it)."""
    saved = xml_validator.BUFFER_LIMIT
    xml_validator.BUFFER_LIMIT = -1  # stream: the fast path never runs
    try:
        return validate(body, content_type="xml", version=version)
    except InvalidPayload:
        return None
    finally:
        xml_validator.BUFFER_LIMIT = saved


def agree(body: bytes, version: str = "R4") -> bool:
    """Fails unless the fast path's verdict is one the walker shares; True if it accepted."""
    fast = decide(body, version)
    if fast is None:
        return False
    slow = walker(body, version)
    assert slow is not None, body.decode("utf-8", "replace")
    summary = {k: v for k, v in slow.items() if k not in ("fhir_version", "validation_level")}
    assert fast == summary
    return True


# -- mutations ------------------------------------------------------------------------------

LEAF = re.compile(r"<([A-Za-z]+)((?: [^<>]*?)?)/>")
START = re.compile(r"<([A-Za-z]+)((?: [^<>]*?)?)>")
VALUE = re.compile(r'value="([^"]*)"')
BAD_VALUES = ["", " ", "x y", "not a date", "1.5", "-1", "0", "true ", "2024-13-01",
              "2024-05-01T10:00", "urn:oid:x", "a\tb", "&#32;x", "99999999999999999999",
              "&lt;", "ABC=", "1e5", "+1", "T", "http://x y"]  # fmt: skip
NAMES = ["id", "extension", "value", "valueString", "valueBoolean", "text", "status", "code",
         "div", "contained", "resource", "Patient", "url", "system", "coding", "foo",
         "modifierExtension", "meta", "profile", "given", "family", "name", "gender"]  # fmt: skip


def mutations(text: str, rng: random.Random) -> Iterator[str]:
    leaves = list(LEAF.finditer(text))
    starts = list(START.finditer(text))
    values = list(VALUE.finditer(text))

    def pick(found: list[re.Match[str]]) -> re.Match[str] | None:
        return rng.choice(found) if found else None

    def splice(match: re.Match[str] | None, new: Callable[[re.Match[str]], str]) -> None:
        if match is not None:
            out.append(text[: match.start()] + new(match) + text[match.end() :])

    out: list[str] = []
    splice(pick(leaves), lambda m: "")  # a required element dropped
    splice(pick(leaves), lambda m: m.group(0) * 2)  # a non-repeating element repeated
    splice(pick(leaves), lambda m: f"<{rng.choice(NAMES)}{m.group(2)}/>")  # renamed
    splice(pick(leaves), lambda m: m.group(0) + f'<{rng.choice(NAMES)} value="x"/>')
    splice(pick(leaves), lambda m: f"<{m.group(1)}{m.group(2)}>t</{m.group(1)}>")  # text
    splice(pick(leaves), lambda m: f"<{m.group(1)}/>")  # no value
    splice(pick(leaves), lambda m: f'<{m.group(1)}{m.group(2)} id=""/>')
    splice(pick(leaves), lambda m: f'<{m.group(1)}{m.group(2)} id="i"/>')
    splice(pick(leaves), lambda m: f'<{m.group(1)}{m.group(2)} bogus="1"/>')
    splice(pick(leaves), lambda m: f'<{m.group(1)}{m.group(2)} xml:lang="en"/>')
    splice(pick(leaves), lambda m: f"<{m.group(1)}{m.group(2)}><!-- c --></{m.group(1)}>")
    splice(pick(leaves), lambda m: f"<{m.group(1)}{m.group(2)}><![CDATA[ ]]></{m.group(1)}>")
    splice(
        pick(leaves), lambda m: f"<{m.group(1)}{m.group(2)}><{rng.choice(NAMES)}/></{m.group(1)}>"
    )
    splice(pick(leaves), lambda m: f'<f:{m.group(1)} xmlns:f="http://hl7.org/fhir"{m.group(2)}/>')
    splice(pick(values), lambda m: f'value="{rng.choice(BAD_VALUES)}"')
    splice(pick(starts), lambda m: m.group(0) + "text")
    splice(pick(starts), lambda m: m.group(0) + "&#32;")
    splice(pick(starts), lambda m: f'<{m.group(1)}{m.group(2)} value="v">')
    splice(pick(starts), lambda m: f'<{m.group(1)}{m.group(2)} url="http://x">')
    splice(pick(starts), lambda m: f'<{m.group(1)}{m.group(2)} id="">')
    splice(pick(starts), lambda m: f'<{m.group(1)}{m.group(2)} xmlns="http://x">')
    splice(pick(starts), lambda m: m.group(0) + f"<div {XHTML}>n</div>")
    splice(pick(starts), lambda m: m.group(0) + f"<{rng.choice(NAMES)}/>")
    splice(pick(starts), lambda m: m.group(0) + "<contained/>")
    splice(pick(starts), lambda m: m.group(0) + "<contained><Patient/><Patient/></contained>")
    splice(
        pick(starts), lambda m: m.group(0) + '<valueString value="a"/><valueBoolean value="true"/>'
    )
    splice(pick(starts), lambda m: m.group(0) + "<extension/>")
    splice(pick(starts), lambda m: m.group(0) + '<extension url=""/>')
    splice(
        pick(starts),
        lambda m: (
            m.group(0) + '<modifierExtension url="u"><valueCode value="a b"/></modifierExtension>'
        ),
    )
    # a narrative outside its namespace, nested deep, or with FHIR around its text
    out.append(text.replace(XHTML, NS, 1))
    out.append(text.replace(XHTML, 'xmlns="http://www.w3.org/1999/xhtml" xmlns:h="urn:h"', 1))
    out.append(text.replace("</div>", "</div>x", 1))
    out.append(text.replace("</div>", "<p><svg xmlns='urn:svg'/></p></div>", 1))
    out.append(text.replace("</div>", "<!-- </b></b> --><?pi </i>?></div>", 1))
    depth = rng.choice([20, 60, 90, 95, 96, 97, 98, 99, 100, 150])
    out.append(text.replace("</div>", "<b>" * depth + "</b>" * depth + "</div>", 1))
    out.append(
        text.replace(
            "</div>", "<b/>" * depth + "<i>" * (depth // 2) + "</i>" * (depth // 2) + "</div>", 1
        )
    )
    out.append(text.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"', 1))
    out.append(text.replace("<?xml", "<!DOCTYPE x><?xml", 1))
    out.append(text.replace("<id ", '<id bogus="x" ', 1))
    yield from out


def test_corpus_files_take_the_fast_path_when_valid() -> None:
    accepted = [agree(body) for body in SEEDS]
    # Every valid corpus resource (the 13 of fhir-r4-resources) is decided without the walker.
    assert sum(accepted[:13]) == 13


def test_bundle_rules_agree() -> None:
    verdicts = [agree(body.encode()) for body in BUNDLES]
    assert verdicts == [walker(body.encode(), "R4") is not None for body in BUNDLES]
    assert 5 <= sum(verdicts) < len(BUNDLES)


@pytest.mark.parametrize("version", ["R4", "R4B", "R5"])
def test_fast_path_never_accepts_what_the_walker_rejects(version: str) -> None:
    rng = random.Random(8)
    tried = accepted = 0
    for round_ in range(12 if version == "R4" else 3):
        for seed in SEEDS:
            for mutation in mutations(seed.decode("utf-8", "replace"), rng):
                tried += 1
                accepted += agree(mutation.encode(), version)
        assert round_ >= 0
    assert tried > 1500 or version != "R4"
    assert accepted > 50  # the mutations also reach the fast path's own checks


def test_deep_fhir_elements_and_narratives_agree_at_the_limit() -> None:
    for depth in range(MAX_DEPTH - 8, MAX_DEPTH + 3):
        nested = '<extension url="http://e.org">' * depth + "</extension>" * depth
        agree(f"<Patient {NS}>{nested}</Patient>".encode())
        agree(
            f'<Patient {NS}><text><status value="generated"/><div {XHTML}>'.encode()
            + b"<b>" * depth
            + b"</b>" * depth
            + b"</div></text></Patient>"
        )


def test_the_fast_path_is_compiled_with_the_tables_constants() -> None:
    # Built by setup.py at install; without it the walker would decide every payload.
    assert xml_decider.COMPILED
    walk = xml_decider.xml_walk
    assert walk.MAX_DEPTH == MAX_DEPTH
    assert walk.KINDS == (
        xml_tables.PRIMITIVE,
        xml_tables.COMPLEX,
        xml_tables.CONTAINER,
        xml_tables.RESOURCE,
        xml_tables.NARRATIVE,
        xml_tables.NOTED,
        xml_tables.ENTRY,
        xml_tables.ENTRY_RESOURCE,
        xml_tables.TEXT,
    )


def test_narratives_are_counted_not_read() -> None:
    def narrative(xhtml: str) -> bytes:
        text = f'<text><status value="generated"/><div {XHTML}>{xhtml}</div></text>'
        return f"<Patient {NS}>{text}</Patient>".encode()

    wide = narrative("<p><b>x</b><br/></p>" * 500)
    assert agree(wide)
    assert agree(narrative("<br/>" * 300 + "<!-- </b></b> --><?pi </i>?>"))
    assert agree(narrative('<svg xmlns="urn:svg"><g><p>a &lt; b</p></g></svg><![CDATA[ <x> ]]>'))
    assert agree(narrative('<p xmlns="urn:other"><div xmlns="http://hl7.org/fhir">x</div></p>'))
    # Patient, text, div and 98 levels: one too many.
    deep = narrative("<b>" * 98 + "</b>" * 98)
    assert walker(deep, "R4") is None
    assert decide(deep, "R4") is None
    assert agree(narrative("<b>" * 97 + "</b>" * 97))


@pytest.mark.parametrize(
    ("declaration", "decided", "valid"),
    [
        ('<?xml version="1.0" encoding="UTF-8"?>', True, True),
        ("<?xml version='1.0' encoding='utf-8' standalone='yes'?>", True, True),
        ('<?xml version="1.0"?>', True, True),
        ('<?xml version="1.0" encoding="ISO-8859-1"?>', False, False),
        ("<?xml version='1.0' encoding='us-ascii'?>", False, False),
        # A name expat does not know itself (the walker's parser asks Python's codecs).
        ("<?xml version='1.0' encoding='utf_8'?>", False, True),
        ('<?xml-stylesheet href="encoding=x.css"?>', True, True),  # not a declaration
    ],
)
def test_the_declared_encoding_is_read(declaration: str, decided: bool, valid: bool) -> None:
    body = f'{declaration}<Patient {NS}><active value="true"/></Patient>'.encode()
    assert (decide(body, "R4") is not None) == decided
    assert (walker(body, "R4") is not None) == valid


def test_whitespace_text_however_written_is_not_text() -> None:
    body = f'<Patient {NS}>&#32;&#x9;<![CDATA[ ]]>\n<active value="true"/></Patient>'
    assert agree(body.encode())
    assert not agree(body.replace("&#32;", "&#65;").encode())
    assert not agree(body.replace("<![CDATA[ ]]>", "<![CDATA[x]]>").encode())


def test_the_walk_keeps_no_memory() -> None:
    rng = random.Random(3)
    bodies = [m.encode() for seed in SEEDS for m in mutations(seed.decode("utf-8", "replace"), rng)]
    for body in bodies:  # tables and caches are built before measuring
        decide(body, "R4")
    tracemalloc.start()
    try:
        for _ in range(3):
            for body in bodies:
                decide(body, "R4")
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            for body in bodies:
                decide(body, "R4")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{len(bodies) * 10} walks kept {grown} bytes"


def test_comments_matter_only_inside_narratives() -> None:
    hidden = "<!-- " + "</b>" * 130 + " -->"
    deep = hidden + "<b>" * 120 + "</b>" * 120  # too deep, though the comment seems to close
    text = f'<text><status value="generated"/><div {XHTML}>{deep}</div></text>'
    body = f"<Patient {NS}>{text}</Patient>"
    assert walker(body.encode(), "R4") is None
    assert not agree(body.encode())
    outside = f'<Patient {NS}><!-- a < b --><active value="true"/></Patient>'
    assert agree(outside.encode())


def test_large_bodies_stream_through_the_walker() -> None:
    body = PATIENT.replace("<active", "<!--" + "x" * (5 * 1024 * 1024) + "-->\n  <active")
    meta = validate(body.encode(), content_type="xml", chunk=64 * 1024)
    assert meta["resource_type"] == "Patient"
    assert meta["profiles"] == ["http://example.org/p"]


def test_malformed_xml_is_rejected_at_the_end_with_its_location() -> None:
    with pytest.raises(InvalidPayload, match="malformed XML") as caught:
        validate(f'<Patient {NS}><id value="a"></Patient>'.encode(), content_type="xml")
    assert caught.value.location == "line 1, column 54"  # at "</Patient>"


@pytest.mark.parametrize(
    "change",
    [
        ("<contained><Organization>", "<contained><Practitioner/><Organization>"),
        ("<contained><Organization>", "<contained><Organization/><Organization>"),
        ("<contained><Organization>", "<contained>x<Organization>"),
        ("</contained>", "</contained><contained/>"),
        (
            '<active value="true"/>',
            '<deceasedBoolean value="true"/><deceasedDateTime value="2020"/>',
        ),
        ('<active value="true"/>', '<active value="yes"/>'),
        ('<gender value="female"/>', '<gender value="female"></gender>x'),
        ("<br/></div>", '<br/></div><status value="generated"/>'),
        ("</div></text>", "</div>&#65;</text>"),
        ("<name id=", '<name value="x" id='),
        ('<extension url="http://example.org/e">', '<extension url="">'),
        ('<extension url="http://example.org/e">', "<extension>"),
        ('<Patient xmlns="http://hl7.org/fhir"', '<Patient xmlns="http://hl7.org/fhir" id="x"'),
    ],
)
def test_what_the_walker_rejects_never_takes_the_fast_path(change: tuple[str, str]) -> None:
    old, new = change
    assert old in PATIENT
    body = PATIENT.replace(old, new, 1).encode()
    assert decide(body, "R4") is None
    assert walker(body, "R4") is None
