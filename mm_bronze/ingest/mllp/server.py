"""The MLLP listener: an asyncio server, one ``MllpConnection`` per connection.

Each connection answers its messages in order, one ACK per message (see ``connection``): a
sender's messages reach the bus in the order it sent them, and many connections are served
at once. On shutdown the listener stops accepting, idle connections are closed at once and
connections with a message in hand finish it (ACK included) first.
"""

from __future__ import annotations

import asyncio
import ssl

from prometheus_client import Gauge

from mm_bronze.budget import ByteBudget
from mm_bronze.ingest.mllp.access import PeerPolicy
from mm_bronze.ingest.mllp.connection import MllpConnection
from mm_bronze.ingest.mllp.receiver import MessageReceiver
from mm_bronze.settings import MllpSettings

SHUTDOWN_GRACE = 30.0
TLS_HANDSHAKE_TIMEOUT = 30.0


class MllpServer:
    """Serves MLLP on ``settings.host:settings.port`` (TLS when ``ssl_context`` is given)."""

    def __init__(
        self,
        settings: MllpSettings,
        receiver: MessageReceiver,
        *,
        policy: PeerPolicy,
        ssl_context: ssl.SSLContext | None = None,
        connections: Gauge | None = None,
    ) -> None:
        self.settings = settings
        self.receiver = receiver
        self.policy = policy
        self.budget = ByteBudget(settings.max_buffered_bytes)
        self.closing = False
        self._gauge = connections  # open connections, for metrics
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._connections: set[MllpConnection] = set()

    async def open(self) -> None:
        """Start listening; raises ``OSError`` when the address cannot be bound."""
        self.closing = False
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: MllpConnection(self),
            self.settings.host,
            self.settings.port,
            ssl=self._ssl,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self._ssl else None,
            reuse_port=self.settings.reuse_port or None,
        )

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    def register(self, conn: MllpConnection) -> bool:
        """Count a new connection in; False when there are too many already."""
        if len(self._connections) >= self.settings.max_connections:
            return False
        self._connections.add(conn)
        if self._gauge is not None:
            self._gauge.inc()
        return True

    def unregister(self, conn: MllpConnection) -> None:
        self._connections.discard(conn)
        if self._gauge is not None:
            self._gauge.dec()

    async def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, close idle connections, let busy ones finish; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self.closing = True
        server.close()
        for conn in list(self._connections):
            if not conn.busy:
                conn.close()
        waits = [conn.done for conn in list(self._connections)]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=grace)
            for conn in list(self._connections):
                conn.abort()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await server.wait_closed()

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then close."""
        await self.open()
        try:
            await stop.wait()
        finally:
            await self.close()


async def serve_mllp(
    settings: MllpSettings,
    receiver: MessageReceiver,
    stop: asyncio.Event,
    *,
    policy: PeerPolicy,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve MLLP until ``stop`` is set."""
    server = MllpServer(settings, receiver, policy=policy, ssl_context=ssl_context)
    await server.serve(stop)
