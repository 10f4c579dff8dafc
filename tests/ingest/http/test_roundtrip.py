"""Round trips through the HTTP door on embedded defaults: accepted → stored, byte-identical."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.ingest.http.helpers import sha256, stored_bytes, wait_status
from tests.services.mm_bronze import MmBronze


@pytest.fixture(scope="module")
def client(server: MmBronze) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def corpus_files(corpus: Path, kind: str) -> list[tuple[Path, str]]:
    rows = (corpus / "MANIFEST.tsv").read_text().splitlines()[1:]
    out = []
    for row in rows:
        path, _size, _sha, file_kind, expected, _note = row.split("\t")
        if file_kind == kind and expected == "valid":
            out.append((corpus / path, path))
    return out


@pytest.mark.parametrize(
    ("kind", "content_type", "subtype_of"),
    [("fhir-json", "json", "resource"), ("fhir-xml", "xml", "resource")],
)
def test_every_valid_fhir_file_round_trips(
    client: httpx.Client,
    corpus: Path,
    module_dsn: str,
    kind: str,
    content_type: str,
    subtype_of: str,
) -> None:
    files = corpus_files(corpus, kind)
    assert files, f"no {kind} files in the corpus"
    accepted = []
    for path, name in files:
        body = path.read_bytes()
        subtype = "bundle" if "bundles" in name else subtype_of
        response = client.post(f"/ingest/fhir/{content_type}/R4/{subtype}", content=body)
        assert response.status_code == 202, (name, response.text)
        data = response.json()
        assert data["status"] == "accepted"
        accepted.append((data["uuid"], body, subtype))
    seen: dict[str, str] = {}
    for uuid, body, subtype in accepted:
        status = wait_status(client, uuid, {"stored", "duplicate"})
        digest = sha256(body)
        assert status["sha256"] == digest
        assert status["size"] == len(body)
        assert stored_bytes(status["storage_path"]) == body
        if status["status"] == "duplicate":
            assert status["duplicate_of"] == seen[digest]
        else:
            seen[digest] = uuid
        with psycopg.connect(module_dsn) as conn:
            row = conn.execute(
                "SELECT format, content_type, data_version, subtype, ingestion_source"
                " FROM ingestion.raw_ingestion WHERE fingerprint = %s",
                (bytes.fromhex(digest),),
            ).fetchone()
        assert row == ("fhir", content_type, "R4", subtype, "api")


def test_hl7_round_trip(client: httpx.Client, corpus: Path) -> None:
    body = (corpus / "hl7v2" / "PHLIP_FLU_2.5.1_VALID_MESSAGE.txt").read_bytes()
    response = client.post("/ingest/hl7/text/2.5.1/oru", content=body)
    assert response.status_code == 202, response.text
    status = wait_status(client, response.json()["uuid"], {"stored", "duplicate"})
    assert stored_bytes(status["storage_path"]) == body
    assert status["storage_path"].endswith(f"{sha256(body)}.hl7")
    assert "/date=" in status["storage_path"]


def test_large_body_is_claim_checked_and_stored(client: httpx.Client) -> None:
    # Above the inline limit: staged in storage, the event carries the reference.
    name = f'"name": [{{"text": "{"x" * 200}"}}]'
    entries = ",".join(
        f'{{"resource": {{"resourceType": "Patient", "id": "p{i}", {name}}}}}' for i in range(8000)
    )
    body = f'{{"resourceType": "Bundle", "type": "collection", "entry": [{entries}]}}'.encode()
    assert len(body) > 1024 * 1024
    response = client.post("/ingest/fhir/json/R4/bundle", content=body)
    assert response.status_code == 202, response.text
    status = wait_status(client, response.json()["uuid"], {"stored"})
    assert stored_bytes(status["storage_path"]) == body
    assert status["sha256"] == sha256(body)


def test_unknown_uuid_is_404(client: httpx.Client) -> None:
    response = client.get("/ingest/6f1c1a53-7c6b-4d7e-9a51-5f0a3c1b2d44")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert client.get("/ingest/not-a-uuid").status_code == 400


def test_a_trailing_slash_is_not_a_route(client: httpx.Client) -> None:
    """Answered 404 as any unknown path, never a redirect that would tell which routes exist
    before asking for a token."""
    for method, path in (("GET", "/submissions/"), ("GET", "/dead-letters/"), ("GET", "/docs/")):
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "not_found", "message": f"no route for {method} {path}"}


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "bus": "ok",
        "storage": "ok",
        "consumers": "ok",
        "http": "ok",
        "mllp": "ok",
        "sftp": "ok",  # `serve --all` includes the SFTP door; ready once it listens
    }
