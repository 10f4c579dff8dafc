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
from mm_bronze.ingest.http.bodies import (
    Accepted,
    Alive,
    ErrorBody,
    FhirInvalidPayload,
    Readiness,
)
from mm_bronze.ingest.http.ingest import SEGMENT
from mm_bronze.ingest.http.responses import RETRY_AFTER
from mm_bronze.models import SubmissionStatus

Json = dict[str, Any]

SCHEMA_TYPES = (Accepted, ErrorBody, FhirInvalidPayload, SubmissionStatus, Alive, Readiness)
INGEST_PATH = "/ingest/{format}/{content_type}/{version}/{subtype}"

DESCRIPTION = """\
mm-bronze lands raw healthcare data (FHIR, HL7 v2, NDJSON) and records its lineage.

Every response carries an `X-Request-ID` header: the client's own when it sends one of 1 to
64 printable ASCII characters without spaces, otherwise a new one (32 hex digits). Every
error has the body `{"error": "<code>", "message": "<readable reason>", ...}`.

The door speaks HTTP/1.1 only: the HTTP/2 connection preface is answered `505`. Requests
refused before they reach the application (request headers over 16 KiB: `431`; a malformed
request: `400`) get the same error body. A method a route does not serve is answered `405`
with an `Allow` header; a path no route serves, `404`.

Authentication: `Authorization: Bearer <token>` once API clients exist (`mm-bronze clients
add`); until then a server bound to a loopback address accepts requests without a token.
`/healthz`, `/readyz`, `/openapi.json` and `/docs` never need one.
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


HEADERS_TOO_LARGE = failure("`headers_too_large`: the request header fields exceed 16 KiB.")


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
            " header is recorded, not interpreted."
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
                " `invalid_validation_level`."
            ),
            "401": UNAUTHORIZED,
            "403": failure("`forbidden`: the client's role may not submit."),
            "404": failure("`not_found`: a route segment is empty."),
            "408": failure("`body_timeout`: no body byte for `http.body_timeout` seconds."),
            "413": failure("`payload_too_large`: the body exceeds `http.max_body_bytes`."),
            "422": answer(
                "`invalid_payload`: an empty body, or not what the route declares; for FHIR"
                " the body is also an `OperationOutcome`.",
                {"anyOf": [ref("ErrorBody"), ref("FhirInvalidPayload")]},
            ),
            "431": HEADERS_TOO_LARGE,
            "503": failure(
                "`unavailable`: the bus or storage cannot be reached; `busy`: request bodies"
                " in flight hold `http.max_buffered_bytes` already. Retry later.",
                headers=("Retry-After",),
            ),
        },
    }


def submission_status() -> Json:
    return {
        "operationId": "submissionStatus",
        "summary": "The status of a submission",
        "description": (
            "`status` is `accepted`, `stored`, `duplicate` (`duplicate_of` names the earlier"
            " submission) or `failed` (with `message`). When API clients exist, a client sees"
            " its own submissions only (`admin`: all); `storage_path` is then relative to"
            " the store."
        ),
        "security": PROTECTED,
        "parameters": [
            {
                "name": "uuid",
                "in": "path",
                "required": True,
                "description": "The `uuid` of the `202` answer.",
                "schema": {"type": "string", "format": "uuid"},
            }
        ],
        "responses": {
            "200": answer("The submission's status.", ref("SubmissionStatus")),
            "400": failure("`invalid_uuid`: not a submission uuid."),
            "401": UNAUTHORIZED,
            "404": failure("`not_found`: no such submission, or another client's."),
            "431": HEADERS_TOO_LARGE,
            "503": failure(
                "`unavailable`: the database cannot be reached.", headers=("Retry-After",)
            ),
        },
    }


def healthz() -> Json:
    return {
        "operationId": "healthz",
        "summary": "Liveness",
        "security": PUBLIC,
        "responses": {
            "200": answer("The process runs.", ref("Alive")),
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
            "431": HEADERS_TOO_LARGE,
        },
    }


# (path, method) -> its description; every route the door serves has an entry.
OPERATIONS: dict[tuple[str, str], Callable[[], Json]] = {
    (INGEST_PATH, "post"): ingest,
    ("/ingest/{uuid}", "get"): submission_status,
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
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "string", "examples": [RETRY_AFTER]},
            },
            "WWW-Authenticate": {
                "description": "The authentication scheme: `Bearer`.",
                "schema": {"type": "string", "const": "Bearer"},
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
        paths.setdefault(path, {})[method] = describe()
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
