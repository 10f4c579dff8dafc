"""What a client may see: its own submissions (``admin``: every client's), storage paths
relative to the store, and lineage across clients for ``admin`` only."""

from __future__ import annotations

import msgspec

from mm_bronze.ingest.http.deps import HttpDeps
from mm_bronze.metadata import lineage
from mm_bronze.metadata.clients import Client
from mm_bronze.models import SubmissionStatus


def owner_of_view(client: Client | None) -> str | None:
    """Whose submissions ``client`` sees: its own name, or None for all (admin, anonymous)."""
    if client is None or client.is_admin:
        return None
    return client.name


def relative_path(deps: HttpDeps, path: str | None) -> str | None:
    """A storage path relative to the raw store's root (as it was when it is elsewhere)."""
    root = deps.storage.raw.url + "/"
    return path.removeprefix(root) if path and path.startswith(root) else path


async def scoped_status(
    deps: HttpDeps, found: SubmissionStatus, client: Client
) -> SubmissionStatus | None:
    """``found`` as ``client`` may see it, or None when it is another client's."""
    # A submission not yet recorded (status from the log alone) names no owner yet.
    recorded = found.sha256 is not None
    if not client.is_admin and recorded and found.client != client.name:
        return None
    duplicate_of = found.duplicate_of
    if duplicate_of is not None and not client.is_admin:
        if await lineage.first_client(deps.pool, duplicate_of) != client.name:
            duplicate_of = None
    return msgspec.structs.replace(
        found, storage_path=relative_path(deps, found.storage_path), duplicate_of=duplicate_of
    )
