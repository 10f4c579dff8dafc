"""The JSON bodies the HTTP door answers with, as msgspec structs.

The door encodes these (so a field cannot be added or renamed in one place only) and the
OpenAPI document derives its schemas from them (``openapi.py``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from mm_bronze.bus.dead_letters import DeadLetter
from mm_bronze.metadata.submissions import SubmissionItem

Uuid = Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})]
Timestamp = Annotated[dt.datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]


class Accepted(msgspec.Struct, kw_only=True):
    """The submission is durable on the bus; follow it with ``GET /ingest/{uuid}``."""

    status: Literal["accepted"]
    uuid: Annotated[Uuid, msgspec.Meta(description="The submission's id.")]
    timestamp: Annotated[Timestamp, msgspec.Meta(description="When it was received (UTC).")]


class Finding(msgspec.Struct, kw_only=True):
    """One located validation issue; its text names places, never payload values."""

    severity: Annotated[str, msgspec.Meta(examples=["error"])]
    code: Annotated[str, msgspec.Meta(examples=["structure"])]
    diagnostics: str
    expression: str | UnsetType = UNSET
    location: str | UnsetType = UNSET


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every error answer: a stable ``error`` code and a readable ``message``."""

    error: Annotated[str, msgspec.Meta(description="A stable code.", examples=["not_found"])]
    message: Annotated[str, msgspec.Meta(description="Why, for a person to read.")]
    supported: Annotated[
        list[str] | UnsetType,
        msgspec.Meta(description="`unsupported_format`: the routes that are accepted."),
    ] = UNSET
    location: Annotated[
        str | UnsetType,
        msgspec.Meta(description="`invalid_payload`: where the payload went wrong."),
    ] = UNSET
    issues: Annotated[
        list[Finding] | UnsetType,
        msgspec.Meta(description="`invalid_payload` (not FHIR): every issue found."),
    ] = UNSET
    parameter: Annotated[
        str | UnsetType,
        msgspec.Meta(description="`invalid_parameter`: the query parameter at fault."),
    ] = UNSET


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

    status: Literal["alive"]


class Readiness(msgspec.Struct, kw_only=True):
    """Each part of the process and whether it is reachable: ``ok`` or why not."""

    status: Literal["ready", "not ready"]
    checks: Annotated[
        dict[str, str],
        msgspec.Meta(examples=[{"database": "ok", "bus": "ok", "storage": "ok", "http": "ok"}]),
    ]


class SubmissionsPage(msgspec.Struct, kw_only=True):
    """A page of ``GET /submissions``."""

    items: list[SubmissionItem]
    next: Annotated[
        int | None,
        msgspec.Meta(
            description="The next page's cursor: `after=next` in ascending order (always set:"
            " the feed continues there), `before=next` in descending order (null on the last"
            " page)."
        ),
    ]
    order: Literal["asc", "desc"]


class DeadLetterPage(msgspec.Struct, kw_only=True):
    """A page of pending dead letters, oldest first."""

    dead_letters: list[DeadLetter]
    next_cursor: Annotated[
        str | None,
        msgspec.Meta(description="`cursor=next_cursor` asks for the next page; null on the last."),
    ]


class Replayed(msgspec.Struct, kw_only=True):
    """The dead letter's event is back on its topic; it is no longer pending."""

    status: Literal["replayed"]
    dead_letter: DeadLetter


class Purged(msgspec.Struct, kw_only=True):
    """The dead letter is dropped for good."""

    status: Literal["purged"]
    id: str
