"""The latency bound: the bare ceiling (``ceiling_app``) made durable in the simplest way.

Each request's body is read and hashed like the ceiling's, then made durable before the 202:
a body up to ``INLINE`` bytes goes into one committed ``INSERT`` (a row like the embedded
bus's, the body inline); a larger one is written to a file (temp, fsync, rename, directory
fsync) and its path committed in the row. Each request commits on its own pooled
connection: PostgreSQL itself then makes one WAL flush serve every commit waiting on it.
No validation, no framework beyond the ceiling's. The door's p99 cannot be expected below
this app's: what it adds to the ceiling's tail is the wait for the disk.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from hypercorn.asyncio import serve
from hypercorn.config import Config
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks.ceiling_app import hashed_body, run

INLINE = 64 * 1024  # the door's default ``inline_limit``
TABLE = "public.bench_durable_ceiling"
INSERT = f"INSERT INTO {TABLE} (topic, key, value) VALUES (%s, %s, %s)"


def write_durably(directory: Path, body: bytes) -> str:
    path = directory / uuid.uuid4().hex
    temp = path.with_suffix(".tmp")
    with open(temp, "wb") as file:
        file.write(body)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return str(path)


def make_app(pool: AsyncConnectionPool, directory: Path) -> Starlette:
    async def ingest(request: Request) -> JSONResponse:
        body, digest = await hashed_body(request)
        if len(body) > INLINE:
            value = (await asyncio.to_thread(write_durably, directory, body)).encode()
        else:
            value = body
        async with pool.connection() as conn:
            await conn.execute(INSERT, ("bench", digest, value), prepare=True)
        return JSONResponse({"status": "accepted", "size": len(body)}, status_code=202)

    return Starlette(routes=[Route("/ingest/{a}/{b}/{c}/{d}", ingest, methods=["POST"])])


async def _main(port: int, dsn: str, directory: Path) -> None:
    async with AsyncConnectionPool(
        dsn, min_size=32, max_size=32, kwargs={"autocommit": True}, open=False
    ) as pool:
        async with pool.connection() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
            await conn.execute(f"CREATE TABLE {TABLE} (LIKE bus.messages INCLUDING ALL)")
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        await serve(make_app(pool, directory), config)  # type: ignore[arg-type]


def main() -> None:
    port, dsn, directory = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    directory.mkdir(parents=True, exist_ok=True)
    run(_main(port, dsn, directory))


if __name__ == "__main__":
    main()
