"""What the attack tests share: raw HTTP exchanges and password SFTP sessions."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncssh

from tests.ingest.sftp.helpers import password_sftp
from tests.services.mm_bronze import MmBronze


def exchange(server: MmBronze, raw: bytes) -> bytes:
    """Send ``raw`` bytes to the HTTP door; everything it answers until it closes."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    return answer


@asynccontextmanager
async def sftp_session(
    server: MmBronze, user: str, password: str
) -> AsyncIterator[asyncssh.SFTPClient]:
    async with password_sftp(server.sftp_port, user, password) as sftp:
        yield sftp
