"""Dead letters over HTTP, for ``admin`` clients: list, show, replay, purge.

Responses carry metadata, the reason and the attempts, never the payload (patient data).
Without any API client (a loopback-only door) requests are anonymous and allowed, as every
other route is.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mm_bronze.bus.dead_letters import DeadLetterNotFound, DeadLetters, InvalidDeadLetterId
from mm_bronze.errors import BronzeError, Unavailable
from mm_bronze.ingest.http.auth import Authenticator, AuthUnavailable, Unauthorized
from mm_bronze.ingest.http.bodies import DeadLetterPage, Purged, Replayed
from mm_bronze.ingest.http.parameters import Handler, parameter_refusal
from mm_bronze.ingest.http.responses import database_unavailable, error, json_response, unauthorized

log = structlog.get_logger(__name__)

MAX_LIMIT = 1000
PARAMETERS = ("limit", "topic", "cursor")


def dead_letter_routes(letters: DeadLetters, auth: Authenticator) -> list[Route]:
    def admin_only(handler: Handler, known: Sequence[str] = ()) -> Handler:
        """``handler`` for admin clients, with the query parameters in ``known`` only (a
        ``?dry_run=1`` on a purge must not purge)."""

        async def guarded(request: Request) -> Response:
            try:
                client = await auth.authenticate(request.headers.get("authorization"))
            except Unauthorized as exc:
                return unauthorized(exc)
            except AuthUnavailable:
                return database_unavailable()
            if client is not None and not client.is_admin:
                return error(403, "forbidden", "dead letters are for admin clients only")
            if (refusal := parameter_refusal(request, known)) is not None:
                return refusal
            request.state.client = client.name if client is not None else None
            try:
                return await handler(request)
            except InvalidDeadLetterId as exc:
                return error(400, "invalid_id", str(exc))
            except DeadLetterNotFound as exc:
                return error(404, "not_found", f"{exc} (unknown, or already replayed or purged)")
            except Unavailable as exc:
                log.warning("dead letters unavailable", error=str(exc))
                return error(503, "unavailable", "the bus or database is unavailable, retry later")
            except BronzeError as exc:
                return error(409, "not_replayable", str(exc))

        return guarded

    async def list_letters(request: Request) -> Response:
        query = request.query_params
        text = query.get("limit", "100")
        if not (text.isascii() and text.isdigit() and len(text) <= 4) or not (
            1 <= int(text) <= MAX_LIMIT
        ):
            return error(400, "invalid_limit", f"limit must be a number from 1 to {MAX_LIMIT}")
        limit = int(text)
        topic = query.get("topic") or None
        if topic is not None and "\x00" in topic:
            return error(400, "invalid_topic", "topic contains a NUL character")
        # One more than asked tells whether another page follows.
        found = await letters.pending(
            topic=topic, limit=limit + 1, after=query.get("cursor") or None
        )
        cursor = found[limit - 1].id if len(found) > limit else None
        page = DeadLetterPage(dead_letters=found[:limit], next_cursor=cursor)
        return json_response(page)

    async def show(request: Request) -> Response:
        return json_response(await letters.get(request.path_params["id"]))

    async def replay(request: Request) -> Response:
        letter = await letters.replay(request.path_params["id"])
        log.info(
            "dead letter replayed over http",
            id=letter.id,
            topic=letter.topic,
            client=request.state.client,
        )
        return json_response(Replayed(status="replayed", dead_letter=letter))

    async def purge(request: Request) -> Response:
        id = letters.canonical_id(request.path_params["id"])
        await letters.purge(id)
        log.info("dead letter purged over http", id=id, client=request.state.client)
        return json_response(Purged(status="purged", id=id))

    async def show_or_purge(request: Request) -> Response:
        return await (purge if request.method == "DELETE" else show)(request)

    return [
        Route("/dead-letters", admin_only(list_letters, PARAMETERS), methods=["GET"]),
        # One route for both methods, so a 405 there names both in its Allow header.
        Route("/dead-letters/{id}", admin_only(show_or_purge), methods=["GET", "DELETE"]),
        Route("/dead-letters/{id}/replay", admin_only(replay), methods=["POST"]),
    ]
