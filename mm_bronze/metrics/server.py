"""``GET /metrics`` on ``metrics.host:metrics.port``: for processes without the HTTP door, or
a scrape address apart from it. No authentication: bind it where only Prometheus reaches."""

from __future__ import annotations

import asyncio
import logging

import msgspec
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mm_bronze.metrics.exposition import CONTENT_TYPE, scrape
from mm_bronze.metrics.registry import Metrics
from mm_bronze.query_parameters import misused
from mm_bronze.settings import MetricsSettings

# Its start line is rendered as ``metrics listening`` (see mm_bronze.logging).
LOGGER = "hypercorn.metrics"


def metrics_app(metrics: Metrics) -> Starlette:
    async def endpoint(request: Request) -> Response:
        # Like the door's /metrics, it takes no query parameter: a scrape sends none.
        if (wrong := misused(request.query_params.multi_items(), ())) is not None:
            name, why = wrong
            return _error(400, "invalid_parameter", f"{name}: {why}", parameter=name)
        return Response(await scrape(metrics), media_type=CONTENT_TYPE)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, "not_found", f"no route for {request.method} {request.url.path}")

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return _error(405, "method_not_allowed", f"{request.method} is not allowed here")

    return Starlette(
        routes=[Route("/metrics", endpoint, methods=["GET"])],
        exception_handlers={404: not_found, 405: method_not_allowed},
    )


def _error(status: int, code: str, message: str, **extra: str) -> Response:
    body = msgspec.json.encode({"error": code, "message": message, **extra})
    return Response(body, status_code=status, media_type="application/json")


async def serve_metrics(metrics: Metrics, settings: MetricsSettings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set; raises ``OSError`` when the address cannot be bound."""
    config = Config()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger(LOGGER)
    config.graceful_timeout = 5.0
    await serve(metrics_app(metrics), config, shutdown_trigger=stop.wait, mode="asgi")  # type: ignore[arg-type]
