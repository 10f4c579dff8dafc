"""Reading a stored object back: the original bytes, in bounded pieces for every codec."""

from __future__ import annotations

import os

import pytest

from mm_bronze.storage.compression import CODECS, DECODE_CHUNK, decode

READ = 4 * 1024 * 1024  # the size the store reads objects in


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize(
    "data",
    [b"", b"MSH|^~\\&|", os.urandom(3_000_000), b"\0" * 40_000_000],
    ids=lambda d: f"{len(d)}B",
)
def test_decode_restores_the_bytes_in_bounded_pieces(codec: str, data: bytes) -> None:
    stored = b"".join(CODECS[codec].encode(chunked(data, READ)))
    pieces = list(decode(codec, chunked(stored, READ)))
    assert b"".join(pieces) == data
    if codec != "none":
        # 40 MB of zeros compress into one read; they must not come back as one piece.
        assert max((len(p) for p in pieces), default=0) <= DECODE_CHUNK
