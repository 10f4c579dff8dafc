"""The MLLP listener: an asyncio server, one task per connection, messages answered in order.

Each connection reads a frame, hands it to the receiver, writes the ACK, then reads the next:
a sender's messages reach the bus in the order it sent them, and many connections are served
at once. On shutdown the listener stops accepting, idle connections are closed at once and
connections with a message in hand finish it (ACK included) first.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass, field

import structlog
from prometheus_client import Gauge

from mm_bronze.budget import BudgetExceeded, ByteBudget
from mm_bronze.ingest.mllp.access import PeerPolicy
from mm_bronze.ingest.mllp.framing import FrameReader, FrameTooLarge, IdleTimeout, frame
from mm_bronze.ingest.mllp.receiver import MessageReceiver, Peer
from mm_bronze.settings import MllpSettings

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE = 30.0
TLS_HANDSHAKE_TIMEOUT = 30.0


@dataclass(eq=False)
class _Connection:
    task: asyncio.Task[None] | None
    busy: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


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
        self._settings = settings
        self._gauge = connections  # open connections, for metrics
        self._receiver = receiver
        self._policy = policy
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._closing = False
        self._budget = ByteBudget(settings.max_buffered_bytes)

    async def open(self) -> None:
        """Start listening; raises ``OSError`` when the address cannot be bound."""
        self._closing = False
        self._server = await asyncio.start_server(
            self._serve_connection,
            self._settings.host,
            self._settings.port,
            ssl=self._ssl,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self._ssl else None,
        )

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, close idle connections, let busy ones finish; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._closing = True
        server.close()
        for conn in list(self._connections):
            if not conn.busy and conn.task is not None:
                conn.task.cancel()
        waits = [asyncio.create_task(c.done.wait()) for c in list(self._connections)]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=grace)
            for wait in pending:
                wait.cancel()
            for conn in list(self._connections):
                if conn.task is not None:
                    conn.task.cancel()
        await server.wait_closed()

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then close."""
        await self.open()
        try:
            await stop.wait()
        finally:
            await self.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peername = writer.get_extra_info("peername") or ("unknown", 0)
        address, port = str(peername[0]), int(peername[1])
        if len(self._connections) >= self._settings.max_connections:
            log.warning(
                "mllp connection refused: too many connections",
                peer=address,
                port=port,
                max_connections=self._settings.max_connections,
            )
            writer.close()
            return
        conn = _Connection(asyncio.current_task())
        self._connections.add(conn)
        if self._gauge is not None:
            self._gauge.inc()
        frames = FrameReader(
            reader,
            max_frame_bytes=self._settings.max_frame_bytes,
            idle_timeout=self._settings.idle_timeout,
            budget=self._budget,
        )
        messages = 0
        transport = writer.transport
        try:
            peer = self._admit(address, port, writer)
            if peer is None:
                return
            log.info("mllp connection opened", peer=address, port=port)
            while not self._closing:
                try:
                    message = await frames.read_frame()
                except FrameTooLarge as exc:
                    conn.busy = True
                    reply = self._receiver.oversized(exc, peer)
                else:
                    if message is None:
                        break
                    conn.busy = True
                    reply = await self._receiver.receive(message, peer)
                messages += 1
                if reply is not None:
                    # Straight to the transport: StreamWriter.write adds nothing to it.
                    transport.write(frame(reply))
                    if transport.get_write_buffer_size():  # the socket did not take it all
                        async with asyncio.timeout(self._settings.idle_timeout):
                            await writer.drain()
                conn.busy = False
        except IdleTimeout:
            log.info("mllp connection idle, closing", peer=address, port=port)
        except BudgetExceeded as exc:
            log.warning(
                "mllp connection closed: unfinished frames of all connections over the cap",
                peer=address,
                port=port,
                max_buffered_bytes=exc.limit,
            )
        except (ConnectionError, TimeoutError, ssl.SSLError) as exc:
            log.info("mllp connection lost", peer=address, port=port, error=type(exc).__name__)
        except asyncio.CancelledError:
            pass  # shutdown closed an idle connection
        except Exception as exc:
            log.exception("mllp connection failed", peer=address, port=port, error=repr(exc))
        finally:
            frames.close()
            self._connections.discard(conn)
            if self._gauge is not None:
                self._gauge.dec()
            conn.done.set()
            writer.close()
            if frames.junk_bytes or frames.abandoned_frames:
                log.warning(
                    "mllp framing faults",
                    peer=address,
                    port=port,
                    junk_bytes=frames.junk_bytes,
                    abandoned_frames=frames.abandoned_frames,
                )
            log.info("mllp connection closed", peer=address, port=port, messages=messages)

    def _admit(self, address: str, port: int, writer: asyncio.StreamWriter) -> Peer | None:
        if not self._policy.allows_address(address):
            log.warning("mllp peer refused: address not allowed", peer=address, port=port)
            return None
        fingerprint: str | None = None
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            fingerprint = hashlib.sha256(der).hexdigest() if der else None
        if not self._policy.allows_certificate(fingerprint):
            log.warning("mllp peer refused: client certificate not allowed", peer=address)
            return None
        return Peer(address, port, fingerprint)


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
