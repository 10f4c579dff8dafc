"""Early refusals (413, 401, 400) reach clients that send their whole body first, and the
connection is closed promptly, also when the client keeps sending."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.services.mm_bronze import MmBronze, run_cli

LIMIT = 64 * 1024
ROUTE = "/ingest/fhir/json/R4/patient"


@pytest.fixture(scope="module")
def token(module_dsn: str) -> str:
    result = run_cli("clients", "add", "partner", env={"POSTGRES_DSN": module_dsn})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_dsn: str, token: str
) -> Iterator[MmBronze]:
    proc = MmBronze(
        tmp_path_factory.mktemp("refusals"),
        "--http",
        env={"POSTGRES_DSN": module_dsn, "API_MAX_FILE_SIZE": str(LIMIT)},
    )
    proc.start()
    yield proc
    proc.stop()


def send_all_then_read(
    server: MmBronze, route: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    """What Python's http.client does: the whole body first, then the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=15)
    try:
        conn.request("POST", route, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("route", "auth", "status", "code"),
    [
        (ROUTE, True, 413, b"payload_too_large"),
        (ROUTE, False, 401, b"unauthorized"),
        ("/ingest/fhir/json/R4%0A/patient", True, 400, b"invalid_route"),
        ("/ingest/fhir/pdf/R4/patient", True, 400, b"unsupported_format"),
    ],
)
def test_a_client_that_sends_everything_first_sees_the_refusal(
    server: MmBronze, token: str, route: str, auth: bool, status: int, code: bytes
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if auth else {}
    start = time.monotonic()
    got, body = send_all_then_read(server, route, headers, b"x" * (8 * 1024 * 1024))
    assert (got, code in body) == (status, True), body
    assert time.monotonic() - start < 10


def test_a_client_that_keeps_sending_is_answered_and_cut_off(server: MmBronze, token: str) -> None:
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=15)
    answer = bytearray()

    def read() -> None:
        try:
            while chunk := sock.recv(65536):
                answer.extend(chunk)
        except OSError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    sent = 0
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    try:
        sock.sendall(
            f"POST {ROUTE} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        while sent < 1024 * 1024 * 1024:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    finally:
        reader.join(20)
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), bytes(answer[:200])
    # The server read a bounded amount after answering, then closed the connection.
    assert sent < 128 * 1024 * 1024, sent
    assert httpx.get(server.url + "/healthz").status_code == 200
