"""Dead letters: events a consumer set aside, listed, replayed onto their topic, or purged.

Each bus keeps its own (``bus.dead_letters`` on the embedded queue, the dead-letter topic on
Kafka) behind the ``DeadLetters`` interface, used by ``mm-bronze dlq`` and by the HTTP routes.
What they report is metadata only: the event's payload (patient data) is never shown. A
purge also removes the payload the event left in staging (claim check): once the dead letter
is gone, nothing can replay it, and nothing else would ever remove it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

import msgspec
import structlog

from mm_bronze.errors import BronzeError, Unavailable
from mm_bronze.models import decode_event

if TYPE_CHECKING:
    from mm_bronze.storage.objects import ObjectStore

log = structlog.get_logger(__name__)


class DeadLetterNotFound(BronzeError):
    """No pending dead letter has that id (unknown, or already replayed or purged)."""


class InvalidDeadLetterId(BronzeError):
    """The id is not of the form this bus uses."""


class DeadLetter(msgspec.Struct, kw_only=True):
    """One dead letter, as listed: where it came from, why it failed, what it carried.

    The event's fields are None when the event could not be decoded.
    """

    id: str
    topic: str  # the topic it was consumed from, and is replayed onto
    reason: str
    attempts: int
    dead_lettered_at: dt.datetime | None = None
    uuid: str | None = None
    source: str | None = None
    client: str | None = None
    format: str | None = None
    content_type: str | None = None
    version: str | None = None
    subtype: str | None = None
    sha256: str | None = None
    size: int | None = None
    received_at: dt.datetime | None = None
    staged: bool | None = None  # the payload waits in storage staging (claim check)


def describe(
    id: str, topic: str, reason: str, attempts: int, at: dt.datetime | None, value: bytes
) -> DeadLetter:
    """A ``DeadLetter`` for the raw event ``value``, with the event's metadata if it decodes."""
    letter = DeadLetter(id=id, topic=topic, reason=reason, attempts=attempts, dead_lettered_at=at)
    try:
        event = decode_event(value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return letter
    return msgspec.structs.replace(
        letter,
        uuid=event.uuid,
        source=event.source,
        client=event.client,
        format=event.format,
        content_type=event.content_type,
        version=event.version,
        subtype=event.subtype,
        sha256=event.sha256,
        size=event.size,
        received_at=event.received_at,
        staged=event.payload is None,
    )


def submission_uuid(value: bytes) -> str | None:
    """The submission uuid the raw event carries, or None when it has no valid one."""
    try:
        return str(UUID(decode_event(value).uuid))
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None


async def remove_staged(staging: ObjectStore, value: bytes, id: str) -> None:
    """Remove the staged payload of the purged dead letter ``id`` (its raw event ``value``),
    if it has one. Called once the purge is committed: a payload that cannot be removed costs
    space, never data, and is only logged."""
    try:
        url = decode_event(value).staged_path
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    if url is None:
        return
    try:
        await staging.remove(staging.key_for(url))
    except ValueError:  # staged elsewhere than under this process's staging store
        log.warning("staged payload of a purged dead letter not removed", id=id, url=url)
    except (Unavailable, OSError) as exc:
        log.warning(
            "staged payload of a purged dead letter not removed", id=id, url=url, error=str(exc)
        )


class DeadLetters(Protocol):
    """The dead letters of one bus. Replayed and purged ones are no longer listed."""

    async def pending(
        self, *, topic: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[DeadLetter]:
        """Pending dead letters, oldest first, at most ``limit``, those after id ``after``
        (a cursor: the last id of the previous page). Raises ``InvalidDeadLetterId``."""
        ...

    def canonical_id(self, id: str) -> str:
        """``id`` as this bus writes it (``0013`` is ``13``); raises ``InvalidDeadLetterId``
        when it is not an id of this bus, without reaching the bus."""
        ...

    async def get(self, id: str) -> DeadLetter:
        """Raises ``DeadLetterNotFound``, ``InvalidDeadLetterId``."""
        ...

    async def replay(self, id: str) -> DeadLetter:
        """Put the event back on its topic, once: a second replay of the same id raises
        ``DeadLetterNotFound``. Raises ``InvalidDeadLetterId``, ``Unavailable``."""
        ...

    async def replay_all(self, topic: str | None = None) -> int:
        """Replay every pending dead letter (of ``topic``); return how many."""
        ...

    async def purge(self, id: str) -> None:
        """Drop a dead letter for good, and its staged payload (``remove_staged``). Raises
        ``DeadLetterNotFound``, ``InvalidDeadLetterId``."""
        ...

    async def close(self) -> None: ...
