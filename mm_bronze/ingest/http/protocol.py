"""HTTP/1.1 only, JSON errors with a request id even for what hypercorn refuses itself, and
one socket write per response of known length.

Behaviours of hypercorn's HTTP/1.1 protocol are replaced here, since its configuration
has no switch for them:

- HTTP/2 over cleartext (an ``Upgrade: h2c`` request, or the HTTP/2 connection preface) is
  not served: the door is tested as HTTP/1.1 only, so an upgrade request is answered as
  plain HTTP/1.1 and the preface is refused with a 505 (by ``Http11Only``, in the app).
- Requests hypercorn refuses before the app sees them (an over-long request target: 414,
  over-long headers: 431, a transfer coding other than chunked: 501, malformed requests:
  400) get the door's JSON error body and an ``X-Request-ID``, as every response does,
  instead of an empty body.
- A response with a ``Content-Length`` goes out in one write (status line, headers and the
  first body part together) instead of one write, each with its lock and drain, per part.
- Each connection's keep-alive timer is re-armed lazily (``idle_timer``).

``install()`` applies them, once; it raises, and a test fails, if hypercorn's internals
change under it.
"""

from __future__ import annotations

import uuid
from itertools import chain
from typing import Any

import h11
import msgspec
from hypercorn.events import RawData
from hypercorn.protocol.events import Body, EndBody, Response, StreamClosed
from hypercorn.protocol.h11 import H11Protocol
from starlette.types import ASGIApp, Receive, Scope, Send

from mm_bronze.ingest.http import idle_timer
from mm_bronze.ingest.http.bodies import ErrorBody
from mm_bronze.ingest.http.responses import log_refused, refuse

REASONS = {
    400: ("bad_request", "malformed HTTP request"),
    414: ("uri_too_long", "request target (path and query) longer than 8 KiB"),
    431: ("headers_too_large", "request header fields too large"),
    # h11's only 501: a Transfer-Encoding other than chunked (or given twice).
    501: (
        "transfer_encoding_not_supported",
        "only Transfer-Encoding: chunked is supported; send a compressed body with"
        " Content-Encoding: gzip",
    ),
    505: ("http_version_not_supported", "only HTTP/1.1 is served"),
}

_installed = False


async def _send_error_response(self: Any, status_code: int) -> None:
    if status_code == 431 and b"\n" not in self.connection.trailing_data[0]:
        status_code = 414  # the head grew too long before its request line ended
    code, message = REASONS.get(status_code, ("bad_request", "malformed HTTP request"))
    body = msgspec.json.encode(ErrorBody(error=code, message=message))
    request_id = uuid.uuid4().hex
    log_refused(status_code, code, message, request_id=request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-request-id", request_id.encode()),
    ]
    await self._send_h11_event(
        h11.Response(
            status_code=status_code,
            headers=list(chain(headers, self.config.response_headers("h11"))),
        )
    )
    await self._send_h11_event(h11.Data(data=body))
    await self._send_h11_event(h11.EndOfMessage())


async def _check_protocol(self: Any, event: h11.Request) -> None:
    """Never switch to HTTP/2: the request is served (or refused by ``Http11Only``) as is."""


def _encode(self: Any, event: Any) -> bytes:
    """``event`` in h11's bytes; nothing when the peer has already broken the protocol."""
    try:
        return self.connection.send(event) or b""
    except h11.LocalProtocolError:
        if self.connection.their_state != h11.ERROR:
            raise
        return b""


async def _stream_send(self: Any, event: Any) -> None:
    """hypercorn's ``stream_send``, holding a sized response's head back until its body."""
    kind = type(event)
    if kind is Response and event.status_code >= 200:
        headers = list(chain(event.headers, self.config.response_headers("h11")))
        if self.keep_alive_requests >= self.config.keep_alive_max_requests:
            headers.append((b"connection", b"close"))
        head = _encode(self, h11.Response(headers=headers, status_code=event.status_code))
        if any(name.lower() == b"content-length" for name, _ in event.headers):
            self.held_head = head
        elif head:
            await self.send(RawData(data=head))
    elif kind is Body or kind is EndBody or kind is StreamClosed:
        data = b""
        if kind is Body:
            data = _encode(self, h11.Data(data=event.data))
        elif kind is EndBody:
            data = _encode(self, h11.EndOfMessage())
        head = self.__dict__.pop("held_head", b"")
        if head or data:
            await self.send(RawData(data=head + data))
        if kind is StreamClosed:
            await _original_stream_send(self, event)
    else:
        await _original_stream_send(self, event)


_original_stream_send = H11Protocol.stream_send


# A request head (target and header fields) beyond this is a 431: hypercorn's
# h11_max_incomplete_size, which h11 applies only while the head is incomplete, so a whole
# head that arrived in one read passed. A request target beyond MAX_TARGET_BYTES is a 414:
# h11 reports one that ends past the head's bound as a 431 too (``_send_error_response``).
MAX_HEADER_BYTES = 16 * 1024
MAX_TARGET_BYTES = 8 * 1024


class Http11Only:
    """ASGI middleware: a request that is not HTTP/1.x (the HTTP/2 preface) gets a 505, one
    whose target exceeds ``MAX_TARGET_BYTES`` a 414, one whose head exceeds
    ``MAX_HEADER_BYTES`` a 431, however its bytes arrived."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if not scope.get("http_version", "1.1").startswith("1."):
                await refuse(505, *REASONS[505])(scope, receive, send)
                return
            target = len(scope.get("raw_path") or b"") + len(scope["query_string"]) + 1
            if target > MAX_TARGET_BYTES:
                await refuse(414, *REASONS[414])(scope, receive, send)
                return
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if target + size > MAX_HEADER_BYTES:
                await refuse(431, *REASONS[431])(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install() -> None:
    """Replace the two behaviours on hypercorn's HTTP/1.1 protocol (idempotent)."""
    global _installed
    if _installed:
        return
    for name in ("_send_error_response", "_check_protocol", "stream_send"):
        if not callable(getattr(H11Protocol, name, None)):
            raise RuntimeError(f"hypercorn's H11Protocol has no {name}: update protocol.py")
    send_names = set(H11Protocol.stream_send.__code__.co_names)
    if not {"keep_alive_requests", "keep_alive_max_requests", "_send_h11_event"} <= send_names:
        raise RuntimeError("hypercorn's H11Protocol.stream_send changed: update protocol.py")
    idle_timer.install()
    H11Protocol._send_error_response = _send_error_response  # type: ignore[method-assign]
    H11Protocol._check_protocol = _check_protocol  # type: ignore[method-assign]
    H11Protocol.stream_send = _stream_send  # type: ignore[method-assign]
    _installed = True
