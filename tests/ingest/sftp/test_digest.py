"""An upload's SHA-256, hashed in pieces beside the loop, is the file's SHA-256."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from mm_bronze.ingest.sftp.digest import PIECE, Digest


@pytest.mark.parametrize("size", [0, 1, 32 * 1024, PIECE - 1, PIECE, PIECE + 1, 5 * PIECE + 12345])
async def test_the_digest_equals_hashlib_over_the_file(tmp_path: Path, size: int) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(os.urandom(size))
    data = path.read_bytes()
    rng = random.Random(size)
    digest = Digest()
    offset = 0
    while offset < len(data):  # writes of varying sizes, as SFTP clients send them
        step = rng.choice([1, 4096, 32 * 1024, 255 * 1024, PIECE + 7])
        if (pending := digest.update(data[offset : offset + step])) is not None:
            await pending
        offset += step
    assert await digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


async def test_updates_finish_at_once_unless_a_piece_waits_for_the_previous_one() -> None:
    digest = Digest(piece=8)
    assert digest.update(b"1234") is None  # gathered
    assert digest.update(b"5678") is None  # a full piece, handed to a thread at once
    assert digest.update(b"abcd") is None
    pending = digest.update(b"efgh")  # the first piece may still be hashing: wait for it
    if pending is not None:
        await pending
    assert digest.update(b"ij") is None
    assert await digest.hexdigest() == hashlib.sha256(b"12345678abcdefghij").hexdigest()
