"""The HTTP front door: the lean ingest endpoint beside the Starlette app of every other route."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mm_bronze.errors import Unavailable
from mm_bronze.ingest.http import docs_page, openapi
from mm_bronze.ingest.http.auth import AuthUnavailable, Unauthorized
from mm_bronze.ingest.http.bodies import Alive, Readiness
from mm_bronze.ingest.http.content import content_route
from mm_bronze.ingest.http.dead_letters import dead_letter_routes
from mm_bronze.ingest.http.deps import HttpDeps
from mm_bronze.ingest.http.ingest import IngestEndpoint, ingest_segments
from mm_bronze.ingest.http.linger import LingeringClose
from mm_bronze.ingest.http.listing import submissions_route
from mm_bronze.ingest.http.parameters import parameter_refusal, without_parameters
from mm_bronze.ingest.http.protocol import Http11Only
from mm_bronze.ingest.http.request_id import RequestIdMiddleware
from mm_bronze.ingest.http.responses import database_unavailable, error, json_response, unauthorized
from mm_bronze.ingest.http.scoping import find_submission
from mm_bronze.metrics.exposition import CONTENT_TYPE, scrape

__all__ = ["HttpDeps", "HttpDoor", "build_app", "check_readiness"]

log = structlog.get_logger(__name__)


class HttpDoor:
    """The door's ASGI app: ``POST /ingest/...`` to the lean endpoint, the rest to Starlette."""

    def __init__(self, ingest: IngestEndpoint, app: Starlette) -> None:
        self.ingest = ingest
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = ingest_segments(scope)
        try:
            if route is not None:
                await self.ingest(scope, receive, send, route)
            else:
                await self.app(scope, receive, send)
        except asyncio.CancelledError:
            if scope["type"] == "http":
                await _answer_stopping(scope, receive, send)
            raise


async def _answer_stopping(scope: Scope, receive: Receive, send: Send) -> None:
    """A request cancelled by the server, which stopped and waited for it the whole
    ``http.graceful_timeout``: 503 (retry), not the empty 500 hypercorn would send. Nothing
    was acknowledged. When a response had started, there is nothing left to say."""
    log.warning("request unfinished when the server stopped", path=scope.get("path"))
    response = error(503, "unavailable", "the server is stopping, retry later")
    with contextlib.suppress(Exception):
        await response(scope, receive, send)


def build_app(deps: HttpDeps) -> ASGIApp:
    """The door: early refusals answered and closed (``LingeringClose``) around ``HttpDoor``."""

    async def status(request: Request) -> Response:
        found = await find_submission(deps, request)
        return found if isinstance(found, Response) else json_response(found[1])

    async def healthz(request: Request) -> Response:
        return json_response(Alive(status="alive"))

    async def readyz(request: Request) -> Response:
        checks = await deps.readiness()
        ready = all(v == "ok" for v in checks.values())
        return json_response(
            Readiness(status="ready" if ready else "not ready", checks=checks),
            status=200 if ready else 503,
        )

    async def metrics(request: Request) -> Response:
        try:
            client = await deps.auth.authenticate(request.headers.get("authorization"))
        except Unauthorized as exc:
            return unauthorized(exc)
        except AuthUnavailable:
            return database_unavailable()
        if client is not None and client.role not in ("read", "admin"):
            why = f"client {client.name!r} has role {client.role!r}; metrics need read or admin"
            return error(403, "forbidden", why)
        if (refusal := parameter_refusal(request)) is not None:
            return refusal
        return Response(await scrape(deps.metrics), media_type=CONTENT_TYPE)

    async def openapi_json(request: Request) -> Response:
        return Response(openapi.encoded(), media_type="application/json")

    async def docs(request: Request) -> Response:
        return Response(docs_page.encoded(), media_type="text/html; charset=utf-8")

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, "not_found", f"no route for {request.method} {request.url.path}")

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        response = error(405, "method_not_allowed", f"{request.method} is not allowed here")
        if isinstance(exc, HTTPException) and exc.headers:  # Allow: the route's methods
            response.headers.update(exc.headers)
        return response

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", error=type(exc).__name__)
        return error(500, "internal_error", "internal error")

    async def ingest_elsewhere(request: Request) -> Response:
        return error(404, "not_found", f"no route for {request.method} {request.url.path}")

    routes = [
        # HttpDoor sends every POST here to IngestEndpoint; the route answers other methods 405.
        Route(
            "/ingest/{format}/{content_type}/{version}/{subtype}",
            ingest_elsewhere,
            methods=["POST"],
        ),
        Route("/ingest/{uuid}", status, methods=["GET"]),
        Route("/ingest/{uuid}/content", content_route(deps), methods=["GET"]),
        Route("/submissions", submissions_route(deps), methods=["GET"]),
        Route("/healthz", without_parameters(healthz), methods=["GET"]),
        Route("/readyz", without_parameters(readyz), methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", without_parameters(openapi_json), methods=["GET"]),
        Route("/docs", without_parameters(docs), methods=["GET"]),
    ]
    if deps.dead_letters is not None:
        routes += dead_letter_routes(deps.dead_letters, deps.auth)
    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: method_not_allowed, 500: server_error},
    )
    # A path with a trailing slash is unknown (404), not redirected: a redirect would tell
    # which routes exist to a request that has not shown a token.
    app.router.redirect_slashes = False
    return LingeringClose(RequestIdMiddleware(Http11Only(HttpDoor(IngestEndpoint(deps), app))))


async def check_readiness(checks: dict[str, Callable[[], Awaitable[None]]]) -> dict[str, str]:
    """Run each check with a timeout; "ok" or the failure's type."""

    async def one(check: Callable[[], Awaitable[None]]) -> str:
        try:
            await asyncio.wait_for(check(), 5)
            return "ok"
        except (Unavailable, OSError, TimeoutError) as exc:
            return f"unavailable ({type(exc).__name__})"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[n]) for n in names))
    return dict(zip(names, results, strict=True))
