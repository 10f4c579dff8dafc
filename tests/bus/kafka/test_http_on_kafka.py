"""The HTTP door's round-trip, duplicate and bad-input behaviour with Kafka as the bus."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from tests.ingest.http import test_roundtrip as embedded
from tests.ingest.http.helpers import sha256, stored_bytes, wait_status
from tests.services.mm_bronze import MmBronze

# The embedded-bus round trips, run again here with this module's Kafka-backed `server`.
client = embedded.client
test_every_valid_fhir_file_round_trips = embedded.test_every_valid_fhir_file_round_trips
test_hl7_round_trip = embedded.test_hl7_round_trip
test_large_body_is_claim_checked_and_stored = embedded.test_large_body_is_claim_checked_and_stored
test_unknown_uuid_is_404 = embedded.test_unknown_uuid_is_404
test_health_and_readiness = embedded.test_health_and_readiness

PATIENT = b'{"resourceType": "Patient", "id": "dup-1", "gender": "female"}'


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_kafka_env: dict[str, str]
) -> Iterator[MmBronze]:
    """`serve --all` with KAFKA_SERVERS set: the Kafka bus replaces the embedded queue."""
    proc = MmBronze(tmp_path_factory.mktemp("mmb-kafka"), env=module_kafka_env)
    proc.start()
    yield proc
    proc.stop()


def test_the_kafka_bus_is_in_use(server: MmBronze) -> None:
    assert "kafka bus open" in server.logs()


def test_duplicates_are_stored_once_and_every_submission_resolves(
    server: MmBronze, client: httpx.Client, module_dsn: str
) -> None:
    url = "/ingest/fhir/json/R4/resource"
    uuids = [client.post(url, content=PATIENT).json()["uuid"] for _ in range(2)]
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: client.post(url, content=PATIENT), range(20)))
    assert [r.status_code for r in responses] == [202] * 20
    uuids += [r.json()["uuid"] for r in responses]
    statuses = [wait_status(client, u, {"stored", "duplicate"}) for u in uuids]
    originals = [s for s in statuses if s["status"] == "stored"]
    assert len(originals) == 1
    assert {s["storage_path"] for s in statuses} == {originals[0]["storage_path"]}
    assert all(s["duplicate_of"] == originals[0]["uuid"] for s in statuses if s is not originals[0])
    assert stored_bytes(originals[0]["storage_path"]) == PATIENT
    with psycopg.connect(module_dsn) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM ingestion.raw_ingestion WHERE fingerprint = %s",
            (bytes.fromhex(sha256(PATIENT)),),
        ).fetchone()
    assert rows == (1,)
    raw = server.data_dir / "raw"
    assert len([p for p in raw.rglob(f"{sha256(PATIENT)}*") if "_staging" not in p.parts]) == 1


@pytest.mark.parametrize(
    ("route", "body", "status", "code"),
    [
        ("/ingest/fhir/json/R4/resource", b'{"resourceType": "Patient", ', 422, "invalid_payload"),
        ("/ingest/fhir/json/R4/resource", b"", 422, "invalid_payload"),
        ("/ingest/hl7/text/2.5.1/oru", b"not an hl7 message", 422, "invalid_payload"),
        ("/ingest/nosuch/json/R4/resource", b"{}", 400, "unsupported_format"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_recorded(
    client: httpx.Client, module_dsn: str, route: str, body: bytes, status: int, code: str
) -> None:
    response = client.post(route, content=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    if body:
        with psycopg.connect(module_dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM ingestion.raw_ingestion WHERE fingerprint = %s",
                (bytes.fromhex(sha256(body)),),
            ).fetchone()
        assert row == (0,)
