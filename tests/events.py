"""Bus events as the doors publish them, for tests that put events on a bus themselves."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

from mm_bronze.models import IngestEvent


def fhir_event(
    body: bytes = b"{}", *, staged_path: str | None = None, **fields: Any
) -> IngestEvent:
    """An R4 Patient event as the HTTP door publishes it: ``body`` inline, or a claim check
    on ``staged_path``; ``fields`` override the rest."""
    values: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "source": "api",
        "format": "fhir",
        "content_type": "json",
        "version": "R4",
        "subtype": "patient",
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body),
        "received_at": dt.datetime.now(dt.UTC),
        "payload": None if staged_path else body,
        "staged_path": staged_path,
        **fields,
    }
    return IngestEvent(**values)
