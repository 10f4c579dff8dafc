"""Request bodies sent with a ``Content-Encoding``: gzip is decoded as it arrives.

The decoded bytes are the payload: they are what is validated, hashed, counted against
``http.max_body_bytes`` and stored. Each piece of decoded output is bounded (``PIECE``), so a
small compressed chunk that expands a thousandfold is never held whole, and the bytes held in
memory are counted as decoded bytes. A stream that is cut short, or is not gzip, is refused:
its decoded beginning may well be a valid payload, and accepting it would keep part of what
was sent as if it were all of it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

# The most one decoded piece holds.
PIECE = 64 * 1024
# What a refused coding may be replaced with (the ``Accept-Encoding`` of a 415).
ACCEPTED = "gzip, identity"
_GZIP = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate data
_NAMES = frozenset({"gzip", "x-gzip"})
_SHOWN = 64  # characters of a refused Content-Encoding named in the reason


class UnsupportedEncoding(Exception):
    """A content coding the door does not decode."""

    def __init__(self, codings: str) -> None:
        if len(codings) > _SHOWN:  # the header may be long: the reason and the log stay short
            codings = codings[:_SHOWN] + "..."
        super().__init__(
            f"Content-Encoding {codings} is not supported: send the body as is, or with gzip"
        )


class MalformedEncoding(Exception):
    """The body is not what its ``Content-Encoding`` declares."""


def decoder_for(header: bytes | None) -> GzipDecoder | None:
    """The decoder ``Content-Encoding: header`` needs, None for the body as is (no header, or
    only ``identity``); raises ``UnsupportedEncoding`` for any other coding, or for gzip
    applied more than once."""
    if header is None:
        return None
    codings = [name.strip().lower() for name in header.decode("latin-1").split(",")]
    applied = [name for name in codings if name and name != "identity"]
    if not applied:
        return None
    if len(applied) == 1 and applied[0] in _NAMES:
        return GzipDecoder()
    raise UnsupportedEncoding(", ".join(applied))


class GzipDecoder:
    """Decodes a gzip stream (RFC 1952) fed in chunks, members one after another as
    ``gzip`` itself reads them."""

    def __init__(self) -> None:
        self._member = zlib.decompressobj(_GZIP)
        self._fed = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``data``, in pieces of at most ``PIECE`` bytes."""
        if data:
            self._fed = True
        member = self._member
        while True:
            if member.eof:  # a member ended: what follows must be another one
                data = member.unused_data + data
                if not data:
                    return
                member = self._member = zlib.decompressobj(_GZIP)
            try:
                piece = member.decompress(data, PIECE)
            except zlib.error:
                raise MalformedEncoding("the body is not valid gzip") from None
            if piece:
                yield piece
            if member.eof:  # the rest is in ``unused_data`` (``unconsumed_tail`` may repeat it)
                data = b""
                continue
            data = member.unconsumed_tail
            # A full piece may leave decoded bytes inside zlib even once the input is used up.
            if not data and len(piece) < PIECE:
                return

    def finish(self) -> None:
        """Raises ``MalformedEncoding`` if the stream stopped inside a member."""
        if self._fed and not self._member.eof:
            raise MalformedEncoding("the body ends before the end of its gzip stream")
