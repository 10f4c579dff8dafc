"""``GET /ingest/{uuid}/content``: a submission's bytes exactly as received, streamed."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import structlog
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mm_bronze.errors import StorageUnavailable
from mm_bronze.ingest.http.deps import HttpDeps
from mm_bronze.ingest.http.responses import error
from mm_bronze.ingest.http.scoping import find_submission

log = structlog.get_logger(__name__)

# (format, content_type) or content_type alone → the media type the bytes are served with.
MEDIA_TYPES = {
    ("fhir", "json"): "application/fhir+json",
    ("fhir", "xml"): "application/fhir+xml",
    ("fhir", "ndjson"): "application/fhir+ndjson",
    ("hl7", "text"): "x-application/hl7-v2+er7",
    ("hl7", "er7"): "x-application/hl7-v2+er7",
    "json": "application/json",
    "xml": "application/xml",
    "ndjson": "application/x-ndjson",
    "text": "text/plain",
    "csv": "text/csv",
}
OCTET_STREAM = "application/octet-stream"


def media_type(fmt: str | None, content_type: str | None) -> str:
    return MEDIA_TYPES.get((fmt or "", content_type or "")) or MEDIA_TYPES.get(
        content_type or "", OCTET_STREAM
    )


def content_route(deps: HttpDeps) -> Callable[[Request], Awaitable[Response]]:
    async def content(request: Request) -> Response:
        looked_up = await find_submission(deps, request)
        if isinstance(looked_up, Response):
            return looked_up
        found = looked_up[0]
        submission = found.uuid
        if found.sha256 is None or found.storage_path is None:
            why = f"submission {submission} is {found.status}, not stored"
            return error(404, "not_stored", why)
        etag = f'"{found.sha256}"'
        tags = _tags(request.headers.get("if-none-match"))
        if etag in tags or "*" in tags:
            return Response(status_code=304, headers={"ETag": etag})
        raw = deps.storage.raw
        try:
            key = raw.key_for(found.storage_path)
            chunks = raw.stream_original(key, found.compression or "none")
            first = await anext(chunks, b"")
        except (FileNotFoundError, ValueError):
            # Recorded but not where the store says: a lost object, not the caller's mistake.
            log.error("stored object missing", uuid=submission)
            return error(500, "object_missing", f"the stored object of {submission} is missing")
        except StorageUnavailable as exc:
            log.warning("content read failed", uuid=submission, error=str(exc))
            return error(503, "unavailable", "storage is unavailable, retry later")
        return StreamingResponse(
            _prepend(first, chunks),
            media_type=media_type(found.format, found.content_type),
            headers={
                "ETag": etag,
                "Content-Length": str(found.size),
                "Cache-Control": "private",
            },
        )

    return content


def _tags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


async def _prepend(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()
