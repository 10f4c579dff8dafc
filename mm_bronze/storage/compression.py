"""Compression of stored objects: ``none``, ``gzip`` or ``zstd``, always streamed.

The output is deterministic (gzip without a timestamp), so two consumers that store the
same payload write the same bytes. The SHA-256 recorded in metadata is of the original
bytes, never of the compressed object.
"""

from __future__ import annotations

import zlib
from collections.abc import Generator, Iterable, Iterator
from typing import Protocol

import zstandard

GZIP_LEVEL = 6
ZSTD_LEVEL = 3


class Compressor(Protocol):
    """A streaming compressor: ``compress`` chunks in order, then ``flush`` once."""

    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class Codec:
    """How objects are compressed: the name recorded in metadata and the key suffix."""

    def __init__(self, name: str, suffix: str) -> None:
        self.name = name
        self.suffix = suffix

    def compressor(self) -> Compressor | None:
        """A fresh compressor, or None when objects are stored as they are."""
        if self.name == "gzip":
            # wbits 31: a gzip container; zlib writes mtime 0, so the output is deterministic.
            return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        if self.name == "zstd":
            return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compressobj()
        return None

    def encode(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The compressed form of ``chunks``, produced as they are read."""
        compressor = self.compressor()
        if compressor is None:
            yield from chunks
            return
        for chunk in chunks:
            out = compressor.compress(chunk)
            if out:
                yield out
        tail = compressor.flush()
        if tail:
            yield tail

    def encode_bytes(self, data: bytes) -> bytes:
        return b"".join(self.encode((data,)))

    def __repr__(self) -> str:
        return f"Codec({self.name!r})"


CODECS: dict[str, Codec] = {
    "none": Codec("none", ""),
    "gzip": Codec("gzip", ".gz"),
    "zstd": Codec("zstd", ".zst"),
}


def codec_for(name: str) -> Codec:
    """The codec called ``name``; raises ``ValueError`` for an unknown one."""
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown compression {name!r}; use one of {', '.join(CODECS)}") from None


def decode(name: str, chunks: Iterable[bytes]) -> Generator[bytes, None, None]:
    """The original bytes of an object stored with compression ``name``, streamed."""
    codec_for(name)
    if name == "none":
        yield from chunks
        return
    if name == "gzip":
        inflater = zlib.decompressobj(31)
        for chunk in chunks:
            yield inflater.decompress(chunk)
        yield inflater.flush()
        return
    reader = zstandard.ZstdDecompressor().decompressobj()
    for chunk in chunks:
        yield reader.decompress(chunk)
