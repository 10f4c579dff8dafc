"""Every response of the door carries an ``X-Request-ID``, also bound to the log context
and kept in the ASGI scope (``scope["request_id"]``) for the endpoints.

The client's own id is kept when it is 1 to 64 printable ASCII characters without spaces;
otherwise the door makes one (32 hex digits): a random prefix drawn once per process and a
counter, unique without a system call per request.
"""

from __future__ import annotations

import itertools
import os
import re

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,64}")


def _new_prefix() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count()


_prefix = ""
_counter = itertools.count()
_new_prefix()
os.register_at_fork(after_in_child=_new_prefix)


def new_request_id() -> str:
    """A fresh id: 16 hex digits of this process's prefix, 16 of its counter."""
    return f"{_prefix}{next(_counter):016x}"


def request_id_for(headers: list[tuple[bytes, bytes]]) -> str:
    """The request's first ``X-Request-ID`` when it is acceptable, else a new id."""
    for name, value in headers:
        if name == b"x-request-id":
            return value.decode("ascii") if REQUEST_ID.fullmatch(value) else new_request_id()
    return new_request_id()


class RequestIdMiddleware:
    """Binds the request id to the log context (``request_id``) and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope["request_id"] = request_id_for(scope["headers"])
        id_header = (b"x-request-id", request_id.encode("ascii"))
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
