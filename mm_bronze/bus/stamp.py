"""The deployment stamp: each event a process publishes to Kafka carries, in a header, the id
of its deployment (``ingestion.deployment.id`` in the database the process records to).

Every process of a deployment records to one database. A consumer started without the
deployment's ``postgres.dsn`` records to an embedded database of its own instead: it would
store what the doors accepted, record it where nobody looks, and commit the offsets, so the
submissions would stay "accepted" in the deployment's database for good. The stamp lets it
see, before it stores anything, that the events were accepted by another deployment's doors:
it gives them back and stops (``WrongDatabase``), and the deployment's own consumers take
them. Events without a stamp (published before stamps existed) are taken as before. The
embedded queue needs no stamp: it lives in the very database its consumers record to.
"""

from __future__ import annotations

from collections.abc import Sequence

from mm_bronze.bus.base import Message
from mm_bronze.errors import ConfigError

HEADER = "mm-bronze-deployment"


class WrongDatabase(ConfigError):
    """This consumer records to another database than the doors that accepted its events."""


def stamped(headers: Sequence[tuple[str, bytes]], deployment: bytes) -> list[tuple[str, bytes]]:
    """``headers`` with the stamp of ``deployment``, unless they carry one (an event published
    again keeps the stamp it was accepted with)."""
    if any(name == HEADER for name, _ in headers):
        return list(headers)
    return [*headers, (HEADER, deployment)]


def foreign(messages: Sequence[Message], deployment: str) -> WrongDatabase | None:
    """The refusal to record ``messages`` when one of them was stamped by another deployment
    than ``deployment``; None if none was."""
    own = deployment.encode()
    for message in messages:
        for name, value in message.headers:
            if name == HEADER and value != own:
                other = value.decode("utf-8", "replace")
                return WrongDatabase(
                    f"wrong database: the events on {message.topic} were accepted by the "
                    f"processes of deployment {other}, and this process records to the "
                    f"database of deployment {deployment}: it would store them and record "
                    "them where the deployment never looks. Set postgres.dsn (POSTGRES_DSN) "
                    "as on the deployment's other processes; if this database replaces that "
                    f"deployment's (restored or recreated), run `mm-bronze db adopt {other}`"
                )
    return None
