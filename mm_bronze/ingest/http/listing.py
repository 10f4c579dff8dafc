"""``GET /submissions``: filtered pages of recorded submissions, and the long-poll feed.

``after=SEQ`` lists in ascending seq (commit) order and is the feed: with ``wait=S`` an
empty page is held until a submission is recorded or ``S`` seconds (at most ``MAX_WAIT``)
pass. ``before=SEQ`` pages newest first. A client that disconnects while waiting ends the
wait at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from mm_bronze.ingest.http.auth import AuthUnavailable, Unauthorized
from mm_bronze.ingest.http.bodies import SubmissionsPage
from mm_bronze.ingest.http.deps import HttpDeps
from mm_bronze.ingest.http.responses import database_unavailable, error, json_response, unauthorized
from mm_bronze.ingest.http.scoping import owner_of_view, relative_path
from mm_bronze.metadata.submissions import (
    FORMAT_NAME,
    MAX_LIMIT,
    SOURCES,
    STATUSES,
    Page,
    SubmissionQuery,
    list_submissions,
    order_of,
    parse_sftp_path,
    parse_time,
)
from mm_bronze.query_parameters import misused

log = structlog.get_logger(__name__)

MAX_WAIT = 60.0
# Without a notification (listener down, or one lost) a waiting reader re-queries this often.
POLL_SECONDS = 2.0
PARAMETERS = (
    "client source format status sha256 since until path limit after before order wait".split()
)
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class BadParameter(Exception):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name


def parse_query(params: QueryParams) -> tuple[SubmissionQuery, float]:
    """The query and the wait (seconds) asked for; raises ``BadParameter``."""
    if (wrong := misused(params.multi_items(), PARAMETERS)) is not None:
        raise BadParameter(*wrong)
    for name in params:
        if "\x00" in params[name]:  # PostgreSQL text cannot hold one: no match, not a 503
            raise BadParameter(name, "contains a NUL character")
    fields: dict[str, Any] = {}
    if (client := params.get("client")) is not None:
        if not 0 < len(client) <= 200:
            raise BadParameter("client", "expected a client name")
        fields["client"] = client
    if (source := params.get("source")) is not None:
        fields["source"] = _choice("source", source, SOURCES)
    if (fmt := params.get("format")) is not None:
        if not FORMAT_NAME.fullmatch(fmt):
            raise BadParameter("format", "expected a format name such as fhir or hl7")
        fields["format"] = fmt
    if (status := params.get("status")) is not None:
        if status in ("accepted", "failed"):
            raise BadParameter(
                "status",
                f"{status} submissions are not recorded yet; only stored and duplicate ones are "
                "listed (GET /ingest/{uuid} shows any submission's status)",
            )
        fields["status"] = _choice("status", status, STATUSES)
    if (sha256 := params.get("sha256")) is not None:
        if not _SHA256.fullmatch(sha256):
            raise BadParameter("sha256", "expected 64 hexadecimal digits")
        fields["sha256"] = sha256.lower()
    try:
        for name in ("since", "until", "path"):
            if (text := params.get(name)) is not None:
                if name == "path":
                    fields["sftp_user"], fields["sftp_path"] = parse_sftp_path(text)
                else:
                    fields[name] = parse_time(text)
    except ValueError as exc:
        raise BadParameter(name, str(exc)) from None
    if (limit := params.get("limit")) is not None:
        fields["limit"] = _integer("limit", limit, 1, MAX_LIMIT)
    for name in ("after", "before"):
        if (text := params.get(name)) is not None:
            fields[name] = _integer(name, text, 0, 2**63 - 1)
    if "after" in fields and "before" in fields:
        raise BadParameter("before", "use either after (ascending) or before (descending)")
    if (order := params.get("order")) is not None:
        fields["order"] = _choice("order", order, ("asc", "desc"))
        if order == "desc" and "after" in fields:
            raise BadParameter("order", "after pages in ascending order; use before for desc")
        if order == "asc" and "before" in fields:
            raise BadParameter("order", "before pages in descending order; use after for asc")
    wait = 0.0
    if (text := params.get("wait")) is not None:
        try:
            wait = float(text)
        except ValueError:
            raise BadParameter("wait", "expected seconds, a number") from None
        if not 0 <= wait <= MAX_WAIT:
            raise BadParameter("wait", f"expected 0 to {MAX_WAIT:g} seconds")
        if "after" not in fields:
            raise BadParameter("wait", "only the feed waits: give after=CURSOR (0 to start)")
    return SubmissionQuery(**fields), wait


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise BadParameter(name, f"expected one of {', '.join(allowed)}")
    return value


def _integer(name: str, text: str, low: int, high: int) -> int:
    # The length first: int() refuses (ValueError) a string of more than 4,300 digits.
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(high))
    if not digits or not low <= int(text) <= high:
        raise BadParameter(name, f"expected an integer from {low} to {high}")
    return int(text)


def submissions_route(deps: HttpDeps) -> Callable[[Request], Awaitable[Response]]:
    async def submissions(request: Request) -> Response:
        try:
            client = await deps.auth.authenticate(request.headers.get("authorization"))
        except Unauthorized as exc:
            return unauthorized(exc)
        except AuthUnavailable:
            return database_unavailable()
        try:
            query, wait = parse_query(request.query_params)
        except BadParameter as exc:
            return error(400, "invalid_parameter", str(exc), parameter=exc.name)
        owner = owner_of_view(client)
        try:
            page = await _page(deps, request.receive, query, owner, wait)
        except Exception as exc:
            log.warning("submissions lookup failed", error=type(exc).__name__)
            return database_unavailable()
        if page is None:  # the client went away while waiting
            return Response(status_code=204)
        items = [
            msgspec.structs.replace(item, storage_path=relative_path(deps, item.storage_path))
            for item in page.items
        ]
        return json_response(SubmissionsPage(items=items, next=page.next, order=order_of(query)))

    return submissions


async def _page(
    deps: HttpDeps, receive: Receive, query: SubmissionQuery, owner: str | None, wait: float
) -> Page | None:
    """The first page; when empty and ``wait`` is given, the first non-empty one within
    ``wait`` seconds (or the empty one then). None when the client disconnected."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    # Taken before each query, so a submission recorded during the query still wakes us.
    change = deps.feed.next_change() if deps.feed is not None else None
    page = await list_submissions(deps.pool, query, owner=owner)
    if page.items or wait <= 0:
        return page
    gone = asyncio.create_task(_disconnect(receive))
    try:
        while not page.items and (remaining := deadline - loop.time()) > 0:
            waiters: set[asyncio.Future[Any]] = {gone}
            woken = asyncio.ensure_future(change.wait()) if change is not None else None
            if woken is not None:
                waiters.add(woken)
            try:
                await asyncio.wait(
                    waiters,
                    timeout=min(remaining, POLL_SECONDS),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                if woken is not None:
                    woken.cancel()
            if gone.done():
                return None
            if deps.feed is not None and deps.feed.stopping:
                return page  # the server is stopping: answer now, the reader asks again
            change = deps.feed.next_change() if deps.feed is not None else None
            page = await list_submissions(deps.pool, query, owner=owner)
        return page
    finally:
        gone.cancel()


async def _disconnect(receive: Receive) -> None:
    """Returns when the client disconnects (the request body, if any, is ignored)."""
    while (await receive())["type"] != "http.disconnect":
        pass
