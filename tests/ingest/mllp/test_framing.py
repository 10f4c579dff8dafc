"""MLLP framing faults: the reader in isolation, then against a running `serve --all`."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from mm_bronze.ingest.mllp.framing import FrameReader, FrameTooLarge, IdleTimeout
from tests.ingest.http.helpers import stored_bytes
from tests.ingest.mllp.helpers import (
    END,
    START,
    RawMllp,
    oru,
    parse_ack,
    stored_rows,
    wait_rows,
)
from tests.polling import wait_for, wait_listening
from tests.services.mm_bronze import MmBronze


def reader_over(*chunks: bytes, eof: bool = True, limit: int = 1000) -> FrameReader:
    stream = asyncio.StreamReader()
    for chunk in chunks:
        stream.feed_data(chunk)
    if eof:
        stream.feed_eof()
    return FrameReader(stream, max_frame_bytes=limit, idle_timeout=0.2)


async def all_frames(frames: FrameReader) -> list[bytes]:
    out = []
    while (found := await frames.read_frame()) is not None:
        out.append(found)
    return out


async def test_frames_split_across_reads_and_junk_skipped() -> None:
    frames = reader_over(
        b"junk\r\n\x0bMSH|1\x1c", b"\r\x0b", b"MSH|2\x1c\r", b"\x0bMSH|3\x1c\rtail"
    )
    assert await all_frames(frames) == [b"MSH|1", b"MSH|2", b"MSH|3"]
    assert frames.junk_bytes == len(b"junk\r\n") + len(b"tail")
    assert frames.abandoned_frames == 0


async def test_unfinished_frames_are_abandoned() -> None:
    # A new start block before the end block, then a frame cut off by the end of the stream.
    frames = reader_over(b"\x0bMSH|lost\x0bMSH|kept\x1c\r\x0bMSH|cut")
    assert await all_frames(frames) == [b"MSH|kept"]
    assert frames.abandoned_frames == 2


async def test_oversized_frame_is_skipped_and_the_stream_stays_usable() -> None:
    big = b"MSH|^~\\&|A|B|C|D|||ADT^A01|BIG1|P|2.5\r" + b"x" * 5000
    frames = reader_over(START + big[:3000], big[3000:] + END, START + b"MSH|next" + END)
    with pytest.raises(FrameTooLarge) as caught:
        await frames.read_frame()
    assert caught.value.size == len(big) and caught.value.limit == 1000
    assert caught.value.head.startswith(b"MSH|^~\\&|A|B|C|D|||ADT^A01|BIG1")
    assert await frames.read_frame() == b"MSH|next"


async def test_silence_ends_with_idle_timeout() -> None:
    frames = reader_over(b"\x0bMSH|half", eof=False)
    with pytest.raises(IdleTimeout):
        await frames.read_frame()


@pytest.fixture(scope="module")
def mllp(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[MmBronze]:
    proc = MmBronze(
        tmp_path_factory.mktemp("mllp-framing"),
        env={"POSTGRES_DSN": module_dsn, "MM_BRONZE_MLLP_IDLE_TIMEOUT": "2"},
    )
    proc.start()
    wait_listening(proc.mllp_port)
    yield proc
    proc.stop()


def still_serving(server: MmBronze, control_id: str) -> None:
    assert server.proc is not None and server.proc.poll() is None, server.logs()
    with RawMllp(server.mllp_port) as conn:
        ack = parse_ack(conn.ask(oru(control_id)))
    assert (ack.code, ack.control_id) == ("AA", control_id)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_junk_before_the_start_block_is_skipped(mllp: MmBronze, module_dsn: str) -> None:
    message = oru("JUNK1")
    with RawMllp(mllp.mllp_port) as conn:
        conn.send_raw(b"\r\n\x00garbage between frames\r\n")
        ack = parse_ack(conn.ask(message))
    assert (ack.code, ack.control_id) == ("AA", "JUNK1")
    assert wait_rows(module_dsn, sha(message), 1)[0][2].endswith(".hl7")


def test_missing_end_block_then_close_stores_nothing(mllp: MmBronze, module_dsn: str) -> None:
    message = oru("NOEND1")
    with RawMllp(mllp.mllp_port) as conn:
        conn.send_raw(START + message)
    still_serving(mllp, "AFTER-NOEND1")
    assert stored_rows(module_dsn, sha(message)) == []


def test_new_start_block_abandons_the_unfinished_frame(mllp: MmBronze, module_dsn: str) -> None:
    lost, kept = oru("LOST1"), oru("KEPT1")
    with RawMllp(mllp.mllp_port) as conn:
        conn.send_raw(START + lost[:40])
        ack = parse_ack(conn.ask(kept))
    assert (ack.code, ack.control_id) == ("AA", "KEPT1")
    wait_rows(module_dsn, sha(kept), 1)
    assert stored_rows(module_dsn, sha(lost[:40])) == []


def test_a_20_mb_frame_is_rejected_and_the_connection_keeps_working(
    mllp: MmBronze, module_dsn: str
) -> None:
    head = oru("HUGE1").rstrip(b"\r")
    huge = head + b"\rNTE|1||" + b"A" * (20 * 1024 * 1024) + b"\r"
    with RawMllp(mllp.mllp_port) as conn:
        ack = parse_ack(conn.ask(huge))
        assert (ack.code, ack.control_id) == ("AR", "HUGE1")
        assert "exceeds the limit of 16777216 bytes" in ack.text
        assert ack.err is not None
        ack = parse_ack(conn.ask(oru("AFTER-HUGE1")))
        assert (ack.code, ack.control_id) == ("AA", "AFTER-HUGE1")
    assert stored_rows(module_dsn, sha(huge)) == []


def test_connection_reset_mid_frame(mllp: MmBronze, module_dsn: str) -> None:
    message = oru("RESET1", extra="x" * 100_000)
    sock = socket.create_connection(("127.0.0.1", mllp.mllp_port))
    sock.sendall(START + message[:60_000])
    # SO_LINGER 0: close sends a TCP RST, as when a sender's process dies.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    still_serving(mllp, "AFTER-RESET1")
    assert stored_rows(module_dsn, sha(message)) == []


def test_idle_connection_is_closed(mllp: MmBronze) -> None:
    with RawMllp(mllp.mllp_port) as conn:
        conn.send_raw(START + b"MSH|^~\\&|half a message")
        started = time.monotonic()
        assert conn.closed_by_server(timeout=30)
        assert time.monotonic() - started >= 1.5
    still_serving(mllp, "AFTER-IDLE1")
    assert "mllp connection idle, closing" in mllp.logs()


def test_shutdown_closes_idle_connections(
    tmp_path_factory: pytest.TempPathFactory, module_dsn: str
) -> None:
    proc = MmBronze(tmp_path_factory.mktemp("mllp-stop"), env={"POSTGRES_DSN": module_dsn})
    proc.start()
    wait_listening(proc.mllp_port)
    with RawMllp(proc.mllp_port) as idle, RawMllp(proc.mllp_port) as mid_frame:
        assert parse_ack(idle.ask(oru("STOP1"))).code == "AA"
        mid_frame.send_raw(START + b"MSH|^~\\&|partial")
        assert proc.stop(timeout=60) == 0
        assert idle.closed_by_server(timeout=5)
        assert mid_frame.closed_by_server(timeout=5)


def test_large_message_travels_by_claim_check(mllp: MmBronze, module_dsn: str) -> None:
    message = oru("LARGE1", extra="y" * (3 * 1024 * 1024))  # above the 1 MiB inline limit
    with RawMllp(mllp.mllp_port) as conn:
        ack = parse_ack(conn.ask(message))
    assert (ack.code, ack.control_id) == ("AA", "LARGE1")
    rows = wait_rows(module_dsn, sha(message), 1)
    assert stored_bytes(rows[0][2]) == message


def open_descriptors(server: MmBronze) -> int:
    assert server.proc is not None
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


def test_faulty_connections_leave_nothing_open(mllp: MmBronze) -> None:
    still_serving(mllp, "BEFORE-LEAK1")
    before = open_descriptors(mllp)
    for n in range(30):
        sock = socket.create_connection(("127.0.0.1", mllp.mllp_port))
        sock.sendall([b"junk only", START + b"MSH|^~\\&|cut", START][n % 3])
        if n % 2:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    still_serving(mllp, "AFTER-LEAK1")
    # 30 leaked sockets would show; a little slack for the database pool growing meanwhile.
    wait_for(
        lambda: open_descriptors(mllp),
        lambda now: now <= before + 3,
        what=f"at most {before + 3} open descriptors",
    )
