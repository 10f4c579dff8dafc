"""Compression of stored objects: ``none``, ``gzip`` or ``zstd``, always streamed.

The output is deterministic (gzip without a timestamp), so two consumers that store the
same payload write the same bytes. The SHA-256 recorded in metadata is of the original
bytes, never of the compressed object.
"""

from __future__ import annotations

import zlib
from collections.abc import Generator, Iterable, Iterator
from typing import IO, Protocol, cast

import zstandard

GZIP_LEVEL = 6
ZSTD_LEVEL = 3
# Largest piece of original bytes that decoding produces at once.
DECODE_CHUNK = 1024 * 1024


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
    """The original bytes of an object stored with compression ``name``, streamed in pieces
    of at most ``DECODE_CHUNK`` bytes (a small compressed chunk may expand a lot)."""
    codec_for(name)
    if name == "none":
        yield from chunks
        return
    if name == "gzip":
        inflater = zlib.decompressobj(31)
        for chunk in chunks:
            while chunk:
                out = inflater.decompress(chunk, DECODE_CHUNK)
                if out:
                    yield out
                chunk = inflater.unconsumed_tail
        tail = inflater.flush()
        if tail:
            yield tail
        return
    reader = zstandard.ZstdDecompressor().read_to_iter(
        cast(IO[bytes], _ChunkReader(chunks)), read_size=DECODE_CHUNK, write_size=DECODE_CHUNK
    )
    for out in reader:
        if out:
            yield out


class _ChunkReader:
    """A file-like ``read`` over an iterator of chunks, for zstandard's streaming reader."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out
