"""One MLLP connection as an asyncio ``Protocol``: bytes in, frames out, one ACK per message.

``data_received`` splits frames as bytes arrive; the first complete frame starts a task that
answers it and every frame already waiting behind it, in order, then ends (one task per
burst, not per message). While that task works, bytes keep arriving up to ``HIGH_WATER``,
then reading pauses until it is done. There is no timer per read: one idle timer per
connection notes the time of the last byte or answer and re-arms itself lazily, closing the
connection when it has waited for bytes longer than the idle timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from typing import TYPE_CHECKING, cast

import structlog

from mm_bronze.budget import BudgetExceeded
from mm_bronze.ingest.mllp.framing import FrameSplitter, FrameTooLarge, frame
from mm_bronze.ingest.mllp.receiver import Peer

if TYPE_CHECKING:
    from mm_bronze.ingest.mllp.server import MllpServer

log = structlog.get_logger("mm_bronze.ingest.mllp.server")

HIGH_WATER = 256 * 1024  # bytes read ahead of the message being answered


class MllpConnection(asyncio.Protocol):
    """Serves one sender; ``done`` is set once the connection is closed and cleaned up."""

    def __init__(self, server: MllpServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._frames: FrameSplitter | None = None
        self._peer: Peer | None = None
        self._address, self._port = "unknown", 0
        self._worker: asyncio.Task[None] | None = None
        self._first: bytes | FrameTooLarge | None = None  # the frame that started the worker
        self._timer: asyncio.TimerHandle | None = None
        self._last_active = 0.0  # loop time of the last byte received or answer sent
        self._reading_paused = False
        self._writing_paused: asyncio.Future[None] | None = None
        self._tls = False
        self._eof = False
        self._lost = False
        self._closing = False  # this side decided to close
        self.messages = 0
        self.done = self._loop.create_future()

    @property
    def busy(self) -> bool:
        """A message is being answered."""
        return self._worker is not None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not an ``asyncio.Transport`` subclass, but behaves as one.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        server = self._server
        peername = transport.get_extra_info("peername") or ("unknown", 0)
        self._address, self._port = str(peername[0]), int(peername[1])
        if server.closing:
            self._refuse()
            return
        if not server.register(self):
            log.warning(
                "mllp connection refused: too many connections",
                peer=self._address,
                port=self._port,
                max_connections=server.settings.max_connections,
            )
            self._refuse()
            return
        self._frames = FrameSplitter(
            max_frame_bytes=server.settings.max_frame_bytes, budget=server.budget
        )
        self._peer = self._admit(transport)
        if self._peer is None:
            self._refuse()
            return
        log.info("mllp connection opened", peer=self._address, port=self._port)
        self._last_active = self._loop.time()
        self._timer = self._loop.call_at(
            self._last_active + server.settings.idle_timeout, self._check_idle
        )

    def data_received(self, data: bytes) -> None:
        frames = self._frames
        if frames is None or self._closing:
            return
        self._last_active = self._loop.time()
        try:
            frames.feed(data)
        except BudgetExceeded as exc:
            log.warning(
                "mllp connection closed: unfinished frames of all connections over the cap",
                peer=self._address,
                port=self._port,
                max_buffered_bytes=exc.limit,
            )
            self.close()
            return
        if self._worker is not None:
            if frames.buffered >= HIGH_WATER and not self._reading_paused:
                self._reading_paused = True
                assert self._transport is not None
                self._transport.pause_reading()
            return
        found = frames.next_frame()
        if found is not None:
            self._first = found
            self._worker = self._loop.create_task(self._answer_all())

    def eof_received(self) -> bool:
        self._eof = True
        if self._worker is None:
            self._end_of_stream()
        # Keep the transport open: ACKs of messages in hand still go out (TLS cannot).
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is not None and not self._closing:
            self._log_lost(exc)
        waiter, self._writing_paused = self._writing_paused, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("connection lost"))
        if self._worker is None:
            self._finish()

    def pause_writing(self) -> None:
        if self._writing_paused is None:
            self._writing_paused = self._loop.create_future()

    def resume_writing(self) -> None:
        waiter, self._writing_paused = self._writing_paused, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # the door's side

    def close(self) -> None:
        """Close now (a message in hand is abandoned; the server waits for busy ones first)."""
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def _refuse(self) -> None:
        # Closing at once, before the loop has read what the sender sent already, would
        # answer with a reset: the sender gets a plain end of stream instead.
        self._closing = True
        assert self._transport is not None
        self._loop.call_soon(self._transport.close)

    def abort(self) -> None:
        """Close at once, cancelling the answer in progress (shutdown after the grace)."""
        if self._worker is not None:
            self._worker.cancel()
        self.close()

    async def _answer_all(self) -> None:
        server = self._server
        frames = self._frames
        transport = self._transport
        assert frames is not None and transport is not None and self._peer is not None
        found, self._first = self._first, None
        try:
            while found is not None:
                if isinstance(found, FrameTooLarge):
                    reply = server.receiver.oversized(found, self._peer)
                else:
                    reply = await server.receiver.receive(found, self._peer)
                self.messages += 1
                if reply is not None and not (self._lost or self._closing):
                    transport.write(frame(reply))
                    if self._writing_paused is not None:  # the socket did not take it all
                        async with asyncio.timeout(server.settings.idle_timeout):
                            await self._writing_paused
                if server.closing or self._lost or self._closing:
                    break
                found = frames.next_frame()
        except (ConnectionError, TimeoutError, ssl.SSLError) as exc:
            self._log_lost(exc)
            self.close()
        except asyncio.CancelledError:
            self.close()  # shutdown's grace ran out
        except Exception as exc:
            log.exception(
                "mllp connection failed", peer=self._address, port=self._port, error=repr(exc)
            )
            self.close()
        finally:
            self._worker = None
            self._last_active = self._loop.time()
        if self._lost:
            self._finish()
        elif server.closing:
            self.close()
        elif self._eof:
            self._end_of_stream()
        elif self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _end_of_stream(self) -> None:
        if self._frames is not None:
            self._frames.end()
        self.close()

    def _check_idle(self) -> None:
        self._timer = None
        if self._closing or self._lost:
            return
        timeout = self._server.settings.idle_timeout
        deadline = self._last_active + timeout
        if self._worker is None and self._loop.time() >= deadline:
            log.info("mllp connection idle, closing", peer=self._address, port=self._port)
            self.close()
            return
        if self._worker is not None:
            deadline = self._loop.time() + timeout
        self._timer = self._loop.call_at(deadline, self._check_idle)

    def _log_lost(self, exc: BaseException) -> None:
        error = type(exc).__name__
        log.info("mllp connection lost", peer=self._address, port=self._port, error=error)

    def _finish(self) -> None:
        if self.done.done():
            return
        self.done.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        frames = self._frames
        if frames is None:  # refused before it was served: never registered
            return
        frames.close()
        self._server.unregister(self)
        if frames.junk_bytes or frames.abandoned_frames:
            log.warning(
                "mllp framing faults",
                peer=self._address,
                port=self._port,
                junk_bytes=frames.junk_bytes,
                abandoned_frames=frames.abandoned_frames,
            )
        log.info(
            "mllp connection closed", peer=self._address, port=self._port, messages=self.messages
        )

    def _admit(self, transport: asyncio.Transport) -> Peer | None:
        policy = self._server.policy
        address, port = self._address, self._port
        if not policy.allows_address(address):
            log.warning("mllp peer refused: address not allowed", peer=address, port=port)
            return None
        fingerprint: str | None = None
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._tls = True
            der = ssl_object.getpeercert(binary_form=True)
            fingerprint = hashlib.sha256(der).hexdigest() if der else None
        if not policy.allows_certificate(fingerprint):
            log.warning("mllp peer refused: client certificate not allowed", peer=address)
            return None
        return Peer(address, port, fingerprint)
