"""One MLLP connection in process: frames split as bytes arrive, read-ahead bounded, the idle
timer never fires while a message is in hand, and shutdown lets a busy connection finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from mm_bronze.ingest.mllp.access import PeerPolicy
from mm_bronze.ingest.mllp.connection import HIGH_WATER, MllpConnection
from mm_bronze.ingest.mllp.framing import FrameSplitter, FrameTooLarge
from mm_bronze.ingest.mllp.receiver import MessageReceiver, Peer
from mm_bronze.ingest.mllp.server import MllpServer
from mm_bronze.settings import MllpSettings
from tests.ingest.mllp.helpers import END, START


class SlowReceiver:
    """Answers each message with ``ACK:<message>`` after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.received: list[bytes] = []
        self.in_hand = asyncio.Event()

    async def receive(self, message: bytes, peer: Peer) -> bytes | None:
        self.in_hand.set()
        await asyncio.sleep(self.delay)
        self.received.append(message)
        return b"ACK:" + message

    def oversized(self, exc: FrameTooLarge, peer: Peer) -> bytes | None:
        return b"TOO LARGE"


def serving(receiver: SlowReceiver, **settings: Any) -> MllpServer:
    return MllpServer(
        MllpSettings(port=0, **settings),
        cast(MessageReceiver, receiver),
        policy=PeerPolicy([], []),
    )


@pytest.fixture
async def slow() -> AsyncIterator[tuple[MllpServer, SlowReceiver]]:
    receiver = SlowReceiver(0.6)
    server = serving(receiver, idle_timeout=0.3)
    await server.open()
    yield server, receiver
    await server.close(grace=5)


async def read_acks(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    acks = []
    for _ in range(count):
        data = await asyncio.wait_for(reader.readuntil(END), 10)
        acks.append(data.removeprefix(START).removesuffix(END))
    return acks


def test_splitter_fed_a_byte_at_a_time_finds_every_frame() -> None:
    stream = b"junk\x0bMSH|1\x1c\r\x0bMSH|lost\x0bMSH|2\x1c\r\x0b" + b"x" * 50 + b"\x1c\r\x0bMSH|3"
    frames = FrameSplitter(max_frame_bytes=20)
    found: list[bytes | FrameTooLarge] = []
    for byte in stream:
        frames.feed(bytes([byte]))
        while (frame := frames.next_frame()) is not None:
            found.append(frame)
    frames.end()
    assert found[:2] == [b"MSH|1", b"MSH|2"]
    assert isinstance(found[2], FrameTooLarge) and found[2].size == 50
    assert len(found) == 3
    assert (frames.junk_bytes, frames.abandoned_frames) == (4, 2)


async def test_a_message_in_hand_longer_than_the_idle_timeout_is_answered(
    slow: tuple[MllpServer, SlowReceiver],
) -> None:
    server, _ = slow
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(START + b"MSH|slow" + END)
    assert await read_acks(reader, 1) == [b"ACK:MSH|slow"]
    # Idle afterwards: closed once the idle timeout has passed since the answer.
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_pipelined_messages_are_answered_in_order_with_bounded_read_ahead(
    slow: tuple[MllpServer, SlowReceiver],
) -> None:
    server, receiver = slow
    receiver.delay = 0.2
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=1 << 20)
    messages = [b"MSH|%d|" % n + b"x" * 100_000 for n in range(8)]
    writer.write(b"".join(START + m + END for m in messages))  # 800 KB at once
    await receiver.in_hand.wait()
    await asyncio.sleep(0.1)
    (conn,) = cast(set[MllpConnection], server._connections)
    held = conn._frames.buffered if conn._frames else 0
    assert held <= HIGH_WATER + 256 * 1024  # at most one read past the high-water mark
    acks = await read_acks(reader, len(messages))
    assert acks == [b"ACK:" + m for m in messages]
    writer.close()


async def test_shutdown_lets_a_busy_connection_finish_and_closes_idle_ones() -> None:
    receiver = SlowReceiver(0.5)
    server = serving(receiver)
    await server.open()
    busy_reader, busy = await asyncio.open_connection("127.0.0.1", server.port)
    idle_reader, idle = await asyncio.open_connection("127.0.0.1", server.port)
    busy.write(START + b"MSH|busy" + END)
    await receiver.in_hand.wait()
    closing = asyncio.create_task(server.close(grace=5))
    assert await asyncio.wait_for(idle_reader.read(), 5) == b""
    assert await read_acks(busy_reader, 1) == [b"ACK:MSH|busy"]
    assert await asyncio.wait_for(busy_reader.read(), 5) == b""
    await closing
    busy.close()
    idle.close()
