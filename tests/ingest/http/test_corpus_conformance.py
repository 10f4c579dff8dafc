"""The corpus manifest over HTTP: valid files accepted, syntax/structure errors rejected.

Every ``valid`` file must be accepted (202). Every ``invalid`` file whose manifest note gives
a syntax or structure level must be rejected in strict mode (422) with a reason that
matches its note; profile and vocabulary level ones are accepted, since bronze keeps the
raw data. ``REASONS`` ties each rejection to its note: the reason must match the pattern
and the note must contain the keyword the pattern is about.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.ingest.http.helpers import wait_status
from tests.services.mm_bronze import MmBronze

# file name → (pattern the rejection's issues must match, words its manifest note contains)
REASONS: dict[str, tuple[str, str]] = {
    "Observation-ex-pain.json": (r"Observation\.code: minimum required|'value'", "code"),
    "ai3.json": (r"Unrecognized property 'unknownElement'", "unknownElement"),
    "ai4.json": (r"Patient\.birthDate is not a valid date", "birthDate"),
    "bad-json-close-1.json": (r"malformed JSON", "NOT valid JSON"),
    "bundle-dual-subject.xml": (r"Composition\.subject: max allowed = 1, but found 2", "subject"),
    "bundle-with-no-type.json": (r"Bundle\.type: minimum required = 1", "Bundle.type"),
    "hakan-se-2.json": (r"medication\[x\]: minimum required|no timezone", "medication[x]"),
    "json-comma-bad-1.json": (r"malformed JSON", "NOT valid JSON"),
    "json-comments-1.json": (r"malformed JSON", "NOT valid JSON"),
    "json-no-quotes-1.json": (r"malformed JSON", "NOT valid JSON"),
    "list-bad-syntax.xml": (r"malformed XML: mismatched tag", "NOT well-formed XML"),
    "pat-security-bad-string2.xml": (r"Undefined element 'script'", "script"),
    "patient-id-bad-2.json": (r"Patient\.id is not a valid id", "id"),
    "unicode-problem.xml": (r"malformed XML: reference to invalid character", "NOT well-formed"),
    "xml-bad-entities.xml": (r"malformed XML: undefined entity", "entity"),
    "xml_UTF16_noheader_bom.xml": (r"must be UTF-8", "UTF-8"),
    "DC_v25_HL7_bad.txt": (r"PID-3 .* is required but empty", "PID-3"),
    "Genv1-Case-TestMessage1.HL7": (r"data before the first MSH segment", "junk"),
    "InterPartner~CELR~GA~AIMSPlatform~Prod~Prod~20200415082416800~STOP~EXR251InvalidMSH": (
        r"MSH-9 .* is required but empty",
        "MSH-9",
    ),
    "Invalid-GenV1-0-Case-Notification.hl7": (r"MSH-5 .*HD|structured numeric", "MSH-5"),
    "Lyme_WithBadDelimiters.txt": (r"MSH-2 \(Encoding Characters\) are not valid", "MSH-2"),
    "PHLIP_FLU_2.5.1_NO_MSH12.txt": (r"MSH-12 \(Version ID\) is required but empty", "MSH-12"),
    "PHLIP_FLU_2.5.1_NO_MSH9.txt": (r"MSH-9 \(Message Type\) is required but empty", "MSH-9"),
}
# Invalid files whose problem is below what the door checks: accepted, as bronze keeps them.
ACCEPTED_LEVELS = ("profile", "vocabulary", "level unknown")


def manifest(corpus: Path) -> list[tuple[str, str, str, str]]:
    rows = (corpus / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [(r[0], r[3], r[4], r[5]) for r in (row.split("\t") for row in rows)]


def level_of(note: str) -> str:
    """The level an invalid file's note states (HL7 notes put facts before a '|')."""
    text = note.split(" | ", 1)[-1]
    return "accept" if text.startswith(ACCEPTED_LEVELS) else "reject"


def route(path: str, kind: str) -> str:
    name = Path(path).name
    if kind == "fhir-json":
        return f"/ingest/fhir/json/R4/{'bundle' if 'bundles' in path else 'resource'}"
    if kind == "fhir-xml":
        return "/ingest/fhir/xml/R4/resource"
    if kind == "ndjson":
        return f"/ingest/fhir/ndjson/R4/{name.split('.')[0]}"
    return "/ingest/hl7/text/v2/message"


@pytest.fixture(scope="module")
def client(server: MmBronze) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def reasons_of(response: httpx.Response) -> list[str]:
    body = response.json()
    if body.get("resourceType") == "OperationOutcome":
        return [issue["diagnostics"] for issue in body["issue"]]
    return [issue["diagnostics"] for issue in body.get("issues", [])] or [body["message"]]


def test_corpus_manifest_conformance(client: httpx.Client, corpus: Path) -> None:
    rows = manifest(corpus)
    assert len(rows) == 115
    table = ["file\texpected\tgot\treason"]
    wrong = []
    for path, kind, expected, note in rows:
        name = Path(path).name
        want = "accept" if expected == "valid" else level_of(note)
        response = client.post(route(path, kind), content=(corpus / path).read_bytes())
        got = {202: "accept", 422: "reject"}.get(response.status_code, str(response.status_code))
        reason = ""
        if got == "reject":
            reasons = reasons_of(response)
            reason = reasons[0]
            body = response.json()
            assert body["error"] == "invalid_payload" and body["message"] == reason
            if kind != "hl7v2":
                assert body["resourceType"] == "OperationOutcome"
                issue = body["issue"][0]
                assert issue["severity"] in ("fatal", "error") and issue["code"]
                assert response.headers["content-type"] == "application/json"
            pattern, keyword = REASONS.get(name, ("$^", "\0"))
            if not any(re.search(pattern, r) for r in reasons) or keyword not in note:
                wrong.append(f"{name}: reason {reasons} does not match note {note!r}")
        if got != want:
            wrong.append(f"{name}: expected {want}, got {got} {response.text[:300]}")
        table.append(f"{path}\t{expected} ({want})\t{got}\t{reason}")
    print("\n".join(table))
    assert not wrong, "\n".join(wrong)


def test_lenient_accepts_structure_errors_and_records_them(
    client: httpx.Client, corpus: Path, module_dsn: str
) -> None:
    body = (corpus / "fhir-invalid" / "ai4.json").read_bytes()
    assert client.post("/ingest/fhir/json/R4/patient", content=body).status_code == 422
    response = client.post("/ingest/fhir/json/R4/patient?validation=lenient", content=body)
    assert response.status_code == 202, response.text
    wait_status(client, response.json()["uuid"], {"stored", "duplicate"})
    with psycopg.connect(module_dsn) as conn:
        row = conn.execute(
            "SELECT source_metadata -> 'format_metadata' FROM ingestion.raw_ingestion"
            " WHERE fingerprint = sha256(%s)",
            (body,),
        ).fetchone()
    assert row is not None
    meta = row[0]
    assert meta["validation_level"] == "lenient"
    assert meta["resource_type"] == "Patient"
    assert meta["findings"][0]["expression"] == "Patient.birthDate"
    hl7 = (corpus / "hl7v2" / "Genv1-Case-TestMessage1.HL7").read_bytes()
    response = client.post(
        "/ingest/hl7/text/2.5/oru", content=hl7, headers={"X-Validation-Level": "lenient"}
    )
    assert response.status_code == 202, response.text


def test_syntax_errors_reject_even_when_lenient(client: httpx.Client, corpus: Path) -> None:
    body = (corpus / "fhir-invalid" / "json-comments-1.json").read_bytes()
    response = client.post("/ingest/fhir/json/R4/patient?validation=lenient", content=body)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["issue"][0]["severity"] == "fatal"
    assert outcome["issue"][0]["location"] == ["line 1, column 1"]


def test_bad_validation_level_is_400(client: httpx.Client) -> None:
    response = client.post("/ingest/fhir/json/R4/patient?validation=loose", content=b"{}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_validation_level"


@pytest.mark.parametrize(
    ("query", "parameter", "reason"),
    [
        ("validaton=lenient", "validaton", "validaton: unknown parameter; known: validation"),
        ("validation=lenient&x", "x", "x: unknown parameter; known: validation"),
        ("validation=lenient&validation=strict", "validation", "validation: given more than once"),
    ],
)
def test_unknown_or_repeated_query_parameter_is_400(
    client: httpx.Client, query: str, parameter: str, reason: str
) -> None:
    body = b'{"resourceType": "Patient", "id": "p1"}'
    response = client.post(f"/ingest/fhir/json/R4/patient?{query}", content=body)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_parameter",
        "message": reason,
        "parameter": parameter,
    }


def test_hl7_rejection_names_segment_and_field(client: httpx.Client, corpus: Path) -> None:
    body = (corpus / "hl7v2" / "DC_v25_HL7_bad.txt").read_bytes()
    response = client.post("/ingest/hl7/text/2.5.1/oru", content=body)
    assert response.status_code == 422
    data = response.json()
    assert data["message"] == "PID-3 (Patient Identifier List) is required but empty"
    assert data["location"] == "message 1, segment 3 (PID)"
    assert [i["expression"] for i in data["issues"]] == ["PID-3", "OBR-4"]
