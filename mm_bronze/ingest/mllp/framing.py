"""MLLP framing: each message travels as ``<VT> message <FS><CR>`` (0x0B … 0x1C 0x0D).

``FrameSplitter`` turns bytes, as they arrive, into frames; ``FrameReader`` does the same over
an ``asyncio.StreamReader``. Neither holds more than one frame (up to the size limit) plus
what arrived after it, and both count what they hold against a ``ByteBudget`` shared by all
connections (``BudgetExceeded`` when they hold too much together): bytes outside frames are
skipped and counted, a frame abandoned by a new start block is dropped, an oversized frame is
read to its end block and discarded (``FrameTooLarge`` keeps only its head, for the
acknowledgement), and a connection that stays silent longer than the idle timeout ends with
``IdleTimeout`` (``FrameReader``; the door keeps its own idle timer).
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


class FrameSplitter:
    """Frames out of bytes fed as they arrive (no I/O); counters say what was skipped."""

    def __init__(self, *, max_frame_bytes: int, budget: ByteBudget | None = None) -> None:
        self._buf = bytearray()
        self._max = max_frame_bytes
        self._budget = budget
        self._in_frame = False  # a start block was seen, its end block not yet
        self._body = bytearray()  # the frame so far, when it spans several feeds
        self._head = b""  # the head of an oversized frame
        self._size = 0  # the frame's size so far
        self._held = 0  # what this splitter holds in ``budget``
        self.junk_bytes = 0  # bytes outside any frame
        self.abandoned_frames = 0  # frames cut short by a new start block or by end of stream

    @property
    def buffered(self) -> int:
        """Bytes fed and not yet taken as (part of) a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Hold ``data``; raises ``BudgetExceeded`` when all connections would hold too much."""
        self._buf += data
        self._account()

    def next_frame(self) -> bytes | FrameTooLarge | None:
        """The next complete frame's content (``FrameTooLarge`` for an oversized one, as a
        value), or None until more bytes are fed."""
        buf = self._buf
        if not self._in_frame:
            start = buf.find(START_BLOCK)
            if start < 0:
                self.junk_bytes += len(buf)
                buf.clear()
                self._account()
                return None
            self.junk_bytes += start
            del buf[: start + 1]
            self._in_frame = True
        while True:
            end = buf.find(END_BLOCK)
            restart = buf.find(START_BLOCK, 0, end if end >= 0 else len(buf))
            if restart < 0:
                break
            # The sender started over without ending this frame: drop what we have.
            self.abandoned_frames += 1
            del buf[: restart + 1]
            self._body.clear()
            self._head, self._size = b"", 0
        # Keep a trailing FS back: its CR may be in the next feed.
        take = end if end >= 0 else len(buf) - buf.endswith(b"\x1c")
        self._size += take
        if self._size <= self._max:
            if end >= 0 and not self._body:
                # One copy (a bytearray slice would make a second one).
                with memoryview(buf) as view:
                    data = bytes(view[:take])
                del buf[: take + len(END_BLOCK)]
                self._in_frame, self._size = False, 0
                self._account()
                return data
            self._body += buf[:take]
        elif not self._head:
            self._head = bytes((self._body + buf[: HEAD_BYTES - len(self._body)])[:HEAD_BYTES])
            self._body = bytearray()
        del buf[:take]
        if end < 0:
            self._account()
            return None
        del buf[: len(END_BLOCK)]
        body, head, size = self._body, self._head, self._size
        self._in_frame, self._body, self._head, self._size = False, bytearray(), b"", 0
        self._account()
        if head:
            return FrameTooLarge(head, size, self._max)
        return bytes(body)

    def end(self) -> None:
        """The stream ended: an unfinished frame is abandoned."""
        if self._in_frame:
            self.abandoned_frames += 1
            self._in_frame, self._body, self._head, self._size = False, bytearray(), b"", 0
        self._buf.clear()
        self._account()

    def close(self) -> None:
        """Give back what this splitter holds to the shared budget."""
        if self._budget is not None:
            self._budget.give(self._held)
        self._held = 0

    def _account(self) -> None:
        if self._budget is None:
            return
        holding = len(self._buf) + len(self._body) + len(self._head)
        if holding > self._held:
            self._budget.take(holding - self._held)
        else:
            self._budget.give(self._held - holding)
        self._held = holding


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
        self._idle = idle_timeout
        self._frames = FrameSplitter(max_frame_bytes=max_frame_bytes, budget=budget)

    @property
    def junk_bytes(self) -> int:
        return self._frames.junk_bytes

    @property
    def abandoned_frames(self) -> int:
        return self._frames.abandoned_frames

    async def read_frame(self) -> bytes | None:
        """The next frame's content, or None at end of stream.

        Raises ``FrameTooLarge`` (the stream stays usable) and ``IdleTimeout``.
        """
        while (found := self._frames.next_frame()) is None:
            try:
                async with asyncio.timeout(self._idle):
                    chunk = await self._reader.read(READ_SIZE)
            except TimeoutError:
                raise IdleTimeout() from None
            if not chunk:
                self._frames.end()
                return None
            self._frames.feed(chunk)
        if isinstance(found, FrameTooLarge):
            raise found
        return found

    def close(self) -> None:
        """Give back what this reader holds to the shared budget."""
        self._frames.close()
