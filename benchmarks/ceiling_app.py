"""The ceiling: a bare starlette + hypercorn endpoint that reads the body and answers 202."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Coroutine
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def ingest(request: Request) -> JSONResponse:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return JSONResponse({"status": "accepted", "size": size}, status_code=202)


app = Starlette(routes=[Route("/ingest/{a}/{b}/{c}/{d}", ingest, methods=["POST"])])


async def hashed_body(request: Request) -> tuple[bytes, bytes]:
    """The body, read as the ceiling reads it, and its SHA-256 (for the bounds that build on
    the ceiling: ``durable_ceiling_app``, ``kafka_durable_app``)."""
    digest = hashlib.sha256()
    chunks = []
    async for chunk in request.stream():
        digest.update(chunk)
        chunks.append(chunk)
    return b"".join(chunks), digest.digest()


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when it is installed (as the door runs), else asyncio's loop."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(main)


def main() -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{int(sys.argv[1])}"]
    config.accesslog = None
    run(serve(app, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
