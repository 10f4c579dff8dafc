"""MLLP framing: each message travels as ``<VT> message <FS><CR>`` (0x0B … 0x1C 0x0D).

``FrameReader`` turns a byte stream into frames. It never holds more than one frame (up to
the size limit) plus one read in memory, and counts what it holds against a ``ByteBudget``
shared by all connections (``BudgetExceeded`` when they hold too much together): bytes
outside frames are skipped and counted, a
frame abandoned by a new start block is dropped, an oversized frame is read to its end block
and discarded (``FrameTooLarge`` keeps only its head, for the acknowledgement), and a
connection that stays silent longer than the idle timeout ends with ``IdleTimeout``.
"""

from __future__ import annotations

import asyncio

from mm_bronze.budget import ByteBudget

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"
READ_SIZE = 64 * 1024
HEAD_BYTES = 64 * 1024  # what an oversized frame keeps: enough for its header segments


class FrameTooLarge(Exception):
    """A frame crossed the size limit; it was read to its end block and discarded."""

    def __init__(self, head: bytes, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the limit of {limit} bytes")
        self.head = head
        self.size = size
        self.limit = limit


class IdleTimeout(Exception):
    """No byte arrived within the idle timeout."""


def frame(message: bytes) -> bytes:
    """Wrap ``message`` in MLLP start and end blocks."""
    return START_BLOCK + message + END_BLOCK


class FrameReader:
    """Reads MLLP frames from ``reader``; counters say what was skipped."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        *,
        max_frame_bytes: int,
        idle_timeout: float,
        budget: ByteBudget | None = None,
    ) -> None:
        self._reader = reader
        self._buf = bytearray()
        self._max = max_frame_bytes
        self._idle = idle_timeout
        self._budget = budget
        self._body_held = 0
        self._held = 0  # what this reader holds in ``budget``
        self.junk_bytes = 0  # bytes outside any frame
        self.abandoned_frames = 0  # frames cut short by a new start block or by end of stream

    async def read_frame(self) -> bytes | None:
        """The next frame's content, or None at end of stream.

        Raises ``FrameTooLarge`` (the stream stays usable) and ``IdleTimeout``.
        """
        try:
            if not await self._skip_to_start():
                return None
            return await self._read_body()
        finally:
            self._body_held = 0
            self._account()

    def close(self) -> None:
        """Give back what this reader holds to the shared budget."""
        if self._budget is not None:
            self._budget.give(self._held)
        self._held = 0

    def _account(self) -> None:
        if self._budget is None:
            return
        holding = len(self._buf) + self._body_held
        if holding > self._held:
            self._budget.take(holding - self._held)
        else:
            self._budget.give(self._held - holding)
        self._held = holding

    async def _fill(self) -> bool:
        try:
            async with asyncio.timeout(self._idle):
                chunk = await self._reader.read(READ_SIZE)
        except TimeoutError:
            raise IdleTimeout() from None
        self._buf += chunk
        self._account()
        return bool(chunk)

    async def _skip_to_start(self) -> bool:
        while True:
            start = self._buf.find(START_BLOCK)
            if start >= 0:
                self.junk_bytes += start
                del self._buf[: start + 1]
                return True
            self.junk_bytes += len(self._buf)
            self._buf.clear()
            if not await self._fill():
                return False

    async def _read_body(self) -> bytes | None:
        body = bytearray()
        head = b""
        size = 0
        while True:
            end = self._buf.find(END_BLOCK)
            restart = self._buf.find(START_BLOCK, 0, end if end >= 0 else len(self._buf))
            if restart >= 0:
                # The sender started over without ending this frame: drop what we have.
                self.abandoned_frames += 1
                del self._buf[: restart + 1]
                body.clear()
                head, size = b"", 0
                continue
            # Keep a trailing FS back: its CR may be in the next read.
            take = end if end >= 0 else len(self._buf) - self._buf.endswith(b"\x1c")
            size += take
            if size <= self._max:
                if end >= 0 and not body:
                    # One copy (a bytearray slice would make a second one).
                    with memoryview(self._buf) as view:
                        data = bytes(view[:take])
                    del self._buf[: take + len(END_BLOCK)]
                    return data
                body += self._buf[:take]
                self._body_held = len(body)
            elif not head:
                head = bytes((body + self._buf[: HEAD_BYTES - len(body)])[:HEAD_BYTES])
                body.clear()
                self._body_held = len(head)
            del self._buf[:take]
            if end >= 0:
                del self._buf[: len(END_BLOCK)]
                if head:
                    raise FrameTooLarge(head, size, self._max)
                return bytes(body)
            if not await self._fill():
                self.abandoned_frames += 1
                return None
