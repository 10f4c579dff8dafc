"""FHIR XML: well-formed UTF-8, no DTD, FHIR namespace, structure against the version."""

from __future__ import annotations

import pytest

from mm_bronze.errors import InvalidPayload
from tests.formats.helpers import validate

NS = 'xmlns="http://hl7.org/fhir"'
PATIENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<Patient {NS}>
  <id value="pat-1"/>
  <meta><profile value="http://example.org/p"/><lastUpdated value="2024-05-01T10:00:00Z"/></meta>
  <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>x</p></div></text>
  <extension url="http://example.org/e"><valueString value="v"/></extension>
  <name><family value="Example"/><given value="A"/><given value="B"/></name>
  <birthDate value="1970-01-01">
    <extension url="http://example.org/t"><valueTime value="10:00:00"/></extension>
  </birthDate>
</Patient>""".encode()


def xml(body: str) -> bytes:
    return body.encode()


def test_valid_resource_metadata() -> None:
    meta = validate(PATIENT, content_type="xml", chunk=17)
    assert meta["resource_type"] == "Patient"
    assert meta["id"] == "pat-1"
    assert meta["profiles"] == ["http://example.org/p"]
    assert meta["last_updated"] == "2024-05-01T10:00:00Z"


def test_bundle_entries_are_counted() -> None:
    body = xml(
        f'<Bundle {NS}><type value="collection"/>'
        '<entry><fullUrl value="urn:uuid:1"/><resource><Patient><id value="a"/></Patient>'
        "</resource></entry>"
        '<entry><fullUrl value="urn:uuid:2"/><resource><Organization/></resource></entry>'
        "</Bundle>"
    )
    meta = validate(body, content_type="xml")
    assert meta["bundle_type"] == "collection"
    assert meta["entry_types"] == {"Organization": 1, "Patient": 1}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (f'<Patient {NS}><id value="a"/><birthDate value="soon"/></Patient>', "not a valid date"),
        (f"<Patient {NS}><foo/></Patient>", "Unrecognized property 'foo'"),
        (
            f'<Patient {NS}><gender value="male"/><gender value="female"/></Patient>',
            "Patient.gender: max allowed = 1, but found 2",
        ),
        (
            f'<Patient {NS}><name><text value="x"><script/></text></name></Patient>',
            "Undefined element 'script'",
        ),
        (f'<Observation {NS}><status value="final"/></Observation>', "Observation.code"),
        (f"<Nonsense {NS}/>", "unknown resource type for FHIR R4 "),
    ],
)
def test_structure_errors(body: str, reason: str) -> None:
    with pytest.raises(InvalidPayload, match=reason):
        validate(xml(body), content_type="xml")
    meta = validate(xml(body), content_type="xml", level="lenient")
    assert any(reason in f["diagnostics"] for f in meta["findings"])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (f"<Patient {NS}><id value='a'></Patient>", "malformed XML: mismatched tag"),
        (f"<Patient {NS}><id value='&reg;'/></Patient>", "undefined entity"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><Patient/>', "DTD"),
        ("<Patient/>", "not in the FHIR namespace"),
        ("", "no element found"),
    ],
)
def test_not_fhir_xml_is_rejected_even_when_lenient(body: str, reason: str) -> None:
    for level in ("strict", "lenient"):
        with pytest.raises(InvalidPayload, match=reason):
            validate(xml(body), content_type="xml", level=level)


def test_utf16_is_rejected_in_strict_mode() -> None:
    body = f'<Patient {NS}><id value="a"/></Patient>'.encode("utf-16")
    with pytest.raises(InvalidPayload, match="must be UTF-8") as caught:
        validate(body, content_type="xml")
    assert caught.value.location == "line 1, column 1"
    assert validate(body, content_type="xml", level="lenient")["resource_type"] == "Patient"


def test_syntax_error_wins_over_earlier_structure_error() -> None:
    body = xml(f'<List {NS}><id value="x"><status value="current"/></List>')
    with pytest.raises(InvalidPayload, match="malformed XML") as caught:
        validate(body, content_type="xml")
    assert caught.value.location == "line 1, column 76"
