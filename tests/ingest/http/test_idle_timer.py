"""Keep-alive with the lazily re-armed idle timer: idle connections still close on time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from hypercorn.asyncio import serve
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.config import Config

from mm_bronze.ingest.http import idle_timer, protocol
from tests.services.mm_bronze import free_port

KEEP_ALIVE = 1.0
REQUEST = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n"


async def hello(scope: dict, receive: object, send: object) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                "headers": [(b"content-length", b"5")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[operator]


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, asyncio.Event]]:
    protocol.install()
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.keep_alive_timeout = KEEP_ALIVE
    config.accesslog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(hello, config, shutdown_trigger=stop.wait, mode="asgi"))  # type: ignore[arg-type]
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    yield port, stop
    stop.set()
    await asyncio.wait_for(task, 10)


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(REQUEST)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    body = await asyncio.wait_for(reader.readexactly(5), 5)
    assert head.startswith(b"HTTP/1.1 200")
    return body


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(
    server: tuple[int, asyncio.Event],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server[0])
    assert await ask(reader, writer) == b"hello"
    began = time.monotonic()
    assert await asyncio.wait_for(reader.read(), KEEP_ALIVE + idle_timer.GRACE + 3) == b""
    assert KEEP_ALIVE * 0.9 <= time.monotonic() - began <= KEEP_ALIVE + idle_timer.GRACE + 1
    writer.close()


async def test_a_connection_in_use_outlives_the_keep_alive_timeout(
    server: tuple[int, asyncio.Event],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server[0])
    began = time.monotonic()
    while time.monotonic() - began < 3 * KEEP_ALIVE:
        assert await ask(reader, writer) == b"hello"
        await asyncio.sleep(KEEP_ALIVE / 3)
    writer.close()


async def test_shutdown_closes_idle_connections_at_once(server: tuple[int, asyncio.Event]) -> None:
    port, stop = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await ask(reader, writer) == b"hello"
    began = time.monotonic()
    stop.set()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert time.monotonic() - began < KEEP_ALIVE / 2
    writer.close()


def test_install_refuses_hypercorn_internals_it_does_not_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(TCPServer, "_initiate_server_close")
    with pytest.raises(RuntimeError, match=r"_initiate_server_close.*update idle_timer\.py"):
        idle_timer.check()
