"""JSON responses of the HTTP door, errors included."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from starlette.responses import Response

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.base import issue_dict
from mm_bronze.formats.fhir.outcome import operation_outcome
from mm_bronze.ingest.http.bodies import ErrorBody

log = structlog.get_logger(__name__)

RETRY_AFTER = "5"
# The challenge every 401 of the door carries.
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def log_refused(status: int, code: str, message: str, **context: Any) -> None:
    """The log line of every refusal (4xx), the app's and hypercorn's alike; the reason names
    places, never payload values."""
    log.info("request refused", status=status, error=code, reason=message, **context)


def error(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    if 400 <= status < 500:
        log_refused(status, code, message)
    body = msgspec.json.encode(ErrorBody(error=code, message=message, **extra))
    if status == 503:
        headers = {**(headers or {}), "Retry-After": RETRY_AFTER}
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def database_unavailable() -> Response:
    """``503 unavailable``: the database (clients, submissions) cannot be reached now."""
    return error(503, "unavailable", "the database is unavailable, retry later")


def unauthorized(exc: Exception) -> Response:
    """``401 unauthorized`` with the Bearer challenge."""
    return error(401, "unauthorized", str(exc), headers=CHALLENGE)


def refuse(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """An error answered before the request body was fully read: close the connection,
    so neither side waits for (or misreads) the unread rest of the body."""
    response = error(status, code, message, headers=headers, **extra)
    response.headers["Connection"] = "close"
    return response


def invalid_payload(fmt: str, exc: InvalidPayload) -> Response:
    """422 with the located issues; for FHIR the body is also an ``OperationOutcome``.

    Like ``refuse``, it closes the connection: validation may stop before the body's end.
    """
    extra: dict[str, Any] = {"location": exc.location} if exc.location else {}
    if fmt != "fhir":
        extra["issues"] = [issue_dict(issue) for issue in exc.issues]
        return refuse(422, "invalid_payload", exc.reason, **extra)
    log.info("request refused", status=422, error="invalid_payload", reason=exc.reason)
    body = {
        **operation_outcome(exc.issues),
        "error": "invalid_payload",
        "message": exc.reason,
        **extra,
    }
    return Response(
        msgspec.json.encode(body),
        status_code=422,
        media_type="application/json",
        headers={"Connection": "close"},
    )


def json_response(data: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")
