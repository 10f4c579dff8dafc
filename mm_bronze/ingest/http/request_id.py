"""Every response of the door carries an ``X-Request-ID``, also bound to the log context.

The client's own id is kept when it is 1 to 64 printable ASCII characters without spaces;
otherwise the door makes one (32 hex digits).
"""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,64}")


def request_id_for(headers: list[tuple[bytes, bytes]]) -> str:
    """The request's first ``X-Request-ID`` when it is acceptable, else a new id."""
    incoming = next((value for name, value in headers if name == b"x-request-id"), b"")
    return incoming.decode("ascii") if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


class RequestIdMiddleware:
    """Binds the request id to the log context (``request_id``) and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(scope["headers"])
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


def current_request_id() -> str | None:
    """The id ``RequestIdMiddleware`` bound for the request being served."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value) if value is not None else None
