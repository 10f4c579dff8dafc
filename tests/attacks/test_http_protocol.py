"""HTTP/1.1 only; what hypercorn refuses itself still gets a JSON error and a request id."""

from __future__ import annotations

import json

from tests.attacks.helpers import exchange
from tests.services.mm_bronze import MmBronze


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_h2c_upgrade_is_answered_in_http_1_1(server: MmBronze) -> None:
    answer = exchange(
        server,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    status, headers, body = parse(answer)
    assert (status, json.loads(body)) == (200, {"status": "alive"})
    assert "upgrade" not in headers


def test_http2_preface_is_refused(server: MmBronze) -> None:
    answer = exchange(server, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 9)
    status, headers, body = parse(answer)
    assert status == 505
    assert json.loads(body)["error"] == "http_version_not_supported"
    assert len(headers["x-request-id"]) == 32
    assert "Traceback" not in server.logs()


def test_over_long_headers_get_a_json_431_with_a_request_id(server: MmBronze) -> None:
    answer = exchange(
        server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    )
    status, headers, body = parse(answer)
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": "headers_too_large",
        "message": "request header fields too large",
    }
    assert len(headers["x-request-id"]) == 32


def test_headers_over_16_kib_in_one_read_are_a_431_on_every_route(server: MmBronze) -> None:
    """h11 bounds a head only while it is incomplete: one that arrived whole passed."""
    big = b"X-Big: " + b"a" * 20_000 + b"\r\n"
    for request in (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"Connection: close\r\n\r\n",
        b"POST /ingest/fhir/json/R4/patient HTTP/1.1\r\nHost: x\r\n" + big
        + b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
    ):  # fmt: skip
        status, headers, body = parse(exchange(server, request))
        assert status == 431, request[:40]
        assert json.loads(body)["error"] == "headers_too_large"
        assert len(headers["x-request-id"]) == 32
    within = b"X-Big: " + b"a" * 15_000 + b"\r\n"
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + within + b"Connection: close\r\n\r\n"
    assert parse(exchange(server, request))[0] == 200


def test_malformed_request_line_gets_a_json_400(server: MmBronze) -> None:
    status, headers, body = parse(exchange(server, b"GET /healthz HTTP/1.1 extra\r\n\r\n"))
    assert status == 400
    assert json.loads(body)["error"] == "bad_request"
    assert "x-request-id" in headers


def test_a_transfer_coding_other_than_chunked_gets_a_json_501_that_says_so(
    server: MmBronze,
) -> None:
    for coding in (b"gzip, chunked", b"gzip"):
        answer = exchange(
            server,
            b"POST /ingest/fhir/json/R4/patient HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
            + coding
            + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        status, headers, body = parse(answer)
        assert status == 501
        assert json.loads(body) == {
            "error": "transfer_encoding_not_supported",
            "message": "only Transfer-Encoding: chunked is supported; send a compressed body"
            " with Content-Encoding: gzip",
        }
        assert len(headers["x-request-id"]) == 32


def test_an_over_long_request_target_is_a_414_however_it_arrives(server: MmBronze) -> None:
    """A path and query over 8 KiB: a 414 whether the whole head arrived in one read (the app
    refuses it) or grew past h11's bound before the request line ended (hypercorn refuses)."""
    for size in (9_000, 20_000, 200_000):
        request = (
            b"GET /submissions?after=" + b"a" * size + b" HTTP/1.1\r\nHost: x\r\n"
            b"Connection: close\r\n\r\n"
        )
        status, headers, body = parse(exchange(server, request))
        assert status == 414, size
        assert json.loads(body) == {
            "error": "uri_too_long",
            "message": "request target (path and query) longer than 8 KiB",
        }
        assert len(headers["x-request-id"]) == 32
    # Within the bound, the route answers (with a parameter it takes: it refuses any other).
    within = (
        b"GET /dead-letters?topic=" + b"a" * 8_000 + b" HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\n\r\n"
    )
    status, _headers, body = parse(exchange(server, within))
    assert status == 200, body
    assert json.loads(body) == {"dead_letters": [], "next_cursor": None}


def test_a_head_over_16_kib_with_its_target_is_a_431(server: MmBronze) -> None:
    """The target counts toward the head's bound, as it does in h11's while the head grows."""
    request = (
        b"GET /healthz?" + b"a" * 8_000 + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9_000
        + b"\r\nConnection: close\r\n\r\n"
    )  # fmt: skip
    status, _headers, body = parse(exchange(server, request))
    assert status == 431
    assert json.loads(body)["error"] == "headers_too_large"
