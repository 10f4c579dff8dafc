"""Run the HTTP app with hypercorn inside the process's loop; the runtime owns the signals."""

from __future__ import annotations

import asyncio
import logging

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import ASGIApp

from mm_bronze.ingest.http import protocol
from mm_bronze.settings import HttpSettings


def hypercorn_config(settings: HttpSettings) -> Config:
    config = Config()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # rendered by mm_bronze.logging
    config.graceful_timeout = 30.0
    config.keep_alive_timeout = 75.0
    return config


async def serve_http(app: ASGIApp, settings: HttpSettings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then finish in-flight requests and return."""
    protocol.install()
    await serve(app, hypercorn_config(settings), shutdown_trigger=stop.wait, mode="asgi")  # type: ignore[arg-type]
