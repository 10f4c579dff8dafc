"""FHIR JSON: structure against the declared version, Bundle rules, metadata, levels."""

from __future__ import annotations

import msgspec
import pytest

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.fhir import json_stream, json_validator
from tests.formats.helpers import validate


@pytest.fixture(autouse=True, params=["decoded", "streamed"])
def body_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs twice: msgspec-decoded (small bodies) and ijson-streamed (large)."""
    if request.param == "streamed":
        monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 0)
    return str(request.param)


def encode(resource: dict) -> bytes:
    return msgspec.json.encode(resource)


PATIENT = {
    "resourceType": "Patient",
    "id": "pat-1",
    "meta": {
        "profile": ["http://example.org/StructureDefinition/p"],
        "lastUpdated": "2024-05-01T10:00:00Z",
    },
    "name": [{"family": "Example", "given": ["Test"]}],
    "birthDate": "1970-01-01",
    "_birthDate": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
    "active": True,
}


def bundle(entries: list[dict], bundle_type: str = "collection") -> dict:
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def test_valid_resource_metadata() -> None:
    meta = validate(encode(PATIENT))
    assert meta["resource_type"] == "Patient"
    assert meta["id"] == "pat-1"
    assert meta["profiles"] == ["http://example.org/StructureDefinition/p"]
    assert meta["last_updated"] == "2024-05-01T10:00:00Z"
    assert meta["fhir_version"] == "R4"
    assert meta["validation_level"] == "strict"
    assert "findings" not in meta


def test_bundle_metadata_counts_entries_per_type() -> None:
    entries = [
        {"fullUrl": "urn:uuid:1", "resource": PATIENT},
        {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient"}},
        {"fullUrl": "urn:uuid:3", "resource": {"resourceType": "Organization"}},
    ]
    meta = validate(encode(bundle(entries)))
    assert meta["bundle_type"] == "collection"
    assert meta["entry_count"] == 3
    assert meta["entry_types"] == {"Organization": 1, "Patient": 2}


@pytest.mark.parametrize(
    ("resource", "reason", "expression"),
    [
        ({**PATIENT, "unknownThing": 1}, "Unrecognized property 'unknownThing'", None),
        ({**PATIENT, "birthDate": "yesterday"}, "Patient.birthDate is not a valid date", None),
        ({**PATIENT, "id": "bad id"}, "Patient.id is not a valid id", "Patient.id"),
        ({**PATIENT, "active": "yes"}, "must be a JSON boolean", "Patient.active"),
        ({**PATIENT, "name": {"family": "x"}}, "must be an array", "Patient.name"),
        ({**PATIENT, "gender": ["male"]}, "max allowed = 1", "Patient.gender"),
        ({**PATIENT, "name": []}, "arrays must not be empty", "Patient.name"),
        ({"resourceType": "Observation", "status": "final"}, "Observation.code: minimum", None),
        (
            {"resourceType": "Patient", "deceasedBoolean": True, "deceasedDateTime": "2020"},
            "only one deceased[x]",
            None,
        ),
        ({"resourceType": "Nonsense"}, "unknown resource type for FHIR R4 ", None),
        (bundle([], "not-a-type"), "Bundle.type is not a valid bundle type", "Bundle.type"),
        ({"resourceType": "Bundle"}, "Bundle.type: minimum required = 1", "Bundle.type"),
        (bundle([{"fullUrl": "urn:uuid:1"}]), "Bundle.entry[0] has no resource", None),
        (bundle([{"resource": {"id": "x"}}]), "must have a resourceType", None),
        (
            bundle(
                [
                    {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}},
                    {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}},
                ]
            ),
            "entry[1].fullUrl repeats the fullUrl of entry[0]",
            None,
        ),
        (
            {"resourceType": "Patient", "contained": [{"resourceType": "Patient", "foo": 1}]},
            "Unrecognized property 'foo'",
            "Patient.contained[0].foo",
        ),
    ],
)
def test_structure_errors_reject_in_strict_mode(
    resource: dict, reason: str, expression: str | None
) -> None:
    with pytest.raises(InvalidPayload) as caught:
        validate(encode(resource))
    messages = [issue.diagnostics for issue in caught.value.issues]
    assert any(reason in m for m in messages), messages
    if expression is not None:
        assert expression in [issue.expression for issue in caught.value.issues]


def test_lenient_records_structure_errors_as_findings() -> None:
    meta = validate(encode({**PATIENT, "birthDate": "yesterday"}), level="lenient")
    assert meta["resource_type"] == "Patient"
    assert meta["validation_level"] == "lenient"
    assert meta["finding_count"] == 1
    finding = meta["findings"][0]
    assert finding["severity"] == "error"
    assert finding["expression"] == "Patient.birthDate"
    assert "yesterday" not in finding["diagnostics"]  # values are patient data


def test_transaction_entries_may_carry_only_a_request() -> None:
    entry = {"fullUrl": "urn:uuid:1", "request": {"method": "DELETE", "url": "Patient/1"}}
    assert validate(encode(bundle([entry], "transaction")))["entry_count"] == 1
    with pytest.raises(InvalidPayload, match="has no resource"):
        validate(encode(bundle([entry], "collection")))


@pytest.mark.parametrize(
    ("body", "reason", "location"),
    [
        (b'{\n  "resourceType": "Patient",\n  "id": "x"\n  "active": true}', "malformed", "line 4"),
        (b"[1, 2]", "must be a JSON object", None),
        (b'{"id": "x"}', "resourceType", None),
        (b"not json", "malformed JSON", "line 1, column"),
    ],
)
def test_not_fhir_json_is_rejected_even_when_lenient(
    body: bytes, reason: str, location: str | None, body_path: str
) -> None:
    for level in ("strict", "lenient"):
        with pytest.raises(InvalidPayload, match=reason) as caught:
            validate(body, level=level)
        if location:
            assert location in (caught.value.location or "")


def test_versions_have_their_own_resource_types() -> None:
    r5_only = encode({"resourceType": "Transport", "status": "completed", "intent": "order"})
    with pytest.raises(InvalidPayload, match="unknown resource type 'Transport'"):
        validate(r5_only, version="R4")
    meta = validate(
        encode({"resourceType": "Transport", "intent": "order", "status": "completed"}),
        version="5.0.0",
        level="lenient",
    )
    assert meta["fhir_version"] == "R5"
    assert meta["resource_type"] == "Transport"


def test_unknown_version_checks_syntax_only() -> None:
    meta = validate(encode({"resourceType": "BodySite", "whatever": 1}), version="STU3")
    assert meta["resource_type"] == "BodySite"
    assert meta["findings"][0]["severity"] == "information"


def test_large_bodies_stream_through_the_same_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 1024)
    entries = [{"fullUrl": f"urn:uuid:{i}", "resource": PATIENT} for i in range(200)]
    body = encode(bundle(entries))
    assert len(body) > 1024
    meta = validate(body, chunk=333)
    assert meta["entry_types"] == {"Patient": 200}
    assert meta["bundle_type"] == "collection"
    bad = encode(bundle([*entries, {"resource": {**PATIENT, "birthDate": "1970-13-01"}}]))
    with pytest.raises(InvalidPayload, match=r"Patient\.birthDate is not a valid date") as caught:
        validate(bad, chunk=333)
    assert caught.value.issues[0].expression == "Bundle.entry[200].resource.birthDate"
    with pytest.raises(InvalidPayload, match="malformed JSON"):
        validate(body[:-2], chunk=333)


def test_streamed_resource_with_late_resource_type_is_noted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only a root too large to be decoded as one piece is followed property by property.
    monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 10)
    monkeypatch.setattr(json_stream, "PIECE_LIMIT", 8)
    meta = validate(b'{"id": "x", "resourceType": "Patient"}', chunk=5)
    assert meta["resource_type"] == "Patient"
    assert meta["findings"][0]["severity"] == "information"


def test_element_ids_are_strings_resource_ids_are_ids() -> None:
    meta = validate(encode({**PATIENT, "name": [{"id": "any string, even this", "text": "x"}]}))
    assert "findings" not in meta


def test_no_declared_version_means_syntax_only() -> None:
    meta = validate(encode({"resourceType": "Patient", "whatever": 1}), version=None)
    assert meta["findings"][0]["diagnostics"] == (
        "no FHIR version declared: resource structure not checked"
    )


def test_invalid_utf8_is_malformed_json(body_path: str) -> None:
    with pytest.raises(InvalidPayload, match="not valid UTF-8") as caught:
        validate(b'{"resourceType": "Patient",\n "id": "\xc9t\xe9"}')
    assert caught.value.location == "line 2, column 9"


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (b'{"resourceType": "Patient"}x', "line 1, column 28"),
        (b'{"resourceType": "Patient"}  {"resourceType": "Patient"}', "line 1, column 30"),
        (b'{"resourceType": "Patient"}\n}', "line 2, column 1"),
    ],
)
def test_trailing_characters_are_located_at_the_first_of_them(body: bytes, location: str) -> None:
    with pytest.raises(InvalidPayload, match="trailing characters") as caught:
        validate(body)
    assert caught.value.location == location


@pytest.mark.parametrize(
    "error",
    [
        # msgspec before 0.23 raised this for invalid UTF-8 ...
        UnicodeDecodeError("utf-8", b"\xc9", 0, 1, "invalid continuation byte"),
        # ... and 0.23 raises this, without an offset.
        msgspec.DecodeError("Invalid UTF-8 encoded string"),
    ],
    ids=["UnicodeDecodeError", "DecodeError"],
)
def test_invalid_utf8_is_located_whichever_error_msgspec_raises(
    error: msgspec.DecodeError | UnicodeDecodeError,
) -> None:
    data = b'{"resourceType": "Patient",\n "id": "\xc9t\xe9"}'
    assert json_validator.decode_error(error, data) == ("not valid UTF-8", "line 2, column 9")


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceType": "Patient", "name": [{"family": "SECRET-NAME" x}]}',
        b'{"resourceType": "Patient", "name": [{"family": "SECRET-NAME\xff"}]}',
        b'{"resourceType": "Patient", "birthDate": "SECRET-NAME"}',
        b'{"resourceType": "Patient", "name": [{"family": "SECRET-NAME"',
    ],
)
def test_error_messages_never_quote_the_payload(body: bytes) -> None:
    with pytest.raises(InvalidPayload) as caught:
        validate(body)
    texts = [caught.value.reason, str(caught.value.location)]
    texts += [f"{i.diagnostics} {i.expression} {i.location}" for i in caught.value.issues]
    assert not any("SECRET" in text for text in texts), texts


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (  # a name some version defines is shown
            {"resourceType": "Transport"},
            ("unknown resource type 'Transport' for FHIR R4", None),
        ),
        (  # a wrong case gets the name it should have been, never the given one
            {"resourceType": "patient"},
            ("unknown resource type for FHIR R4 (did you mean 'Patient'?)", None),
        ),
        (
            {"resourceType": "Jane Roe 1970"},
            ("unknown resource type for FHIR R4 (not a FHIR resource type, not shown)", None),
        ),
        (
            {"resourceType": "Patient", "Jane Roe": 1},
            (
                "Unrecognized property (not shaped like a FHIR name: 8 characters, not shown)",
                "Patient.<8 characters>",
            ),
        ),
        ({"resourceType": "Patient", "nmae": []}, ("Unrecognized property 'nmae'", "Patient.nmae")),
    ],
)
def test_findings_show_names_from_the_payload_only_when_shaped_like_fhir_names(
    body: dict, expected: tuple[str, str | None]
) -> None:
    """A payload's resource type and keys are the sender's text; findings (and the log lines
    and OperationOutcomes that carry them) show them only when they are FHIR-shaped names."""
    with pytest.raises(InvalidPayload) as caught:
        validate(encode(body))
    issue = caught.value.issues[0]
    assert (issue.diagnostics, issue.expression) == expected
