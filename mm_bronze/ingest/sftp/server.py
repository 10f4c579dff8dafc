"""The SSH server: authenticates users (password or public key) and serves only SFTP."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncssh
import structlog

from mm_bronze.ingest.sftp.hostkey import load_or_create_host_key
from mm_bronze.ingest.sftp.sftp_server import JailedSFTPServer
from mm_bronze.ingest.sftp.spool import Spool
from mm_bronze.ingest.sftp.throttle import LoginThrottle
from mm_bronze.ingest.sftp.users import UserStore, verify_password
from mm_bronze.metrics import DoorMetrics
from mm_bronze.metrics.door import UNAUTHORIZED, UNKNOWN
from mm_bronze.settings import SftpSettings

log = structlog.get_logger(__name__)

LOGIN_TIMEOUT = 30.0


class PartnerSSHServer(asyncssh.SSHServer):
    """Authentication for one connection: every login needs a password or a known key.

    After ``max_attempts`` failed logins the connection is closed; each failed password is
    answered after the throttle's growing delay.
    """

    def __init__(
        self,
        users: UserStore,
        connections: set[asyncssh.SSHServerConnection],
        throttle: LoginThrottle,
        max_attempts: int,
        metrics: DoorMetrics,
    ) -> None:
        self._users = users
        self._metrics = metrics
        self._connections = connections
        self._throttle = throttle
        self._max_attempts = max_attempts
        self._failures = 0
        self._conn: asyncssh.SSHServerConnection | None = None
        self._peer: str | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._connections.add(conn)
        peer = conn.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        user = self._users.get(username)
        ok = await asyncio.to_thread(
            verify_password, password, user.password_hash if user else None
        )
        if ok and user is not None:
            self._throttle.succeeded(username)
            return True
        delay = self._throttle.failed(username, self._peer)
        self._refused(username, "password")
        if delay:
            await asyncio.sleep(delay)
        return False

    def _refused(self, username: str, method: str) -> None:
        """Log a failed login; close the connection once it has failed too often."""
        self._failures += 1
        self._metrics.refused(UNKNOWN, UNAUTHORIZED)
        log.warning(
            "sftp login refused",
            user=username,
            method=method,
            peer=self._peer,
            failures=self._failures,
        )
        if self._failures >= self._max_attempts and self._conn is not None:
            log.warning(
                "sftp too many authentication failures, connection closed",
                user=username,
                peer=self._peer,
                failures=self._failures,
            )
            self._conn.disconnect(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication failures"
            )

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        user = self._users.get(username)
        offered = key.public_data
        for line in user.keys if user else []:
            try:
                if asyncssh.import_public_key(line).public_data == offered:
                    return True
            except (asyncssh.KeyImportError, ValueError):
                log.warning("unreadable public key in the users file", user=username)
        self._refused(username, "publickey")
        return False


async def serve_sftp(
    settings: SftpSettings,
    users: UserStore,
    spool: Spool,
    host_key_path: str,
    stop: asyncio.Event,
    listening: asyncio.Event,
) -> None:
    """Listen until ``stop`` is set; open sessions are then closed."""
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    host_key = load_or_create_host_key(Path(host_key_path))

    def sftp_factory(chan: asyncssh.SSHServerChannel) -> JailedSFTPServer:
        username = chan.get_extra_info("username")
        user = users.get(username)
        if user is None:
            raise asyncssh.SFTPPermissionDenied("unknown user")
        return JailedSFTPServer(chan, spool, user)

    connections: set[asyncssh.SSHServerConnection] = set()
    throttle = LoginThrottle(settings.auth_failure_delay)
    server = await asyncssh.listen(
        settings.host,
        settings.port,
        server_factory=lambda: PartnerSSHServer(
            users, connections, throttle, settings.max_auth_attempts, spool.metrics
        ),
        server_host_keys=[host_key],
        encryption_algs=settings.ciphers,
        sftp_factory=sftp_factory,
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        login_timeout=LOGIN_TIMEOUT,
    )
    listening.set()
    log.info("sftp listening", host=settings.host, port=settings.port)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        for conn in list(connections):
            conn.close()
        for conn in list(connections):
            await conn.wait_closed()
