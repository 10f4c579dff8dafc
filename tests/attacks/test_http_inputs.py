"""Route labels and request ids that must not slip through the HTTP door."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx

from tests.services.mm_bronze import MmBronze

CONTROL = [*range(0x00, 0x20), 0x7F]


def test_route_labels_with_control_characters_are_refused(server: MmBronze) -> None:
    body = b'{"resourceType": "Patient", "id": "x"}'
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for code in CONTROL:
            for route in (
                f"/ingest/fhir/json/R4%{code:02X}/patient",
                f"/ingest/fhir/json/R4/patient%{code:02X}",
                f"/ingest/fhir%{code:02X}/json/R4/patient",
            ):
                response = client.post(route, content=body)
                assert response.status_code == 400, (route, response.text)
                assert response.json()["error"] == "invalid_route", route
    assert not [p for p in (server.data_dir / "raw").rglob("*") if any(ord(c) < 32 for c in p.name)]


def raw_request(url: str, request_id: bytes) -> dict[str, bytes]:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-ID: "
            + request_id
            + b"\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return {k.strip().lower().decode(): v.strip() for k, v in (h.split(b":", 1) for h in head)}


def test_request_ids_are_echoed_only_when_printable_and_short(server: MmBronze) -> None:
    assert raw_request(server.url, b"abc-123_XYZ.9")["x-request-id"] == b"abc-123_XYZ.9"
    assert raw_request(server.url, b"a" * 64)["x-request-id"] == b"a" * 64
    for bad in (b"a" * 65, b"abc\x01def", b"abc\x7fdef", b"caf\xc3\xa9", b"two words"):
        echoed = raw_request(server.url, bad)["x-request-id"]
        assert echoed != bad.strip() and len(echoed) == 32, (bad, echoed)
        int(echoed, 16)  # a fresh id instead
