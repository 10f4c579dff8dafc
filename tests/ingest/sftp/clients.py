"""Open SFTP client sessions against the test door."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncssh

from tests.ingest.sftp.conftest import PASSWORDS, SftpDoor


@asynccontextmanager
async def sftp_session(
    door: SftpDoor, user: str, password: str | None = None, **options: Any
) -> AsyncIterator[tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]]:
    """An asyncssh SFTP session, password authentication; ``options`` go to
    ``asyncssh.connect`` (e.g. ``encryption_algs``)."""
    async with asyncssh.connect(
        "127.0.0.1",
        door.port,
        username=user,
        password=password or PASSWORDS[user],
        known_hosts=None,
        client_keys=None,
        agent_path=None,
        **options,
    ) as conn:
        async with conn.start_sftp_client() as sftp:
            yield conn, sftp
