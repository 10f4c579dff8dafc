"""A body sent with ``Content-Encoding: gzip`` is decoded as it arrives: the decoded bytes are
validated, hashed, stored and deduplicated as if they had been sent as they are."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.ingest.http.helpers import sha256, stored_bytes, wait_status
from tests.services.mm_bronze import MmBronze

GZIP = {"Content-Encoding": "gzip"}


@pytest.fixture(scope="module")
def client(server: MmBronze) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def bulk_export(corpus: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted((corpus / "ndjson").glob("*.ndjson")))


def test_a_gzip_ndjson_export_is_stored_decoded_and_deduplicated(
    client: httpx.Client, corpus: Path, module_dsn: str
) -> None:
    body = bulk_export(corpus)
    assert len(body) > 256 * 1024  # above the inline limit: staged, checked by a worker
    response = client.post("/ingest/fhir/ndjson/R4/bulk", content=gzip.compress(body), headers=GZIP)
    assert response.status_code == 202, response.text
    first = response.json()["uuid"]
    status = wait_status(client, first, {"stored"})
    assert status["sha256"] == sha256(body)
    assert status["size"] == len(body)
    assert stored_bytes(status["storage_path"]) == body
    assert client.get(f"/ingest/{first}/content").content == body

    # The same bytes sent as they are: a duplicate of the gzip submission, lineage kept.
    again = client.post("/ingest/fhir/ndjson/R4/bulk", content=body)
    assert again.status_code == 202, again.text
    duplicate = wait_status(client, again.json()["uuid"], {"duplicate"})
    assert duplicate["duplicate_of"] == first
    with psycopg.connect(module_dsn) as conn:
        row = conn.execute(
            "SELECT source_metadata ->> 'content_encoding' FROM ingestion.submissions"
            " WHERE submission_id = %s",
            (first,),
        ).fetchone()
    assert row == ("gzip",)


def test_small_multi_member_and_identity_bodies(client: httpx.Client) -> None:
    patient = b'{"resourceType": "Patient", "id": "gz-small"}'
    lines = b"".join(b'{"resourceType": "Patient", "id": "gz%d"}\n' % i for i in range(50))
    # Members one after another, as `cat a.gz b.gz` makes them: gzip reads them all.
    members = gzip.compress(lines[:700]) + gzip.compress(lines[700:])
    plain = b'{"resourceType": "Patient", "id": "identity"}'
    cases = [
        ("/ingest/fhir/json/R4/patient", patient, gzip.compress(patient), "x-gzip"),
        ("/ingest/fhir/ndjson/R4/bulk", lines, members, "GZIP, identity"),
        ("/ingest/fhir/json/R4/patient", plain, plain, "identity"),  # the body as is
    ]
    for route, body, packed, coding in cases:
        response = client.post(route, content=packed, headers={"Content-Encoding": coding})
        assert response.status_code == 202, response.text
        status = wait_status(client, response.json()["uuid"], {"stored"})
        assert stored_bytes(status["storage_path"]) == body


def test_a_gzip_body_that_decodes_to_an_invalid_payload_is_a_422(client: httpx.Client) -> None:
    body = b'{"resourceType": "Patient", "id": "bad", "unknownElement": 1}'
    response = client.post(
        "/ingest/fhir/json/R4/patient", content=gzip.compress(body), headers=GZIP
    )
    assert response.status_code == 422, response.text
    assert "unknownElement" in response.json()["message"]
