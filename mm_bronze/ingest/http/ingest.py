"""``POST /ingest/{format}/{content_type}/{version}/{subtype}`` as a lean ASGI endpoint.

The door's hot route goes from the server straight to this endpoint, without the
framework's request objects, router and middleware layers (the other routes keep them):
the route is matched by splitting the path, the headers are read once from the ASGI
scope, and the 202 goes out as one start and one body message. The sender gets its 202
only after ``publish`` returned, that is once the event is durable.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections.abc import AsyncGenerator
from urllib.parse import parse_qsl

import msgspec
import structlog
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from mm_bronze import formats
from mm_bronze.budget import BudgetExceeded, ByteBudget
from mm_bronze.errors import (
    BusUnavailable,
    InvalidPayload,
    PayloadTooLarge,
    StorageUnavailable,
    UnsupportedFormat,
)
from mm_bronze.formats.workers import BUFFER_LIMIT, DeferredValidator
from mm_bronze.ingest.http.auth import AuthUnavailable, Unauthorized
from mm_bronze.ingest.http.bodies import Accepted
from mm_bronze.ingest.http.body import receive_body
from mm_bronze.ingest.http.content_coding import ACCEPTED as ACCEPTED_CODINGS
from mm_bronze.ingest.http.content_coding import (
    GzipDecoder,
    MalformedEncoding,
    UnsupportedEncoding,
    decoder_for,
)
from mm_bronze.ingest.http.deadlines import Deadline, SharedDeadlines
from mm_bronze.ingest.http.deps import HttpDeps
from mm_bronze.ingest.http.responses import CHALLENGE, error, invalid_payload, refuse
from mm_bronze.ingest.submission_ids import new_submission_id
from mm_bronze.metrics import format_label
from mm_bronze.metrics.door import ACCEPTED, REJECTED, TOO_LARGE, UNAUTHORIZED, UNAVAILABLE
from mm_bronze.models import IngestEvent, encode_event
from mm_bronze.query_parameters import misused

log = structlog.get_logger(__name__)

SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # matched whole (fullmatch)
SEGMENT_NAMES = ("format", "content_type", "version", "subtype")
# The outcome counted for each status the endpoint answers with (other 4xx: rejected).
OUTCOME_OF_STATUS = {
    202: ACCEPTED,
    401: UNAUTHORIZED,
    403: UNAUTHORIZED,
    413: TOO_LARGE,
    500: UNAVAILABLE,
    503: UNAVAILABLE,
}


def ingest_segments(scope: Scope) -> list[str] | None:
    """The four route segments when ``scope`` is a POST to the ingest route, else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    parts = scope["path"].split("/")
    if len(parts) != 6 or parts[0] or parts[1] != "ingest" or not all(parts[2:]):
        return None
    return parts[2:]


class BodyTimeout(Exception):
    """The client sent no body byte for ``body_timeout`` seconds."""


async def body_chunks(
    receive: Receive,
    *,
    deadline: Deadline,
    inflight: ByteBudget,
    held_limit: int,
    decoder: GzipDecoder | None = None,
) -> AsyncGenerator[bytes, None]:
    """The request body's chunks (decoded by ``decoder`` when it has a content coding); each
    wait for the next is bounded by ``deadline``, and the bytes held in memory (up to
    ``held_limit``, where the body streams on) count against ``inflight``, the cap shared by
    all requests, until the end."""
    held = 0
    try:
        while True:
            try:
                with deadline:
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout() from None
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                for piece in (chunk,) if decoder is None else decoder.feed(chunk):
                    more = min(len(piece), held_limit - held)
                    if more > 0:
                        inflight.take(more)
                        held += more
                    yield piece
                if not message.get("more_body", False):
                    if decoder is not None:
                        decoder.finish()
                    return
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect()
    finally:
        inflight.give(held)


def _validation_param(query: bytes) -> str | Response | None:
    """The ``validation`` parameter of an ingest query string (the only one it takes), or
    the 400 to answer: a misspelt parameter would otherwise be ignored without a word."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if (wrong := misused(pairs, ("validation",))) is not None:
        name, why = wrong
        return refuse(400, "invalid_parameter", f"{name}: {why}", parameter=name)
    return dict(pairs).get("validation")


class IngestEndpoint:
    """Accepts one submission per request: validate, publish durably, answer 202."""

    def __init__(self, deps: HttpDeps) -> None:
        self.deps = deps
        self.inflight = ByteBudget(deps.settings.max_buffered_bytes)
        self.deadlines = SharedDeadlines()
        self.metrics = deps.metrics.door("http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send, route: list[str]) -> None:
        started_at = time.perf_counter()
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)
        started = False
        status = 500

        async def send_tracked(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
            await send(message)

        size = 0
        try:
            outcome = await self.ingest(scope, receive, headers, route, scope.get("request_id"))
            if isinstance(outcome, tuple):
                answer, size = outcome
                await send_tracked(
                    {
                        "type": "http.response.start",
                        "status": 202,
                        "headers": [
                            (b"content-length", str(len(answer)).encode()),
                            (b"content-type", b"application/json"),
                        ],
                    }
                )
                await send_tracked({"type": "http.response.body", "body": answer})
            else:
                await outcome(scope, receive, send_tracked)
        except ClientDisconnect:
            log.info("client disconnected before the end of the body")
            return  # nobody to answer: not counted
        except Exception as exc:
            log.error("unhandled error", error=type(exc).__name__)
            if not started:
                await error(500, "internal_error", "internal error")(scope, receive, send_tracked)
        self.metrics.answered(
            format_label(route[0].lower(), route[1].lower()),
            OUTCOME_OF_STATUS.get(status, REJECTED),
            started_at,
            size,
        )

    async def ingest(
        self,
        scope: Scope,
        receive: Receive,
        headers: dict[bytes, bytes],
        route: list[str],
        request_id: str | None,
    ) -> Response | tuple[bytes, int]:
        """The 202 body and the payload's size, or the error response."""
        deps = self.deps
        for name, segment in zip(SEGMENT_NAMES, route, strict=True):
            if not SEGMENT.fullmatch(segment):
                why = f"invalid {name}: a letter or digit, then letters, digits, . _ - (64 at most)"
                return refuse(400, "invalid_route", why)
        fmt, ctype, version, subtype = route[0].lower(), route[1].lower(), route[2], route[3]
        query = scope.get("query_string", b"")
        level_param: str | None = None
        if query:
            given = _validation_param(query)
            if isinstance(given, Response):
                return given
            level_param = given
        level = (
            level_param
            or headers.get(b"x-validation-level", b"").decode("latin-1")
            or deps.validation_level
        ).lower()
        if level not in formats.LEVELS:
            return refuse(400, "invalid_validation_level", "validation must be strict or lenient")
        try:
            validator = formats.validator_for(fmt, ctype, version=version, level=level)
        except UnsupportedFormat as exc:
            return refuse(400, "unsupported_format", exc.reason, supported=exc.supported)
        if deps.validation_workers is not None:
            validator = DeferredValidator(
                validator, (fmt, ctype, version, level), deps.validation_workers
            )
        authorization = headers.get(b"authorization")
        try:
            client = await deps.auth.authenticate(
                authorization.decode("latin-1") if authorization is not None else None
            )
        except Unauthorized as exc:
            return refuse(401, "unauthorized", str(exc), headers=CHALLENGE)
        except AuthUnavailable:
            return refuse(503, "unavailable", "the database is unavailable, retry later")
        if client is not None and not client.may_ingest:
            why = f"client {client.name!r} has role {client.role!r}, which may not submit"
            return refuse(403, "forbidden", why)
        encoding = headers.get(b"content-encoding")
        if encoding is not None:  # each field of a repeated header adds its codings
            encoding = b", ".join(v for n, v in scope["headers"] if n == b"content-encoding")
        try:
            decoder = decoder_for(encoding)
        except UnsupportedEncoding as exc:
            accept = {"Accept-Encoding": ACCEPTED_CODINGS}
            return refuse(415, "unsupported_encoding", str(exc), headers=accept)
        declared = headers.get(b"content-length")
        limit = deps.settings.max_body_bytes
        if (  # the limit is on the decoded bytes, which a compressed length does not tell
            decoder is None
            and declared is not None
            and declared.isdigit()
            and int(declared) > limit
        ):
            return refuse(413, "payload_too_large", f"payload exceeds the limit of {limit} bytes")
        submission = new_submission_id()
        received_at = dt.datetime.now(dt.UTC)
        try:
            chunks = body_chunks(
                receive,
                deadline=self.deadlines.deadline(deps.settings.body_timeout),
                inflight=self.inflight,
                held_limit=BUFFER_LIMIT + deps.settings.inline_limit,
                decoder=decoder,
            )
            async with contextlib.aclosing(chunks):  # gives back its in-flight share at once
                body = await receive_body(
                    chunks,
                    validator=validator,
                    max_bytes=limit,
                    inline_limit=deps.settings.inline_limit,
                    staging=deps.storage.staging,
                    staging_key=f"api/{received_at.date().isoformat()}/{submission}",
                )
        except PayloadTooLarge as exc:
            return refuse(413, "payload_too_large", str(exc))
        except MalformedEncoding as exc:
            return refuse(400, "invalid_encoding", str(exc))
        except InvalidPayload as exc:
            return invalid_payload(fmt, exc)
        except StorageUnavailable as exc:
            log.warning("staging unavailable", uuid=submission, error=str(exc))
            return refuse(503, "unavailable", "storage is unavailable, retry later")
        except BodyTimeout:
            timeout = deps.settings.body_timeout
            return refuse(408, "body_timeout", f"no body data for {timeout:g} seconds")
        except BudgetExceeded as exc:
            why = f"the server holds {exc.limit} bytes of request bodies already; retry later"
            return refuse(503, "busy", why)
        client_addr = scope.get("client")
        coding = {} if encoding is None else {"content_encoding": encoding.decode("latin-1")}
        user_agent = headers.get(b"user-agent")
        content_type = headers.get(b"content-type")
        event = IngestEvent(
            uuid=submission,
            source="api",
            format=fmt,
            content_type=ctype,
            version=version,
            subtype=subtype,
            sha256=body.sha256,
            size=body.size,
            received_at=received_at,
            client=client.name if client else None,
            payload=body.payload,
            staged_path=body.staged.url if body.staged else None,
            source_metadata={
                "remote_addr": client_addr[0] if client_addr else None,
                "user_agent": user_agent.decode("latin-1") if user_agent is not None else None,
                "request_id": request_id,
                "content_type_header": (
                    content_type.decode("latin-1") if content_type is not None else None
                ),
                "format_metadata": body.metadata,
                **coding,
            },
        )
        try:
            await deps.publish(
                deps.topic, body.sha256.encode(), encode_event(event), submission, event.client
            )
        except BusUnavailable as exc:
            if body.staged is not None:
                await body.staged.abort()
            log.warning("bus unavailable, submission refused", uuid=submission, error=str(exc))
            return refuse(503, "unavailable", "the bus is unavailable, retry later")
        log.debug(  # per request: info would cost every request a log line
            "submission accepted",
            uuid=submission,
            format=fmt,
            content_type=ctype,
            size=body.size,
            client=client.name if client else None,
            staged=body.staged is not None,
        )
        answer = msgspec.json.encode(
            Accepted(status="accepted", uuid=submission, timestamp=received_at)
        )
        return answer, body.size
