"""The JSON bodies the HTTP door answers with, as msgspec structs.

The door encodes these (so a field cannot be added or renamed in one place only) and the
OpenAPI document derives its schemas from them (``openapi.py``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

Uuid = Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})]
Timestamp = Annotated[dt.datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]


class Accepted(msgspec.Struct, kw_only=True):
    """The submission is durable on the bus; follow it with ``GET /ingest/{uuid}``."""

    status: Literal["accepted"] = "accepted"
    uuid: Uuid
    timestamp: Timestamp


class Finding(msgspec.Struct, kw_only=True):
    """One located validation issue; its text names places, never payload values."""

    severity: Annotated[str, msgspec.Meta(examples=["error"])]
    code: Annotated[str, msgspec.Meta(examples=["structure"])]
    diagnostics: str
    expression: str | UnsetType = UNSET
    location: str | UnsetType = UNSET


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every error answer: a stable ``error`` code and a readable ``message``."""

    error: Annotated[str, msgspec.Meta(examples=["not_found"])]
    message: str
    supported: list[str] | UnsetType = UNSET  # unsupported_format: the accepted routes
    location: str | UnsetType = UNSET  # invalid_payload: where the payload went wrong
    issues: list[Finding] | UnsetType = UNSET  # invalid_payload (not FHIR)


class OutcomeIssue(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An ``OperationOutcome.issue``."""

    severity: str
    code: str
    diagnostics: str
    expression: list[str] | UnsetType = UNSET
    location: list[str] | UnsetType = UNSET


class FhirInvalidPayload(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A rejected FHIR payload: a FHIR ``OperationOutcome`` that is also an error body."""

    resourceType: Literal["OperationOutcome"]  # the FHIR element's name
    issue: list[OutcomeIssue]
    error: Literal["invalid_payload"]
    message: str
    location: str | UnsetType = UNSET


class Alive(msgspec.Struct, kw_only=True):
    """The process runs."""

    status: Literal["alive"] = "alive"


class Readiness(msgspec.Struct, kw_only=True):
    """Each part of the process and whether it is reachable: ``ok`` or why not."""

    status: Literal["ready", "not ready"]
    checks: Annotated[
        dict[str, str],
        msgspec.Meta(examples=[{"database": "ok", "bus": "ok", "storage": "ok", "http": "ok"}]),
    ]
