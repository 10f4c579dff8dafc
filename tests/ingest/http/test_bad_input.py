"""Bad input gets the right 4xx with a readable reason, and nothing is stored or queued."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.services.mm_bronze import MmBronze

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[MmBronze]:
    proc = MmBronze(
        tmp_path_factory.mktemp("bad"),
        env={
            "POSTGRES_DSN": module_dsn,
            "API_MAX_FILE_SIZE": str(LIMIT),
            "MM_BRONZE_HTTP_INLINE_LIMIT": str(16 * 1024),
        },
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(small_server: MmBronze) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=small_server.url, timeout=30) as c:
        yield c


@pytest.fixture(autouse=True)
def nothing_kept(small_server: MmBronze, module_dsn: str) -> Iterator[None]:
    """Every test here must leave no queued event, no row, no object and no staged blob."""
    yield
    with psycopg.connect(module_dsn) as conn:
        for table in (
            "bus.messages",
            "ingestion.raw_ingestion",
            "ingestion.submissions",
            "ingestion.ingestion_log",
        ):
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert count == (0,), table
    raw = small_server.data_dir / "raw"
    assert [p for p in raw.rglob("*") if p.is_file()] == []


def post(client: httpx.Client, route: str, body: bytes) -> httpx.Response:
    return client.post(route, content=body)


def assert_error(response: httpx.Response, status: int, code: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["error"] == code
    assert fragment in data["message"], data["message"]


def test_malformed_json(client: httpx.Client) -> None:
    response = post(client, "/ingest/fhir/json/R4/patient", b'{"resourceType": "Patient",}')
    assert_error(response, 422, "invalid_payload", "malformed JSON")


def test_json_without_resource_type(client: httpx.Client) -> None:
    response = post(client, "/ingest/fhir/json/R4/patient", b'{"id": "x"}')
    assert_error(response, 422, "invalid_payload", "resourceType")


def test_corpus_json_syntax_errors(client: httpx.Client, corpus: Path) -> None:
    for name in (
        "bad-json-close-1.json",
        "json-comma-bad-1.json",
        "json-comments-1.json",
        "json-no-quotes-1.json",
    ):
        body = (corpus / "fhir-invalid" / name).read_bytes()
        response = post(client, "/ingest/fhir/json/R4/patient", body)
        assert_error(response, 422, "invalid_payload", "malformed JSON")


def test_malformed_xml(client: httpx.Client, corpus: Path) -> None:
    body = (corpus / "fhir-invalid" / "list-bad-syntax.xml").read_bytes()
    response = post(client, "/ingest/fhir/xml/R4/list", body)
    assert_error(response, 422, "invalid_payload", "malformed XML")
    assert "line" in response.json()["location"]


def test_entity_expansion_is_refused(client: httpx.Client) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b'<Patient xmlns="http://hl7.org/fhir"><id value="&lol2;"/></Patient>'
    )
    response = post(client, "/ingest/fhir/xml/R4/patient", bomb)
    assert_error(response, 422, "invalid_payload", "DTD")


def test_external_entity_is_refused(client: httpx.Client) -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>'
    )
    response = post(client, "/ingest/fhir/xml/R4/patient", xxe)
    assert_error(response, 422, "invalid_payload", "DTD")


def test_xml_outside_fhir_namespace(client: httpx.Client) -> None:
    response = post(client, "/ingest/fhir/xml/R4/patient", b"<Patient><id value='1'/></Patient>")
    assert_error(response, 422, "invalid_payload", "FHIR namespace")


def test_non_hl7_text(client: httpx.Client) -> None:
    response = post(client, "/ingest/hl7/text/2.5.1/oru", b"hello, this is not HL7\r")
    assert_error(response, 422, "invalid_payload", "MSH")


def test_an_error_after_many_warnings_is_a_422_not_a_500(client: httpx.Client) -> None:
    # More blank lines (each a warning) than a submission's findings keep, then an error.
    body = b'{"resourceType": "Patient"}\n' + b"\n" * 30 + b'{"resourceType": "Patient", "x": 1}\n'
    response = post(client, "/ingest/fhir/ndjson/R4/bulk", body)
    assert_error(response, 422, "invalid_payload", "line 32: Unrecognized property 'x'")
    assert response.json()["location"] == "line 32"


def test_empty_body(client: httpx.Client) -> None:
    for route in ("/ingest/fhir/json/R4/patient", "/ingest/hl7/text/2.5.1/oru"):
        assert_error(post(client, route, b""), 422, "invalid_payload", "empty body")


def test_unknown_format_lists_supported(client: httpx.Client) -> None:
    response = post(client, "/ingest/dicom/binary/3/image", b"DICM")
    assert_error(response, 400, "unsupported_format", "dicom")
    assert "fhir/json" in response.json()["supported"]
    response = post(client, "/ingest/fhir/yaml/R4/patient", b"resourceType: Patient")
    assert_error(response, 400, "unsupported_format", "yaml")
    assert response.json()["supported"] == ["fhir/json", "fhir/xml", "fhir/ndjson"]


def test_over_limit_with_honest_content_length(client: httpx.Client) -> None:
    body = b'{"resourceType": "Binary", "data": "' + b"A" * LIMIT + b'"}'
    response = post(client, "/ingest/fhir/json/R4/binary", body)
    assert_error(response, 413, "payload_too_large", str(LIMIT))


def test_over_limit_streamed_without_content_length(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"resourceType": "Binary", "data": "'
        for _ in range(40):
            yield b"A" * 4096
        yield b'"}'

    response = client.post("/ingest/fhir/json/R4/binary", content=chunks())
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert_error(response, 413, "payload_too_large", str(LIMIT))


def test_lying_content_length_is_not_trusted(small_server: MmBronze) -> None:
    # Declares 100 bytes but sends the limit many times over: the server reads only what
    # was declared (not valid JSON) and refuses the trailing bytes; nothing is stored.
    body = b'{"resourceType": "Binary", "data": "' + b"A" * (LIMIT * 3) + b'"}'
    head = (
        b"POST /ingest/fhir/json/R4/binary HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", small_server.http_port), timeout=30) as sock:
        sock.sendall(head + body[:100])
        try:
            sock.sendall(body[100:])
        except OSError:
            pass
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.split()[1] in (b"400", b"422"), status_line


def test_invalid_route_segment(client: httpx.Client) -> None:
    response = post(client, "/ingest/fhir/json/R4/..%2Fetc", b"{}")
    assert response.status_code in (400, 404)
    assert "error" in response.json()


def ndjson_lines(count: int) -> bytes:
    return b"".join(b'{"resourceType": "Patient", "id": "p%d"}\n' % i for i in range(count))


def test_a_gzip_body_cut_short_is_refused_though_its_start_is_valid(client: httpx.Client) -> None:
    # The decoded start holds complete, valid lines, past the inline limit (so it was being
    # staged): keeping it would keep part of what was sent as if it were all of it.
    body = gzip.compress(ndjson_lines(1000))
    for cut in (len(body) - 4, len(body) // 2):
        response = client.post(
            "/ingest/fhir/ndjson/R4/bulk", content=body[:cut], headers={"Content-Encoding": "gzip"}
        )
        assert_error(response, 400, "invalid_encoding", "ends before the end of its gzip stream")


def test_a_body_that_is_not_what_its_encoding_says_is_refused(client: httpx.Client) -> None:
    plain = ndjson_lines(3)
    for body in (plain, gzip.compress(plain) + b"trailing bytes"):
        response = client.post(
            "/ingest/fhir/ndjson/R4/bulk", content=body, headers={"Content-Encoding": "gzip"}
        )
        assert_error(response, 400, "invalid_encoding", "not valid gzip")


def test_an_unsupported_content_encoding_is_a_415_naming_what_is_accepted(
    client: httpx.Client,
) -> None:
    body = b'{"resourceType": "Patient"}'
    for coding in ("br", "deflate", "zstd", "gzip, gzip"):
        response = client.post(
            "/ingest/fhir/json/R4/patient", content=body, headers={"Content-Encoding": coding}
        )
        assert_error(response, 415, "unsupported_encoding", f"Content-Encoding {coding} ")
        assert response.headers["accept-encoding"] == "gzip, identity"


def test_codings_in_repeated_content_encoding_fields_add_up(client: httpx.Client) -> None:
    body = gzip.compress(gzip.compress(b'{"resourceType": "Patient"}'))
    headers = [("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")]
    response = client.post("/ingest/fhir/json/R4/patient", content=body, headers=headers)
    assert_error(response, 415, "unsupported_encoding", "Content-Encoding gzip, gzip ")


def test_the_size_limit_holds_for_the_decoded_body(client: httpx.Client) -> None:
    # 200 times the limit once decoded, a fraction of it as sent.
    body = b'{"resourceType": "Binary", "data": "' + b"A" * (LIMIT * 200) + b'"}'
    packed = gzip.compress(body)
    assert len(packed) < LIMIT
    response = client.post(
        "/ingest/fhir/json/R4/binary", content=packed, headers={"Content-Encoding": "gzip"}
    )
    assert_error(response, 413, "payload_too_large", str(LIMIT))
