"""Routes of the HTTP front door."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mm_bronze import formats
from mm_bronze.bus import Bus
from mm_bronze.errors import (
    BusUnavailable,
    InvalidPayload,
    PayloadTooLarge,
    StorageUnavailable,
    Unavailable,
    UnsupportedFormat,
)
from mm_bronze.formats.base import issue_dict
from mm_bronze.formats.fhir.outcome import operation_outcome
from mm_bronze.formats.workers import DeferredValidator, ValidationWorkers
from mm_bronze.groupcommit import GroupCommitter
from mm_bronze.ingest.http.auth import Authenticator, Unauthorized
from mm_bronze.ingest.http.body import receive_body
from mm_bronze.ingest.http.linger import LingeringClose
from mm_bronze.ingest.http.protocol import Http11Only
from mm_bronze.metadata import lineage, records
from mm_bronze.metadata.clients import Client
from mm_bronze.models import IngestEvent, SubmissionStatus, encode_event
from mm_bronze.settings import HttpSettings
from mm_bronze.storage import StorageRegistry

log = structlog.get_logger(__name__)

SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # matched whole (fullmatch)
# X-Request-ID values kept and echoed: printable ASCII without spaces, 1 to 64 characters.
REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,64}")
RETRY_AFTER = "5"


@dataclass
class HttpDeps:
    """What the HTTP door needs, opened by the runtime."""

    settings: HttpSettings
    bus: Bus
    topic: str
    storage: StorageRegistry
    pool: AsyncConnectionPool[AsyncConnection]
    auth: Authenticator
    status_log: GroupCommitter[tuple[str, str, str | None]]
    readiness: Callable[[], Awaitable[dict[str, str]]]
    validation_level: str = formats.STRICT
    validation_workers: ValidationWorkers | None = None


def error(status: int, code: str, message: str, **extra: Any) -> Response:
    body = msgspec.json.encode({"error": code, "message": message, **extra})
    headers = {"Retry-After": RETRY_AFTER} if status == 503 else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def refuse(status: int, code: str, message: str, **extra: Any) -> Response:
    """An error answered before the request body was fully read: close the connection,
    so neither side waits for (or misreads) the unread rest of the body."""
    if status < 500:  # the reason names places, never payload values
        log.info("request refused", status=status, error=code, reason=message)
    response = error(status, code, message, **extra)
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


def build_app(deps: HttpDeps) -> Starlette:
    async def ingest(request: Request) -> Response:
        params = request.path_params
        for name in ("format", "content_type", "version", "subtype"):
            if not SEGMENT.fullmatch(params[name]):
                return refuse(400, "invalid_route", f"invalid {name}: use letters, digits, . _ -")
        fmt, ctype = params["format"].lower(), params["content_type"].lower()
        level = (
            request.query_params.get("validation")
            or request.headers.get("x-validation-level")
            or deps.validation_level
        ).lower()
        if level not in formats.LEVELS:
            return refuse(400, "invalid_validation_level", "validation must be strict or lenient")
        try:
            validator = formats.validator_for(fmt, ctype, version=params["version"], level=level)
        except UnsupportedFormat as exc:
            return refuse(400, "unsupported_format", exc.reason, supported=exc.supported)
        if deps.validation_workers is not None:
            version = params["version"]
            validator = DeferredValidator(
                validator, (fmt, ctype, version, level), deps.validation_workers
            )
        try:
            client = await deps.auth.authenticate(request.headers.get("authorization"))
        except Unauthorized as exc:
            response = refuse(401, "unauthorized", str(exc))
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if client is not None and not client.may_ingest:
            why = f"client {client.name!r} has role {client.role!r}, which may not submit"
            return refuse(403, "forbidden", why)
        declared = request.headers.get("content-length")
        limit = deps.settings.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return refuse(413, "payload_too_large", f"payload exceeds the limit of {limit} bytes")
        submission = str(uuidlib.uuid4())
        received_at = dt.datetime.now(dt.UTC)
        try:
            body = await receive_body(
                request.stream(),
                validator=validator,
                max_bytes=limit,
                inline_limit=deps.settings.inline_limit,
                staging=deps.storage.staging,
                staging_key=f"api/{received_at:%Y-%m-%d}/{submission}",
            )
        except PayloadTooLarge as exc:
            return refuse(413, "payload_too_large", str(exc))
        except InvalidPayload as exc:
            return invalid_payload(fmt, exc)
        except StorageUnavailable:
            log.warning("staging unavailable", uuid=submission)
            return refuse(503, "unavailable", "storage is unavailable, retry later")
        event = IngestEvent(
            uuid=submission,
            source="api",
            format=fmt,
            content_type=ctype,
            version=params["version"],
            subtype=params["subtype"],
            sha256=body.sha256,
            size=body.size,
            received_at=received_at,
            client=client.name if client else None,
            payload=body.payload,
            staged_path=body.staged.url if body.staged else None,
            source_metadata={
                "remote_addr": request.client.host if request.client else None,
                "user_agent": request.headers.get("user-agent"),
                "request_id": structlog.contextvars.get_contextvars().get("request_id"),
                "content_type_header": request.headers.get("content-type"),
                "format_metadata": body.metadata,
            },
        )
        try:
            await deps.bus.publish(deps.topic, body.sha256.encode(), encode_event(event))
        except BusUnavailable as exc:
            if body.staged is not None:
                await body.staged.abort()
            log.warning("bus unavailable, submission refused", uuid=submission, error=str(exc))
            return refuse(503, "unavailable", "the bus is unavailable, retry later")
        try:
            await deps.status_log.submit((submission, "accepted", None))
        except Exception as exc:  # the event is durable; the history entry is informational
            log.warning("accepted status not logged", uuid=submission, error=type(exc).__name__)
        log.info(
            "submission accepted",
            uuid=submission,
            format=fmt,
            content_type=ctype,
            size=body.size,
            client=client.name if client else None,
            staged=body.staged is not None,
        )
        return json_response(
            {
                "status": "accepted",
                "uuid": submission,
                "timestamp": received_at.isoformat().replace("+00:00", "Z"),
            },
            status=202,
        )

    async def status(request: Request) -> Response:
        try:
            client = await deps.auth.authenticate(request.headers.get("authorization"))
        except Unauthorized as exc:
            return error(401, "unauthorized", str(exc))
        try:
            submission = str(uuidlib.UUID(request.path_params["uuid"]))
        except ValueError:
            return error(400, "invalid_uuid", "not a submission uuid")
        try:
            found = await records.submission_status(deps.pool, submission)
            if found is not None and client is not None:
                found = await scoped_status(found, client)
        except Exception as exc:
            log.warning("status lookup failed", error=type(exc).__name__)
            return error(503, "unavailable", "the database is unavailable, retry later")
        if found is None:
            return error(404, "not_found", f"no submission {submission}")
        return json_response(found)

    async def scoped_status(found: SubmissionStatus, client: Client) -> SubmissionStatus | None:
        """What ``client`` may see of a submission: its own only (``admin``: all), with the
        storage path relative to the store, and lineage across clients for ``admin`` only."""
        # A submission not yet recorded (status from the log alone) names no owner yet.
        recorded = found.sha256 is not None
        if not client.is_admin and recorded and found.client != client.name:
            return None
        path = found.storage_path
        root = deps.storage.raw.url + "/"
        relative = path.removeprefix(root) if path and path.startswith(root) else path
        duplicate_of = found.duplicate_of
        if duplicate_of is not None and not client.is_admin:
            if await lineage.first_client(deps.pool, duplicate_of) != client.name:
                duplicate_of = None
        return msgspec.structs.replace(found, storage_path=relative, duplicate_of=duplicate_of)

    async def healthz(request: Request) -> Response:
        return json_response({"status": "alive"})

    async def readyz(request: Request) -> Response:
        checks = await deps.readiness()
        ready = all(v == "ok" for v in checks.values())
        return json_response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, "not_found", f"no route for {request.method} {request.url.path}")

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return error(405, "method_not_allowed", f"{request.method} is not allowed here")

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", error=type(exc).__name__)
        return error(500, "internal_error", "internal error")

    routes = [
        Route("/ingest/{format}/{content_type}/{version}/{subtype}", ingest, methods=["POST"]),
        Route("/ingest/{uuid}", status, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(LingeringClose),
            Middleware(RequestIdMiddleware),
            Middleware(Http11Only),
        ],
        exception_handlers={404: not_found, 405: method_not_allowed, 500: server_error},
    )


class RequestIdMiddleware:
    """Binds a request id (``X-Request-ID`` or a new one) to the log context and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"")
        request_id = (
            incoming.decode("ascii") if REQUEST_ID.fullmatch(incoming) else uuidlib.uuid4().hex
        )
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


async def check_readiness(checks: dict[str, Callable[[], Awaitable[None]]]) -> dict[str, str]:
    """Run each check with a timeout; "ok" or the failure's type."""

    async def one(check: Callable[[], Awaitable[None]]) -> str:
        try:
            await asyncio.wait_for(check(), 5)
            return "ok"
        except (Unavailable, OSError, TimeoutError) as exc:
            return f"unavailable ({type(exc).__name__})"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[n]) for n in names))
    return dict(zip(names, results, strict=True))
