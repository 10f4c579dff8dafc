"""Slow and stalled request bodies: a body read timeout, and a cap on what all held bodies
take in memory together."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.services.mm_bronze import MmBronze

ROUTE = "/ingest/fhir/json/R4/patient"
BODY_TIMEOUT = 1.0
MAX_BUFFERED = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[MmBronze]:
    proc = MmBronze(
        tmp_path_factory.mktemp("slow-bodies"),
        "--http",
        env={
            "POSTGRES_DSN": module_dsn,
            "MM_BRONZE_HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "MM_BRONZE_HTTP_MAX_BUFFERED_BYTES": str(MAX_BUFFERED),
        },
    )
    proc.start()
    yield proc
    proc.stop()


def start_upload(server: MmBronze, declared: int, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=15)
    sock.sendall(
        f"POST {ROUTE} HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n".encode() + first
    )
    return sock


def answer(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    return data


def test_a_stalled_body_gets_a_408_and_the_connection_closes(server: MmBronze) -> None:
    start = time.monotonic()
    with start_upload(server, 100_000, b'{"resourceType": "Patient", "id": "') as sock:
        got = answer(sock)
    assert got.startswith(b"HTTP/1.1 408"), got[:200]
    assert b'"error":"body_timeout"' in got
    assert time.monotonic() - start < BODY_TIMEOUT + 10


def test_held_bodies_share_a_memory_cap(server: MmBronze) -> None:
    three_mib = b'{"resourceType": "Binary", "contentType": "text/plain", "data": "' + b"A" * (
        3 * 1024 * 1024
    )
    held = []
    try:
        # 4 MiB is what one request may hold, so three stalled 3 MiB bodies fit in 10 MiB ...
        for _ in range(3):
            held.append(start_upload(server, 8 * 1024 * 1024, three_mib))
            time.sleep(0.3)
        # ... and a fourth would take the total past it: refused with a 503 to retry later.
        with start_upload(server, 8 * 1024 * 1024, three_mib) as fourth:
            got = answer(fourth)
        assert got.startswith(b"HTTP/1.1 503"), got[:200]
        assert b'"error":"busy"' in got and b"retry-after: 5" in got.lower()
        assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        for sock in held:
            sock.close()
    # Their shares are given back: a normal submission goes through again.
    time.sleep(BODY_TIMEOUT + 1)
    response = httpx.post(server.url + ROUTE, content=b'{"resourceType": "Patient", "id": "ok"}')
    assert response.status_code == 202, response.text


def test_a_client_leaving_mid_body_is_one_quiet_log_line(server: MmBronze) -> None:
    before = server.logs()
    with start_upload(server, 1_000_000, b'{"resourceType": "Patient", "id": "' + b"a" * 50_000):
        time.sleep(0.3)
    # A chunk size of 2**64 - 1, then gone.
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=15)
    sock.sendall(
        f"POST {ROUTE} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"ffffffffffffffff\r\n"
        + b"a" * 1000
    )
    time.sleep(0.3)
    sock.close()
    time.sleep(1)
    new = server.logs()[len(before) :]
    assert new.count("client disconnected before the end of the body") == 2, new
    assert "unhandled error" not in new and "Traceback" not in new and " 500" not in new
    assert httpx.get(server.url + "/healthz").status_code == 200
