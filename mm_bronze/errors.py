"""The error tree. Each front door converts these into its own protocol's errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class BronzeError(Exception):
    """Base of every error mm-bronze raises on purpose."""


class ConfigError(BronzeError):
    """The configuration is invalid; the message names the key."""


@dataclass(frozen=True)
class Issue:
    """One located validation finding (shaped like a FHIR ``OperationOutcome.issue``).

    ``severity`` is ``fatal`` (not the declared format at all), ``error`` (syntax or
    structure), ``warning`` or ``information``; ``code`` a FHIR issue type (``structure``,
    ``required``, ``value``, ``invalid``, ``not-supported``, ...); ``expression`` where in
    the payload (``Patient.birthDate``, ``PID-3``); ``location`` a line/column or position.
    Messages name places, never payload values (they are patient data).
    """

    severity: str
    code: str
    diagnostics: str
    expression: str | None = None
    location: str | None = None


class InvalidPayload(BronzeError):
    """The payload is not what its sender declared (a permanent, client-side error).

    ``issues`` holds the located findings behind the rejection (at least one when the
    validator produced it), ``code`` the FHIR issue type of the first one.
    """

    def __init__(
        self,
        reason: str,
        *,
        location: str | None = None,
        issues: Sequence[Issue] = (),
        code: str = "invalid",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.location = location
        self.issues = list(issues) or [
            Issue("error", code, reason, expression=None, location=location)
        ]
        self.code = code


class UnsupportedFormat(BronzeError):
    """No validator exists for the declared format or content type."""

    def __init__(self, reason: str, supported: list[str]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.supported = supported


class PayloadTooLarge(BronzeError):
    """The payload crossed the configured size limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"payload exceeds the limit of {limit} bytes")
        self.limit = limit


class Unavailable(BronzeError):
    """A dependency (bus, database, storage) cannot be reached now; the caller may retry."""


class BusUnavailable(Unavailable):
    """The bus could not make an event durable."""


class StorageUnavailable(Unavailable):
    """The storage backend failed in a way that may succeed on retry."""


class PoisonMessage(BronzeError):
    """A bus message that can never be processed (undecodable, missing staged blob)."""
