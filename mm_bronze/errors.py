"""The error tree. Each front door converts these into its own protocol's errors."""

from __future__ import annotations


class BronzeError(Exception):
    """Base of every error mm-bronze raises on purpose."""


class ConfigError(BronzeError):
    """The configuration is invalid; the message names the key."""


class InvalidPayload(BronzeError):
    """The payload is not what its sender declared (a permanent, client-side error)."""

    def __init__(self, reason: str, *, location: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.location = location


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
