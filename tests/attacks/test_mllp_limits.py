"""MLLP: bounded connections and buffered bytes; nothing echoed into an ACK breaks framing."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.ingest.mllp.helpers import START, RawMllp, oru, parse_ack
from tests.polling import wait_listening
from tests.services.mm_bronze import MmBronze

MAX_CONNECTIONS = 20
MAX_BUFFERED = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[MmBronze]:
    proc = MmBronze(
        tmp_path_factory.mktemp("mllp-limits"),
        "--mllp",
        "--consumers",
        env={
            "POSTGRES_DSN": module_dsn,
            "MM_BRONZE_MLLP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
            "MM_BRONZE_MLLP_MAX_BUFFERED_BYTES": str(MAX_BUFFERED),
        },
    )
    proc.start()
    wait_listening(proc.mllp_port)
    yield proc
    proc.stop()


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_framing_bytes_in_echoed_fields_do_not_break_the_ack(server: MmBronze) -> None:
    with RawMllp(server.mllp_port) as client:
        message = oru("CTRL\x1cID").replace(b"LAB^1.2.3^ISO", b"LAB\x1c^1.2.3^ISO")
        ack = client.ask(message)
        assert b"\x1c" not in ack and b"\x0b" not in ack
        parsed = parse_ack(ack)
        assert (parsed.code, parsed.control_id) == ("AA", "CTRLID")
        # The connection's framing is intact: the next message gets its own ACK.
        assert parse_ack(client.ask(oru("NEXT-1"))).control_id == "NEXT-1"


def test_connections_over_the_maximum_are_closed_at_once(server: MmBronze) -> None:
    held = [socket.create_connection(("127.0.0.1", server.mllp_port)) for _ in range(30)]
    try:
        time.sleep(0.5)
        closed = [closed_by_server(sock, 0.2) for sock in held]
        assert closed.count(True) == 10 and not any(closed[:MAX_CONNECTIONS]), closed
        assert "mllp connection refused: too many connections" in server.logs()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    with RawMllp(server.mllp_port) as client:
        assert parse_ack(client.ask(oru("AFTER-MAX"))).code == "AA"


def test_unfinished_frames_share_a_byte_cap(server: MmBronze) -> None:
    senders = []
    try:
        for _ in range(4):  # 4 x 3 MiB of frames without an end block, against an 8 MiB cap
            sock = socket.create_connection(("127.0.0.1", server.mllp_port))
            try:
                sock.sendall(START + b"MSH|^~\\&|" + b"x" * (3 * 1024 * 1024))
            except OSError:
                pass
            senders.append(sock)
            time.sleep(0.3)
        closed = [closed_by_server(sock, 1) for sock in senders]
        assert closed[:2] == [False, False] and any(closed[2:]), closed
        assert "unfinished frames of all connections over the cap" in server.logs()
        with RawMllp(server.mllp_port) as client:
            assert parse_ack(client.ask(oru("UNDER-CAP"))).code == "AA"
    finally:
        for sock in senders:
            sock.close()
