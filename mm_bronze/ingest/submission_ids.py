"""Submission ids: random (version 4) UUIDs, drawn from a buffered pool of random bytes.

One ``os.urandom`` call fills the pool for ``POOL_IDS`` ids instead of one call per id; a
forked child starts with an empty pool, so it never repeats its parent's ids.
"""

from __future__ import annotations

import os

POOL_IDS = 256
_pool = b""
_offset = 0


def _empty_pool() -> None:
    global _pool, _offset
    _pool, _offset = b"", 0


os.register_at_fork(after_in_child=_empty_pool)


def new_submission_id() -> str:
    """A fresh version 4 UUID in its canonical form (``str(uuid.uuid4())``'s)."""
    global _pool, _offset
    if _offset >= len(_pool):
        _pool, _offset = os.urandom(16 * POOL_IDS), 0
    raw = bytearray(_pool[_offset : _offset + 16])
    _offset += 16
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
