"""What a client may see: its own submissions (``admin``: every client's), storage paths
relative to the store, and lineage across clients for ``admin`` only."""

from __future__ import annotations

import uuid as uuidlib

import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import Response

from mm_bronze.ingest.http.auth import AuthUnavailable, Unauthorized
from mm_bronze.ingest.http.deps import HttpDeps
from mm_bronze.ingest.http.parameters import parameter_refusal
from mm_bronze.ingest.http.responses import database_unavailable, error, unauthorized
from mm_bronze.metadata import lineage, records
from mm_bronze.metadata.clients import Client
from mm_bronze.models import SubmissionStatus

log = structlog.get_logger(__name__)


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
    """``found`` as ``client`` may see it, or None when it is another client's (or, not yet
    recorded, names no client: sent anonymously before clients existed)."""
    if not client.is_admin and found.client != client.name:
        return None
    storage_path = relative_path(deps, found.storage_path)
    duplicate_of = found.duplicate_of
    if duplicate_of is not None and not client.is_admin:
        if await lineage.first_client(deps.pool, duplicate_of) != client.name:
            # The object, its path (route labels, date) and its first sender are another
            # client's: the bytes stay readable at /content.
            duplicate_of = storage_path = None
    return msgspec.structs.replace(found, storage_path=storage_path, duplicate_of=duplicate_of)


async def find_submission(
    deps: HttpDeps, request: Request
) -> Response | tuple[SubmissionStatus, SubmissionStatus]:
    """The submission named by the ``uuid`` path parameter, as recorded and as the request's
    client may see it; or the error to answer (401, 400, 404, 503). The routes that look
    one up take no query parameter: any is a 400, after the token is checked."""
    try:
        client = await deps.auth.authenticate(request.headers.get("authorization"))
    except Unauthorized as exc:
        return unauthorized(exc)
    except AuthUnavailable:
        return database_unavailable()
    if (refusal := parameter_refusal(request)) is not None:
        return refusal
    try:
        submission = str(uuidlib.UUID(request.path_params["uuid"]))
    except ValueError:
        return error(400, "invalid_uuid", "not a submission uuid")
    try:
        found = await records.submission_status(deps.pool, submission)
        visible = found
        if found is not None and client is not None:
            visible = await scoped_status(deps, found, client)
    except Exception as exc:
        log.warning("submission lookup failed", path=request.url.path, error=type(exc).__name__)
        return database_unavailable()
    if found is None or visible is None:
        return error(404, "not_found", f"no submission {submission}")
    return found, visible
