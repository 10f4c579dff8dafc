"""The SHA-256 of an upload, computed beside the event loop for large files.

Bytes are gathered into 4 MiB pieces; each full piece is hashed in a worker thread
(hashlib releases the GIL) while the loop goes on receiving and decrypting the next one.
At most one piece is hashed at a time, so pieces are hashed in order and at most two are
held. A file that ends before its first full piece is hashed inline: a thread hop would
cost a small file more than its hash.

``update`` returns at once (None) unless a full piece must wait for the previous one to be
hashed; only then does it return an awaitable. An SFTP write therefore costs no coroutine
and no loop round trip while the hashing keeps up.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable

PIECE = 4 * 1024 * 1024


class Digest:
    """Fed bytes in order; ``hexdigest`` waits for the last piece and returns the hash."""

    def __init__(self, piece: int = PIECE) -> None:
        self._piece = piece
        self._hash = hashlib.sha256()
        self._gathered: list[bytes] = []
        self._gathered_size = 0
        self._hashing: asyncio.Future[None] | None = None

    def update(self, data: bytes) -> Awaitable[None] | None:
        """Take ``data``; None when done, else an awaitable to await before the next update."""
        self._gathered.append(data)
        self._gathered_size += len(data)
        if self._gathered_size < self._piece:
            return None
        hashing = self._hashing
        if hashing is not None and not hashing.done():
            return self._next_piece()
        self._hashing = None
        if hashing is not None:
            hashing.result()  # raises what the hashing thread raised
        self._start_piece()
        return None

    async def _next_piece(self) -> None:
        await self._wait()
        self._start_piece()

    def _start_piece(self) -> None:
        piece, self._gathered, self._gathered_size = self._gathered, [], 0
        self._hashing = asyncio.ensure_future(asyncio.to_thread(_update, self._hash, piece))

    async def hexdigest(self) -> str:
        await self._wait()
        for data in self._gathered:
            self._hash.update(data)
        self._gathered, self._gathered_size = [], 0
        return self._hash.hexdigest()

    async def close(self) -> None:
        """Wait for a piece being hashed (an upload dropped mid-way leaves none running)."""
        self._gathered, self._gathered_size = [], 0
        await self._wait()

    async def _wait(self) -> None:
        hashing, self._hashing = self._hashing, None
        if hashing is not None:
            await hashing


def _update(hash: hashlib._Hash, piece: list[bytes]) -> None:
    # One update for the whole piece: hashlib frees the GIL once for its length, where one
    # update per 32 KiB write took the GIL back from the loop 32 times per piece.
    hash.update(b"".join(piece))
