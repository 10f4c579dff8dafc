"""HTTP/1.1 only, and JSON errors with a request id even for what hypercorn refuses itself.

Two behaviours of hypercorn's HTTP/1.1 protocol are replaced here, since its configuration
has no switch for them:

- HTTP/2 over cleartext (an ``Upgrade: h2c`` request, or the HTTP/2 connection preface) is
  not served: the door is tested as HTTP/1.1 only, so an upgrade request is answered as
  plain HTTP/1.1 and the preface is refused with a 505 (by ``Http11Only``, in the app).
- Requests hypercorn refuses before the app sees them (over-long headers: 431, malformed
  requests: 400) get the door's JSON error body and an ``X-Request-ID``, as every response
  does, instead of an empty body.

``install()`` applies both, once; a test fails if hypercorn's internals change under it.
"""

from __future__ import annotations

import uuid
from itertools import chain
from typing import Any

import h11
import msgspec
from hypercorn.protocol.h11 import H11Protocol
from starlette.types import ASGIApp, Receive, Scope, Send

from mm_bronze.ingest.http.bodies import ErrorBody
from mm_bronze.ingest.http.responses import refuse

REASONS = {
    400: ("bad_request", "malformed HTTP request"),
    431: ("headers_too_large", "request header fields too large"),
    505: ("http_version_not_supported", "only HTTP/1.1 is served"),
}

_installed = False


async def _send_error_response(self: Any, status_code: int) -> None:
    code, message = REASONS.get(status_code, ("bad_request", "malformed HTTP request"))
    body = msgspec.json.encode(ErrorBody(error=code, message=message))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-request-id", uuid.uuid4().hex.encode()),
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


class Http11Only:
    """ASGI middleware: a request that is not HTTP/1.x (the HTTP/2 preface) gets a 505."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("http_version", "1.1").startswith("1."):
            await refuse(505, *REASONS[505])(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install() -> None:
    """Replace the two behaviours on hypercorn's HTTP/1.1 protocol (idempotent)."""
    global _installed
    if _installed:
        return
    for name in ("_send_error_response", "_check_protocol"):
        if not callable(getattr(H11Protocol, name, None)):
            raise RuntimeError(f"hypercorn's H11Protocol has no {name}: update protocol.py")
    H11Protocol._send_error_response = _send_error_response  # type: ignore[method-assign]
    H11Protocol._check_protocol = _check_protocol  # type: ignore[method-assign]
    _installed = True
