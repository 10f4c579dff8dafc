"""The door's OpenAPI 3.1 document (``GET /openapi.json``), built once.

``OPERATIONS`` holds one description per route and method the door serves; documenting a
new route is one function and one entry there (a test fails while a route is missing).
Body schemas are derived from the msgspec structs the door encodes (``bodies.py``,
``SubmissionStatus``), so they follow the code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import msgspec

from mm_bronze import __version__, formats
from mm_bronze.formats.base import LEVELS
from mm_bronze.ingest.http import dead_letters, listing
from mm_bronze.ingest.http.bodies import (
    Accepted,
    Alive,
    DeadLetterPage,
    ErrorBody,
    FhirInvalidPayload,
    Purged,
    Readiness,
    Replayed,
    SubmissionsPage,
)
from mm_bronze.ingest.http.content import MEDIA_TYPES, OCTET_STREAM
from mm_bronze.ingest.http.content_coding import ACCEPTED as ACCEPTED_CODINGS
from mm_bronze.ingest.http.ingest import SEGMENT
from mm_bronze.ingest.http.responses import RETRY_AFTER
from mm_bronze.metadata.submissions import (
    DEFAULT_LIMIT,
    FORMAT_NAME,
    MAX_LIMIT,
    SOURCES,
    STATUSES,
)
from mm_bronze.metrics.exposition import CONTENT_TYPE as METRICS_CONTENT_TYPE
from mm_bronze.models import SubmissionStatus

Json = dict[str, Any]

SCHEMA_TYPES = (
    Accepted,
    ErrorBody,
    FhirInvalidPayload,
    SubmissionStatus,
    Alive,
    Readiness,
    SubmissionsPage,
    DeadLetterPage,
    Replayed,
    Purged,
)
INGEST_PATH = "/ingest/{format}/{content_type}/{version}/{subtype}"

DESCRIPTION = """\
mm-bronze lands raw healthcare data (FHIR, HL7 v2, NDJSON) and records its lineage.

Every response carries an `X-Request-ID` header: the client's own when it sends one of 1 to
64 printable ASCII characters without spaces, otherwise a new one (32 hex digits). Every
error has the body `{"error": "<code>", "message": "<readable reason>", ...}`.

The door speaks HTTP/1.1 only: the HTTP/2 connection preface is answered `505`. Requests
refused before they reach the application (a path and query over 8 KiB: `414`; a request
head over 16 KiB: `431`; a `Transfer-Encoding` other than `chunked`: `501`; a malformed
request: `400`) get the same error body. A method a route does not serve is answered `405`
with an `Allow` header; a path no route serves, `404`. A query parameter a route does not
list, or one given twice, is answered `400` `invalid_parameter` naming it (`parameter`): a
misspelt parameter is never ignored.

Authentication: `Authorization: Bearer <token>` once API clients exist (`mm-bronze clients
add`); until then a server bound to a loopback address accepts requests without a token.
`/healthz`, `/readyz`, `/openapi.json` and `/docs` never need one. Roles: `ingest` submits
and reads its own submissions; `read` reads its own submissions and `/metrics`, and may not
submit; `admin` submits, reads every client's submissions and `/metrics`, and manages the
dead letters.

`HEAD` is answered wherever `GET` is, with the same status and headers and no body.
"""


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def answer(description: str, schema: Json, *, headers: tuple[str, ...] = ()) -> Json:
    """A JSON response; every response names its ``X-Request-ID``."""
    return {
        "description": description,
        "headers": {
            name: {"$ref": f"#/components/headers/{name}"} for name in ("X-Request-ID", *headers)
        },
        "content": {"application/json": {"schema": schema}},
    }


def failure(description: str, *, headers: tuple[str, ...] = ()) -> Json:
    return answer(description, ref("ErrorBody"), headers=headers)


HEADERS_TOO_LARGE = failure(
    "`headers_too_large`: the request head (target and header fields) exceeds 16 KiB."
)
# What every route can answer, whatever it does: added to each operation's own responses.
EVERY_ROUTE = {
    "405": failure(
        "`method_not_allowed`: not a method of this route; `Allow` names those that are.",
        headers=("Allow",),
    ),
    "414": failure("`uri_too_long`: the request target (path and query) exceeds 8 KiB."),
    "500": failure("`internal_error`: a defect of mm-bronze (logged, never the payload)."),
    "505": failure("`http_version_not_supported`: only HTTP/1.1 is served."),
}


# The 400 of a route that takes no query parameter (no typo is silently ignored).
NO_PARAMETERS = (
    "`invalid_parameter`: any query parameter (this route takes none; `parameter` names it)."
)
NO_PARAMETERS_FAILURE = failure(NO_PARAMETERS)
UNAUTHORIZED = failure(
    "`unauthorized`: a missing or invalid bearer token, once API clients exist.",
    headers=("WWW-Authenticate",),
)


PROTECTED: list[Json] = [{"bearer": []}, {}]  # {}: no token until the first client exists
PUBLIC: list[Json] = []


def route_segment(name: str, description: str, schema: Json) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def label(examples: list[str]) -> Json:
    """A free route segment: letters, digits, ``.``, ``_``, ``-``."""
    return {"type": "string", "pattern": f"^{SEGMENT.pattern}$", "examples": examples}


UNAVAILABLE_DATABASE = failure(
    "`unavailable`: the database cannot be reached.", headers=("Retry-After",)
)


def ingest() -> Json:
    pairs = ", ".join(f"`{pair}`" for pair in formats.supported())
    content_types = sorted({ct for types in formats.VALIDATORS.values() for ct in types})
    level = {"type": "string", "enum": list(LEVELS)}
    return {
        "operationId": "submit",
        "summary": "Submit one payload",
        "description": (
            "The request body is the payload, stored byte for byte. It is checked to be what"
            f" `format/content_type` declares (one of {pairs}, case-insensitive) and answered"
            " `202` once the submission is durable on the bus. The body's `Content-Type`"
            " header is recorded, not interpreted. A body sent with `Content-Encoding: gzip`"
            " is decoded as it arrives: the decoded bytes are the payload."
        ),
        "security": PROTECTED,
        "parameters": [
            route_segment(
                "format",
                "The payload's format (case-insensitive).",
                {"type": "string", "enum": sorted(formats.VALIDATORS)},
            ),
            route_segment(
                "content_type",
                f"Its encoding within the format (case-insensitive): {pairs}.",
                {"type": "string", "enum": content_types},
            ),
            route_segment(
                "version",
                "A free label recorded with the submission. For FHIR, `R4`, `R4B`, `R5` (or"
                " `4.0.1`, `4.3.0`, `5.0.0`) select the structure checked.",
                label(["R4", "R4B", "R5", "2.5.1"]),
            ),
            route_segment(
                "subtype",
                "A free label recorded with the submission.",
                label(["bundle", "patient", "oru_r01"]),
            ),
            {
                "name": "validation",
                "in": "query",
                "description": "`strict` rejects structure errors, `lenient` records them;"
                " overrides `X-Validation-Level` and the server's default.",
                "schema": level,
            },
            {
                "name": "X-Validation-Level",
                "in": "header",
                "description": "Like the `validation` query parameter, which wins.",
                "schema": level,
            },
            {
                "name": "Content-Encoding",
                "in": "header",
                "description": "`gzip` (or `x-gzip`): the body is gzip-compressed, and is"
                " decoded as it arrives; `identity` or none: the body as is. Any other coding"
                " is a `415`.",
                "schema": {"type": "string", "examples": ["gzip"]},
            },
        ],
        "requestBody": {
            "required": True,
            "description": "The payload, at most `http.max_body_bytes` bytes.",
            "content": {
                "application/fhir+json": {
                    "schema": {
                        "type": "object",
                        "required": ["resourceType"],
                        "properties": {
                            "resourceType": {"type": "string", "pattern": "^[A-Z][A-Za-z]+$"}
                        },
                    },
                    "example": {"resourceType": "Patient", "id": "example", "active": True},
                },
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"},
                    "example": "MSH|^~\\&|LAB|HOSP|||20261201120000||ORU^R01|MSG1|P|2.5.1\r",
                },
            },
        },
        "responses": {
            "202": {
                **answer("The submission is durable on the bus.", ref("Accepted")),
                "links": {
                    "status": {
                        "operationId": "submissionStatus",
                        "parameters": {"uuid": "$response.body#/uuid"},
                        "description": "Follow the submission until it is stored.",
                    }
                },
            },
            "400": failure(
                "`invalid_route`: a malformed route segment; `unsupported_format`: an unknown"
                " format or content type (`supported` lists the accepted ones);"
                " `invalid_validation_level`; `invalid_parameter`: a query parameter other"
                " than `validation`, or one given twice (`parameter` names it);"
                " `invalid_encoding`: a body sent with"
                " `Content-Encoding: gzip` that is not gzip, or ends before its gzip stream"
                " does."
            ),
            "401": UNAUTHORIZED,
            "403": failure("`forbidden`: the client's role may not submit."),
            "404": failure("`not_found`: a route segment is empty."),
            "408": failure("`body_timeout`: no body byte for `http.body_timeout` seconds."),
            "413": failure(
                "`payload_too_large`: the body (decoded, when gzip) exceeds `http.max_body_bytes`."
            ),
            "415": failure(
                "`unsupported_encoding`: a `Content-Encoding` other than `gzip` or `identity`.",
                headers=("Accept-Encoding",),
            ),
            "422": answer(
                "`invalid_payload`: an empty body, or not what the route declares; for FHIR"
                " the body is also an `OperationOutcome`.",
                {"anyOf": [ref("ErrorBody"), ref("FhirInvalidPayload")]},
            ),
            "431": HEADERS_TOO_LARGE,
            "501": failure(
                "`transfer_encoding_not_supported`: a `Transfer-Encoding` other than `chunked`"
                " (send a compressed body with `Content-Encoding: gzip`)."
            ),
            "503": failure(
                "`unavailable`: the bus or storage cannot be reached; `busy`: request bodies"
                " in flight hold `http.max_buffered_bytes` already. Retry later.",
                headers=("Retry-After",),
            ),
        },
    }


UUID_PARAMETER = route_segment(
    "uuid", "The `uuid` of the `202` answer.", {"type": "string", "format": "uuid"}
)


def submission_status() -> Json:
    return {
        "operationId": "submissionStatus",
        "summary": "The status of a submission",
        "description": (
            "`status` is `accepted`, `stored`, `duplicate` (`duplicate_of` names the earlier"
            " submission) or `failed` (with `message`). When API clients exist, a client sees"
            " its own submissions only (`admin`: all); `storage_path` is then relative to"
            " the store, and a duplicate of bytes another client sent first shows neither"
            " `duplicate_of` nor `storage_path` (its bytes are at `/ingest/{uuid}/content`)."
        ),
        "security": PROTECTED,
        "parameters": [UUID_PARAMETER],
        "responses": {
            "200": answer("The submission's status.", ref("SubmissionStatus")),
            "400": failure("`invalid_uuid`: not a submission uuid; " + NO_PARAMETERS),
            "401": UNAUTHORIZED,
            "404": failure("`not_found`: no such submission, or another client's."),
            "431": HEADERS_TOO_LARGE,
            "503": UNAVAILABLE_DATABASE,
        },
    }


def submission_content() -> Json:
    media_types = sorted({*MEDIA_TYPES.values(), OCTET_STREAM})
    return {
        "operationId": "submissionContent",
        "summary": "The bytes of a stored submission",
        "description": (
            "The payload exactly as received (uncompressed), streamed. Its `Content-Type`"
            " follows the submission's format and content type: `fhir/json` is"
            " `application/fhir+json`, `hl7/text` `x-application/hl7-v2+er7`, an unknown one"
            " `application/octet-stream`. The `ETag` is the payload's quoted SHA-256; a"
            " request whose `If-None-Match` names it (or `*`) is answered `304`. When API"
            " clients exist, a client reads its own submissions only (`admin`: all)."
        ),
        "security": PROTECTED,
        "parameters": [
            UUID_PARAMETER,
            {
                "name": "If-None-Match",
                "in": "header",
                "description": "Entity tags (`W/` ignored) or `*`: answer `304` when one is"
                " the payload's.",
                "schema": {"type": "string"},
            },
        ],
        "responses": {
            "200": {
                "description": "The payload's bytes.",
                "headers": {
                    "X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"},
                    "ETag": {"$ref": "#/components/headers/ETag"},
                    "Content-Length": {
                        "description": "The payload's size in bytes.",
                        "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    },
                    "Cache-Control": {
                        "description": "`private`: a shared cache must not keep it.",
                        "schema": {"type": "string", "const": "private"},
                    },
                },
                "content": {
                    media_type: {"schema": {"type": "string", "format": "binary"}}
                    for media_type in media_types
                },
            },
            "304": {
                "description": "`If-None-Match` names the payload's `ETag`; no body.",
                "headers": {
                    "X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"},
                    "ETag": {"$ref": "#/components/headers/ETag"},
                },
            },
            "400": failure("`invalid_uuid`: not a submission uuid; " + NO_PARAMETERS),
            "401": UNAUTHORIZED,
            "404": failure(
                "`not_found`: no such submission, or another client's; `not_stored`: the"
                " submission is not stored (accepted, failed): no bytes to read."
            ),
            "431": HEADERS_TOO_LARGE,
            "500": failure(
                "`object_missing`: the submission is recorded as stored but its object is"
                " not in the store (lost or removed outside mm-bronze)."
            ),
            "503": failure(
                "`unavailable`: the database or storage cannot be reached.",
                headers=("Retry-After",),
            ),
        },
    }


def query(name: str, description: str, schema: Json) -> Json:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def submissions() -> Json:
    cursor = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    time = {"type": "string", "examples": ["2026-12-01", "2026-12-01T10:00:00Z"]}
    return {
        "operationId": "listSubmissions",
        "summary": "List recorded submissions; follow new ones (long poll)",
        "description": (
            "Recorded (`stored` and `duplicate`) submissions matching every filter given,"
            " newest first by default. Each has a `seq`, the order it was recorded in: `after=SEQ`"
            " lists in ascending order from there and is the feed (start with `after=0`, go"
            " on with `after=next`); `before=SEQ` pages in descending order. With `wait`"
            " (which needs `after`), an empty page is held until a matching submission is"
            " recorded or the seconds pass. When API clients exist, a client lists its own"
            " submissions only (`admin`: all); `storage_path` is relative to the store,"
            " and null (as `duplicate_of` is) for a duplicate of bytes another client sent"
            " first. A parameter not listed here, or one given twice, is answered `400`."
        ),
        "security": PROTECTED,
        "parameters": [
            query(
                "client",
                "Submissions of this client only.",
                {"type": "string", "minLength": 1, "maxLength": 200},
            ),
            query("source", "The door it came through.", {"type": "string", "enum": list(SOURCES)}),
            query(
                "format",
                "Its format, e.g. `fhir`, `hl7`.",
                {"type": "string", "pattern": f"^{FORMAT_NAME.pattern}$"},
            ),
            query(
                "status",
                "`stored` (the first of its bytes) or `duplicate`; `accepted` and `failed`"
                " submissions are not listed (`400`).",
                {"type": "string", "enum": list(STATUSES)},
            ),
            query(
                "sha256",
                "The payload's SHA-256 (case-insensitive).",
                {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
            ),
            query(
                "since",
                "Received at or after this ISO 8601 date or time (UTC without an offset).",
                time,
            ),
            query("until", "Received before this ISO 8601 date or time.", time),
            query(
                "path",
                "SFTP uploads of this file: `USER:/PATH`.",
                {
                    "type": "string",
                    "pattern": "^[^:]+:/",
                    "examples": ["lab1:/results/2026-12-01.hl7"],
                },
            ),
            query(
                "limit",
                f"At most this many items (default {DEFAULT_LIMIT}).",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            ),
            query(
                "after",
                "Those recorded after this `seq`, in ascending order; not with `before`.",
                cursor,
            ),
            query(
                "before",
                "Those recorded before this `seq`, in descending order; not with `after`.",
                cursor,
            ),
            query(
                "order",
                "Without a cursor: `desc` (default, newest first) or `asc`. It must agree"
                " with `after` (`asc`) or `before` (`desc`).",
                {"type": "string", "enum": ["asc", "desc"]},
            ),
            query(
                "wait",
                f"With `after` only: hold an empty page up to this many seconds (at most"
                f" {listing.MAX_WAIT:g}) until a matching submission is recorded.",
                {"type": "number", "minimum": 0, "maximum": listing.MAX_WAIT},
            ),
        ],
        "responses": {
            "200": answer("A page of submissions.", ref("SubmissionsPage")),
            "204": {
                "description": "The client disconnected while waiting (nobody reads this).",
                "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
            },
            "400": failure(
                "`invalid_parameter`: an unknown, repeated or malformed parameter (a NUL"
                " character included), or parameters that do not go together; `parameter`"
                " names it."
            ),
            "401": UNAUTHORIZED,
            "431": HEADERS_TOO_LARGE,
            "503": UNAVAILABLE_DATABASE,
        },
    }


def metrics() -> Json:
    return {
        "operationId": "metrics",
        "summary": "Prometheus metrics",
        "description": (
            "The process's metrics in the Prometheus text format 0.0.4: submissions and their"
            " bytes, request durations, stored payloads, consumer batches, open MLLP and SFTP"
            " connections, the bus backlog and dead letters, readiness. When API clients exist,"
            " for `read` and `admin` clients."
        ),
        "security": PROTECTED,
        "responses": {
            "200": {
                "description": "The metrics.",
                "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                "content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}},
            },
            "400": NO_PARAMETERS_FAILURE,
            "401": UNAUTHORIZED,
            "403": failure("`forbidden`: the client's role is `ingest`."),
            "431": HEADERS_TOO_LARGE,
        },
    }


DEAD_LETTER_ID = route_segment(
    "id",
    "The dead letter's id: a number on the embedded queue, `PARTITION:OFFSET` on Kafka.",
    {"type": "string", "examples": ["12", "0:42"]},
)
ADMIN_ONLY = {
    "401": UNAUTHORIZED,
    "403": failure("`forbidden`: dead letters are for `admin` clients only."),
    "431": HEADERS_TOO_LARGE,
    "503": failure(
        "`unavailable`: the bus or database cannot be reached.", headers=("Retry-After",)
    ),
}
INVALID_ID = failure("`invalid_id`: not a dead letter id of this bus; " + NO_PARAMETERS)
NOT_PENDING = failure(
    "`not_found`: no pending dead letter has that id (unknown, or already replayed or purged)."
)
DEAD_LETTERS_NOTE = (
    " Dead letters are events a consumer set aside after failing on them; they show"
    " metadata, the reason and the attempts, never the payload. When API clients exist, for"
    " `admin` clients only."
)


def list_dead_letters() -> Json:
    return {
        "operationId": "listDeadLetters",
        "summary": "Pending dead letters",
        "description": "Oldest first, a page at a time." + DEAD_LETTERS_NOTE,
        "security": PROTECTED,
        "parameters": [
            query("topic", "Those consumed from this topic only.", {"type": "string"}),
            query(
                "limit",
                "At most this many (default 100).",
                {"type": "integer", "minimum": 1, "maximum": dead_letters.MAX_LIMIT},
            ),
            query(
                "cursor",
                "The `next_cursor` of the previous page: those after that id.",
                {"type": "string"},
            ),
        ],
        "responses": {
            "200": answer("A page of dead letters.", ref("DeadLetterPage")),
            "400": failure(
                "`invalid_limit`: `limit` is not a number from 1 to"
                f" {dead_letters.MAX_LIMIT}; `invalid_id`: `cursor` is not a dead letter id;"
                " `invalid_topic`: `topic` holds a NUL character; `invalid_parameter`: a"
                " parameter other than these, or one given twice (`parameter` names it)."
            ),
            **ADMIN_ONLY,
        },
    }


def show_dead_letter() -> Json:
    return {
        "operationId": "showDeadLetter",
        "summary": "One pending dead letter",
        "description": DEAD_LETTERS_NOTE.strip(),
        "security": PROTECTED,
        "parameters": [DEAD_LETTER_ID],
        "responses": {
            "200": answer("The dead letter.", ref("DeadLetter")),
            "400": INVALID_ID,
            "404": NOT_PENDING,
            **ADMIN_ONLY,
        },
    }


def replay_dead_letter() -> Json:
    return {
        "operationId": "replayDeadLetter",
        "summary": "Put a dead letter's event back on its topic",
        "description": "Once: the dead letter is then no longer pending." + DEAD_LETTERS_NOTE,
        "security": PROTECTED,
        "parameters": [DEAD_LETTER_ID],
        "responses": {
            "200": answer("Replayed.", ref("Replayed")),
            "400": INVALID_ID,
            "404": NOT_PENDING,
            "409": failure("`not_replayable`: the dead letter does not name its topic."),
            **ADMIN_ONLY,
        },
    }


def purge_dead_letter() -> Json:
    return {
        "operationId": "purgeDeadLetter",
        "summary": "Drop a dead letter for good",
        "description": DEAD_LETTERS_NOTE.strip(),
        "security": PROTECTED,
        "parameters": [DEAD_LETTER_ID],
        "responses": {
            "200": answer("Purged.", ref("Purged")),
            "400": INVALID_ID,
            "404": NOT_PENDING,
            **ADMIN_ONLY,
        },
    }


def healthz() -> Json:
    return {
        "operationId": "healthz",
        "summary": "Liveness",
        "security": PUBLIC,
        "responses": {
            "200": answer("The process runs.", ref("Alive")),
            "400": NO_PARAMETERS_FAILURE,
            "431": HEADERS_TOO_LARGE,
        },
    }


def readyz() -> Json:
    return {
        "operationId": "readyz",
        "summary": "Readiness",
        "description": (
            "Ready when PostgreSQL, the bus and storage are reachable, every door of the"
            " process listens and the consumers are not retrying a failure."
        ),
        "security": PUBLIC,
        "responses": {
            "200": answer("Every part is ready.", ref("Readiness")),
            "400": NO_PARAMETERS_FAILURE,
            "431": HEADERS_TOO_LARGE,
            "503": answer("A part is not ready; `checks` names it.", ref("Readiness")),
        },
    }


def openapi_json() -> Json:
    return {
        "operationId": "openapi",
        "summary": "This document",
        "security": PUBLIC,
        "responses": {
            "200": answer("The OpenAPI 3.1 document.", {"type": "object"}),
            "400": NO_PARAMETERS_FAILURE,
            "431": HEADERS_TOO_LARGE,
        },
    }


def docs() -> Json:
    return {
        "operationId": "docs",
        "summary": "This document as a readable page",
        "description": "Plain HTML rendered by the server; it loads nothing from elsewhere.",
        "security": PUBLIC,
        "responses": {
            "200": {
                "description": "The page.",
                "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            "400": NO_PARAMETERS_FAILURE,
            "431": HEADERS_TOO_LARGE,
        },
    }


# (path, method) -> its description; every route the door serves has an entry.
OPERATIONS: dict[tuple[str, str], Callable[[], Json]] = {
    (INGEST_PATH, "post"): ingest,
    ("/ingest/{uuid}", "get"): submission_status,
    ("/ingest/{uuid}/content", "get"): submission_content,
    ("/submissions", "get"): submissions,
    ("/metrics", "get"): metrics,
    ("/dead-letters", "get"): list_dead_letters,
    ("/dead-letters/{id}", "get"): show_dead_letter,
    ("/dead-letters/{id}", "delete"): purge_dead_letter,
    ("/dead-letters/{id}/replay", "post"): replay_dead_letter,
    ("/healthz", "get"): healthz,
    ("/readyz", "get"): readyz,
    ("/openapi.json", "get"): openapi_json,
    ("/docs", "get"): docs,
}


def components() -> Json:
    _, schemas = msgspec.json.schema_components(
        SCHEMA_TYPES, ref_template="#/components/schemas/{name}"
    )
    return {
        "schemas": schemas,
        "headers": {
            "X-Request-ID": {
                "description": "The request's id: the client's own when acceptable, else new.",
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,64}$"},
            },
            "ETag": {
                "description": "The payload's SHA-256 in quotes.",
                "schema": {"type": "string", "pattern": '^"[0-9a-f]{64}"$'},
            },
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "string", "examples": [RETRY_AFTER]},
            },
            "Accept-Encoding": {
                "description": "The content codings a request body may have.",
                "schema": {"type": "string", "const": ACCEPTED_CODINGS},
            },
            "WWW-Authenticate": {
                "description": "The authentication scheme: `Bearer`.",
                "schema": {"type": "string", "const": "Bearer"},
            },
            "Allow": {
                "description": "The methods the route answers, e.g. `GET, HEAD`.",
                "schema": {"type": "string"},
            },
        },
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A client's token, from `mm-bronze clients add NAME`.",
            }
        },
    }


@functools.cache
def document() -> Json:
    """The OpenAPI document (built on first use, then shared: do not modify)."""
    paths: Json = {}
    for (path, method), describe in OPERATIONS.items():
        operation = describe()
        for status, response in EVERY_ROUTE.items():  # a route's own description first
            operation["responses"].setdefault(status, response)
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mm-bronze",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": components(),
    }


@functools.cache
def encoded() -> bytes:
    """The document as JSON, encoded once."""
    return msgspec.json.encode(document())
