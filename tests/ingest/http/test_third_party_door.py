"""Third-party payloads at the HTTP door: a BOM is kept and recorded, deep nesting is a 422."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.ingest.http.helpers import stored_bytes, wait_status
from tests.services.mm_bronze import MmBronze

BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def client(server: MmBronze) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def format_metadata(dsn: str, body: bytes) -> dict:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT source_metadata -> 'format_metadata' FROM ingestion.raw_ingestion"
            " WHERE fingerprint = sha256(%s)",
            (body,),
        ).fetchone()
    assert row is not None
    return dict(row[0])


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("fhir-r4-resources/json/observation-example.json", "/ingest/fhir/json/R4/observation"),
        ("fhir-r4-resources/xml/observation-decimal.xml", "/ingest/fhir/xml/R4/observation"),
        ("ndjson/Patient.000.ndjson", "/ingest/fhir/ndjson/R4/Patient"),
    ],
)
def test_a_bom_is_accepted_kept_and_recorded(
    client: httpx.Client, corpus: Path, module_dsn: str, path: str, route: str
) -> None:
    body = BOM + (corpus / path).read_bytes()
    response = client.post(route, content=body)
    assert response.status_code == 202, response.text
    status = wait_status(client, response.json()["uuid"], {"stored", "duplicate"})
    assert stored_bytes(status["storage_path"]) == body
    assert format_metadata(module_dsn, body)["bom"] is True


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceType": "Patient", "extension": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"resourceType": "Patient", "extension": ['
        + b'{"url": "http://e.org", "extension": [' * 3000
        + b"]}" * 3000
        + b"]}",
    ],
    ids=["100000-arrays", "3000-extensions"],
)
def test_deep_nesting_is_a_422_with_a_reason(client: httpx.Client, body: bytes) -> None:
    response = client.post("/ingest/fhir/json/R4/patient", content=body)
    assert response.status_code == 422, response.text
    data = response.json()
    assert data["message"] == "JSON nested deeper than 100 levels"
    assert data["issue"][0]["code"] == "too-costly"
