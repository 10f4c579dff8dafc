"""Rules that third-party files (FHIR examples, validator test inputs, HL7 v2 feeds) exercise.

Each rule is checked with a minimal file, on both FHIR JSON paths (decoded at once and
streamed), with the exact message and location a sender sees.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from mm_bronze.errors import InvalidPayload, Issue
from mm_bronze.formats.detect import detect
from mm_bronze.formats.fhir import json_validator, xml_decider, xml_validator
from tests.formats.helpers import validate

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
BOM = b"\xef\xbb\xbf"


@pytest.fixture(params=["decoded", "streamed"])
def body_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "streamed":
        monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 0)
    return str(request.param)


def encode(resource: dict) -> bytes:
    return msgspec.json.encode(resource)


def rejection(body: bytes, **kwargs: object) -> list[Issue]:
    with pytest.raises(InvalidPayload) as caught:
        validate(body, **kwargs)  # type: ignore[arg-type]
    return caught.value.issues


def errors(body: bytes, **kwargs: object) -> list[tuple[str, str | None]]:
    return [(i.diagnostics, i.expression) for i in rejection(body, **kwargs)]


def entry(full_url: str, version: str | None = None) -> dict:
    resource: dict = {"resourceType": "Patient", "id": "a"}
    if version is not None:
        resource["meta"] = {"versionId": version}
    return {"fullUrl": full_url, "resource": resource}


def bundle(entries: list[dict], kind: str = "collection") -> bytes:
    return encode({"resourceType": "Bundle", "type": kind, "entry": entries})


# -- Bundle rules -----------------------------------------------------------------------


def test_a_full_url_may_repeat_with_another_version_id(body_path: str) -> None:
    url = "http://example.org/fhir/Patient/a"
    meta = validate(bundle([entry(url, "1"), entry(url, "2")]))
    assert meta["entry_count"] == 2
    message = "Bundle.entry[1].fullUrl repeats the fullUrl of entry[0]"
    expected = (message, "Bundle.entry[1].fullUrl")
    assert errors(bundle([entry(url, "1"), entry(url, "1")])) == [expected]
    assert errors(bundle([entry(url), entry(url)])) == [expected]


@pytest.mark.parametrize("kind", ["transaction-response", "batch-response", "history"])
def test_response_only_entries(kind: str, body_path: str) -> None:
    response = {"response": {"status": "204 No Content"}}
    assert validate(bundle([response, entry("urn:uuid:1")], kind))["entry_count"] == 2


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("collection", "Bundle.entry[0] has no resource"),
        ("batch", "Bundle.entry[0] has no resource (nor a request)"),
        ("batch-response", "Bundle.entry[0] has no resource (nor a response)"),
        ("history", "Bundle.entry[0] has no resource (nor a request or response)"),
    ],
)
def test_an_entry_without_resource_needs_what_its_bundle_allows(
    kind: str, message: str, body_path: str
) -> None:
    assert errors(bundle([{"fullUrl": "urn:uuid:1"}], kind)) == [(message, "Bundle.entry[0]")]
    if kind == "collection":
        only_response = {"response": {"status": "200"}}
        assert errors(bundle([only_response], kind)) == [(message, "Bundle.entry[0]")]


# -- Byte order marks ---------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 4096])
def test_a_bom_before_fhir_json_is_accepted_and_recorded(chunk: int, body_path: str) -> None:
    body = (CORPUS / "fhir-r4-resources" / "json" / "observation-example.json").read_bytes()
    meta = validate(BOM + body, chunk=chunk)
    assert meta["resource_type"] == "Observation"
    assert meta["bom"] is True
    assert "bom" not in validate(body)


@pytest.mark.parametrize(
    ("encoding", "problem"),
    [
        ("utf-16", "found a UTF-16 byte order mark"),  # the BOM the codec writes first
        ("utf-16-le", "it starts like UTF-16 or UTF-32"),  # no BOM: expat reads it all the same
        ("utf-16-be", "it starts like UTF-16 or UTF-32"),
    ],
)
@pytest.mark.parametrize("chunk", [1, 2, 4096])
@pytest.mark.parametrize("streamed", [False, True])
def test_fhir_xml_in_utf16_is_refused_however_it_arrives(
    encoding: str, problem: str, chunk: int, streamed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if streamed:
        monkeypatch.setattr(xml_validator, "BUFFER_LIMIT", 0)
    body = b'<Patient xmlns="http://hl7.org/fhir"><id value="a"/></Patient>'.decode()
    utf16 = body.encode(encoding)
    assert xml_decider.decide(utf16, "R4") is None  # the fast path leaves it to the walker
    with pytest.raises(InvalidPayload) as caught:
        validate(utf16, content_type="xml", chunk=chunk)
    assert caught.value.reason.startswith(f"FHIR XML must be UTF-8 ({problem}")
    assert caught.value.location == "line 1, column 1"
    meta = validate(utf16, content_type="xml", chunk=chunk, level="lenient")
    assert meta["findings"][0]["diagnostics"].startswith(f"FHIR XML must be UTF-8 ({problem}")


def test_a_bom_before_fhir_xml_is_accepted_and_recorded() -> None:
    body = next((CORPUS / "fhir-r4-resources" / "xml").glob("*.xml")).read_bytes()
    assert not body.startswith(BOM)
    meta = validate(BOM + body, content_type="xml", chunk=2)
    assert meta["bom"] is True
    assert "bom" not in validate(body, content_type="xml")


def test_a_bom_may_start_ndjson_but_not_a_later_line() -> None:
    body = (CORPUS / "ndjson" / "Patient.000.ndjson").read_bytes()
    meta = validate(BOM + body, content_type="ndjson")
    assert meta["bom"] is True
    assert meta["resource_count"] == body.count(b"\n")
    second = body.index(b"\n") + 1
    issues = rejection(body[:second] + BOM + body[second:], content_type="ndjson")
    assert [(i.diagnostics, i.location) for i in issues] == [
        ("line 2: a byte order mark is only allowed at the start of the file", "line 2")
    ]


# -- JSON: duplicate keys, fhir_comments, base64Binary ------------------------------------


def test_duplicate_keys_are_rejected_where_they_are(body_path: str) -> None:
    body = (
        b'{"resourceType": "Patient", "active": true, "active": false,'
        b' "name": [{"family": "A"}, {"family": "B", "given": ["C"], "family": "D"}]}'
    )
    assert errors(body) == [
        ("Duplicate property 'active'", "Patient.active"),
        ("Duplicate property 'family'", "Patient.name[1].family"),
    ]


def test_duplicate_keys_are_found_without_a_declared_version(body_path: str) -> None:
    body = b'{"resourceType": "Patient", "x": {"a": 1, "a": 2}}'
    assert ("Duplicate property 'a'", "Patient.x") in [
        (d, e.removesuffix(".a") if e else e) for d, e in errors(body, version=None)
    ]


def test_repeated_text_inside_strings_is_not_a_duplicate_key(body_path: str) -> None:
    div = '<div xmlns="http://www.w3.org/1999/xhtml">"a": "a": \\"</div>'
    text = {"status": "generated", "div": div}
    meta = validate(encode({"resourceType": "Patient", "text": text, "id": "a"}))
    assert "findings" not in meta


@pytest.mark.parametrize("version", ["R4", "R4B", "R5"])
def test_fhir_comments_are_not_fhir_json(version: str, body_path: str) -> None:
    body = encode({"resourceType": "Patient", "fhir_comments": ["a comment"], "active": True})
    assert errors(body, version=version) == [
        ("Unrecognized property 'fhir_comments'", "Patient.fhir_comments")
    ]


@pytest.mark.parametrize(
    ("data", "valid"),
    [
        ("aGVsbG8gd29ybGQ=", True),
        ("aGVs\nbG8g\nd29y\nbGQ=", True),  # line-wrapped
        ("aGVsbG8gd29ybGQ", False),  # not a multiple of 4
        ("aGVsbG8*d29ybGQ=", False),  # outside the alphabet
        ("aGVsbG8=d29ybGQ=", False),  # padding inside
        ("not base64 at all", False),
    ],
)
def test_base64_binary_must_be_base64(data: str, valid: bool, body_path: str) -> None:
    body = encode({"resourceType": "Binary", "contentType": "text/plain", "data": data})
    if valid:
        assert "findings" not in validate(body)
    else:
        assert errors(body) == [("Binary.data is not valid base64", "Binary.data")]


# -- Nesting -------------------------------------------------------------------------------


def nested(opening: bytes, closing: bytes, depth: int, inner: bytes = b"") -> bytes:
    return opening * depth + inner + closing * depth


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceType": "Patient", "extension": ' + nested(b"[", b"]", 100_000) + b"}",
        b'{"resourceType": "Patient", "extension": ['
        + nested(b'{"url": "http://e.org", "extension": [', b"]}, ", 3000).removesuffix(b", ")
        + b"]}",
        b'{"resourceType": "Patient", "contained": ['
        + nested(b'{"resourceType": "Patient", "contained": [', b"]}, ", 2000).removesuffix(b", ")
        + b"]}",
    ],
    ids=["100000-arrays", "3000-extensions", "2000-contained"],
)
@pytest.mark.parametrize("level", ["strict", "lenient"])
def test_deep_nesting_is_refused_with_a_reason(body: bytes, level: str, body_path: str) -> None:
    issues = rejection(body, level=level, chunk=65536)
    assert issues[0].diagnostics == "JSON nested deeper than 100 levels"
    assert issues[0].code == "too-costly"


def test_deep_but_bounded_nesting_is_checked(body_path: str) -> None:
    levels = 20  # 2 JSON levels each (an array and an object)
    body = (
        b'{"resourceType": "Patient", "extension": ['
        + b'{"url": "http://e.org", "extension": [' * (levels - 1)
        + b'{"url": "http://e.org", "valueDate": "soon"}'
        + b"]}" * (levels - 1)
        + b"]}"
    )
    path = "Patient" + ".extension[0]" * levels + ".valueDate"
    assert errors(body) == [("Extension.valueDate is not a valid date", path)]


def test_deep_xml_is_refused_with_a_reason() -> None:
    body = (
        b'<Patient xmlns="http://hl7.org/fhir">'
        + nested(b'<extension url="http://e.org">', b"</extension>", 3000)
        + b"</Patient>"
    )
    for level in ("strict", "lenient"):
        issues = rejection(body, content_type="xml", level=level)
        assert issues[0].diagnostics == "XML nested deeper than 100 levels"


# -- XML: attributes and text ---------------------------------------------------------------

NS = 'xmlns="http://hl7.org/fhir"'


@pytest.mark.parametrize(
    ("body", "message", "expression"),
    [
        (
            f'<Patient {NS}><gender value="male" lang="en"/></Patient>',
            "Undefined attribute 'lang' on Patient.gender",
            "Patient.gender",
        ),
        (
            f'<Patient {NS}><name value="x"><family value="A"/></name></Patient>',
            "Undefined attribute 'value' on Patient.name[0]",
            "Patient.name[0]",
        ),
        (
            f'<Patient {NS} id="a"><active value="true"/></Patient>',
            "Undefined attribute 'id' on Patient",
            "Patient",
        ),
        (
            f'<Patient {NS}><name><family value="A" xml:lang="en"/></name></Patient>',
            "Undefined attribute 'lang' on Patient.name[0].family",
            "Patient.name[0].family",
        ),
        (
            f'<Patient {NS}><photo url="http://x.org/a.png"/></Patient>',
            "Undefined attribute 'url' on Patient.photo[0]",
            "Patient.photo[0]",
        ),
        (
            f"<Patient {NS}><active>true</active></Patient>",
            "Text is not allowed inside Patient.active",
            "Patient.active",
        ),
        (
            f'<Patient {NS}><name>Smith<family value="A"/></name></Patient>',
            "Text is not allowed inside Patient.name[0]",
            "Patient.name[0]",
        ),
        (
            f'<Patient {NS}><extension url=""><valueString value="x"/></extension></Patient>',
            "Extension.url must not be empty",
            "Patient.extension[0].url",
        ),
        (
            f'<Patient {NS}><gender value=""/></Patient>',
            "Patient.gender must not be empty",
            "Patient.gender",
        ),
        (
            f'<Patient {NS}><name id=""><family value="A"/></name></Patient>',
            "HumanName.id must not be empty",
            "Patient.name[0].id",
        ),
        (
            f'<Patient {NS}><gender id="" value="male"/></Patient>',
            "Patient.gender.id must not be empty",
            "Patient.gender.id",
        ),
    ],
)
def test_xml_allows_only_what_fhir_defines(body: str, message: str, expression: str) -> None:
    issues = rejection(body.encode(), content_type="xml")
    assert [(i.diagnostics, i.expression) for i in issues] == [(message, expression)]
    assert issues[0].location is not None and issues[0].location.startswith("line 1, column ")


def test_xml_allows_ids_extension_urls_schema_hints_and_any_xhtml() -> None:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<Patient {NS} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="http://hl7.org/fhir ../patient.xsd">
  <!-- a comment -->
  <id value="a"/>
  <text><status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml" lang="en" xml:lang="en"><p class="x">Text</p></div>
  </text>
  <extension id="e1" url="http://example.org/e"><valueString value="v"/></extension>
  <name id="n1"><family id="f1" value="A"><extension url="http://e.org/x">
    <valueCode value="c"/></extension></family></name>
</Patient>"""
    meta = validate(body.encode(), content_type="xml")
    assert "findings" not in meta


# -- HL7 v2 batches ---------------------------------------------------------------------------

MSH = "MSH|^~\\&|LAB|HOSP|EHR|CLINIC|20240501||ORU^R01|C{n}|P|2.5.1"
PID = "PID|1||123^^^H^MR"


def hl7(*segments: str) -> bytes:
    return "\r".join(segments).encode() + b"\r"


def hl7_errors(body: bytes) -> list[tuple[str, str | None, str | None]]:
    issues = rejection(body, fmt="hl7", content_type="text", version=None)
    return [(i.diagnostics, i.expression, i.location) for i in issues]


def test_a_well_formed_batch_file_is_valid() -> None:
    body = hl7(
        "FHS|^~\\&|LAB",
        "BHS|^~\\&|LAB",
        MSH.format(n=1),
        PID,
        "BTS|1",
        "BHS|^~\\&|LAB",
        MSH.format(n=2),
        PID,
        MSH.format(n=3),
        PID,
        "BTS|2",
        "FTS|2",
    )
    meta = validate(body, "hl7", "text", version=None)
    assert meta["message_count"] == 3
    assert meta["batch"] is True


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (
            ["FHS|^~\\&|LAB", "FHS|^~\\&|LAB", MSH.format(n=1), PID],
            ("FHS repeats: a file has one file header", "FHS", "segment 2 (FHS)"),
        ),
        (
            ["BHS|^~\\&|LAB", MSH.format(n=1), PID, "BHS|^~\\&|LAB", MSH.format(n=2), PID],
            (
                "BHS starts a batch before the BTS that ends the previous one",
                "BHS",
                "segment 4 (BHS)",
            ),
        ),
        (
            [MSH.format(n=1), PID, "BHS|^~\\&|LAB", MSH.format(n=2), PID, "BTS|1"],
            (
                "BHS appears inside a message: a batch header comes first",
                "BHS",
                "segment 3 (BHS)",
            ),
        ),
        (
            [MSH.format(n=1), PID, "FHS|^~\\&|LAB"],
            ("FHS must be the first segment of the file", "FHS", "segment 3 (FHS)"),
        ),
        (
            ["BHS|^~\\&|LAB", MSH.format(n=1), PID, "BTS|2"],
            (
                "BTS-1 (Batch Message Count) declares 2 messages, the batch holds 1",
                "BTS-1",
                "segment 4 (BTS)",
            ),
        ),
        (
            ["FHS|^~\\&|LAB", "BHS|^~\\&|LAB", MSH.format(n=1), PID, "BTS|1", "FTS|3"],
            (
                "FTS-1 (File Batch Count) declares 3 batches, the file holds 1",
                "FTS-1",
                "segment 6 (FTS)",
            ),
        ),
        (  # more digits than int() converts: a located error, not a ValueError
            ["FHS|^~\\&|LAB", "BHS|^~\\&|LAB", MSH.format(n=1), PID, "BTS|1", "FTS|" + "9" * 5000],
            (
                "FTS-1 (File Batch Count) declares a 5000-digit number of batches,"
                " the file holds 1",
                "FTS-1",
                "segment 6 (FTS)",
            ),
        ),
    ],
    ids=[
        "second-FHS",
        "second-BHS",
        "BHS-in-message",
        "late-FHS",
        "BTS-count",
        "FTS-count",
        "FTS-count-huge",
    ],
)
def test_batch_structure_errors(segments: list[str], expected: tuple[str, str, str]) -> None:
    assert hl7_errors(hl7(*segments)) == [expected]


def test_counts_are_only_compared_when_given() -> None:
    body = hl7("FHS|^~\\&|LAB", "BHS|^~\\&|LAB", MSH.format(n=1), PID, "BTS|", "FTS")
    assert validate(body, "hl7", "text", version=None)["message_count"] == 1


@pytest.mark.parametrize("count", ["abc", "1.0", "²", "-1"])  # "²" is a digit to str.isdigit
def test_a_count_that_is_not_a_number_is_an_error(count: str) -> None:
    for trailer, expected in (
        ("BTS", "BTS-1 (Batch Message Count) is not a count of messages"),
        ("FTS", "FTS-1 (File Batch Count) is not a count of batches"),
    ):
        segments = ["FHS|^~\\&|LAB", "BHS|^~\\&|LAB", MSH.format(n=1), PID, "BTS|1", "FTS|1"]
        segments[-1 if trailer == "FTS" else -2] = f"{trailer}|{count}"
        found = hl7_errors(hl7(*segments))
        assert [message for message, *_ in found] == [expected], found


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b'{"resourceType": "Patient"}', ("fhir", "json")),
        (b'{"resourceType": "Patient"}\n{"resourceType": "Patient"}\n', ("fhir", "ndjson")),
        (b'<Patient xmlns="http://hl7.org/fhir"/>', ("fhir", "xml")),
        (b"MSH|^~\\&|LAB\r", ("hl7", "text")),
    ],
)
def test_offline_detection_looks_past_a_bom(head: bytes, kind: tuple[str, str]) -> None:
    assert detect(Path("upload"), BOM + head) == detect(Path("upload"), head) == kind
