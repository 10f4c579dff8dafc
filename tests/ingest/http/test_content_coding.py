"""The gzip decoder of request bodies: any split of the stream decodes to the same bytes, in
bounded pieces; a stream cut short or followed by other bytes is refused."""

from __future__ import annotations

import gzip
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_bronze.budget import ByteBudget
from mm_bronze.ingest.http.content_coding import (
    PIECE,
    GzipDecoder,
    MalformedEncoding,
    UnsupportedEncoding,
    decoder_for,
)
from mm_bronze.ingest.http.deadlines import SharedDeadlines
from mm_bronze.ingest.http.ingest import body_chunks


def decode(chunks: list[bytes]) -> list[bytes]:
    decoder = GzipDecoder()
    out = [piece for chunk in chunks for piece in decoder.feed(chunk)]
    decoder.finish()
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@pytest.mark.parametrize(
    ("header", "decodes"),
    [(None, False), (b"identity", False), (b"", False), (b"gzip", True), (b"X-Gzip", True),
     (b" gzip , identity", True)],
)  # fmt: skip
def test_codings_the_door_reads(header: bytes | None, decodes: bool) -> None:
    assert (decoder_for(header) is not None) is decodes


@pytest.mark.parametrize("header", [b"br", b"deflate", b"zstd", b"compress", b"gzip, gzip"])
def test_other_codings_are_unsupported(header: bytes) -> None:
    with pytest.raises(UnsupportedEncoding, match=f"Content-Encoding {header.decode()} "):
        decoder_for(header)


def test_a_long_refused_coding_is_named_in_short() -> None:
    with pytest.raises(UnsupportedEncoding) as refused:
        decoder_for(b"x" * 10_000)
    assert len(str(refused.value)) < 200 and "xxx..." in str(refused.value)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=3000) | st.just(os.urandom(200_000)),
    members=st.integers(1, 3),
    cuts=st.lists(st.integers(0, 250_000), max_size=6),
)
def test_any_split_of_any_members_decodes_to_the_body(
    body: bytes, members: int, cuts: list[int]
) -> None:
    size = len(body) // members + 1
    packed = b"".join(gzip.compress(body[i : i + size]) for i in range(0, len(body), size))
    pieces = decode(split(packed, cuts))
    assert b"".join(pieces) == body
    assert all(0 < len(piece) <= PIECE for piece in pieces)


def test_a_member_that_ends_after_a_full_piece_is_followed_by_the_next() -> None:
    """zlib leaves the bytes after a member in ``unused_data`` and, when the member ended in
    a call made with the rest of a chunk, in ``unconsumed_tail`` too: read once only."""
    first, second = os.urandom(100_000), os.urandom(100_000)
    packed = gzip.compress(first) + gzip.compress(second)
    end = len(gzip.compress(first))
    # One chunk decodes to more than a piece before the first member ends inside it.
    chunks = [packed[:30_000], packed[30_000 : end + 7_000], packed[end + 7_000 :]]
    assert b"".join(decode(chunks)) == first + second


def test_a_thousandfold_expansion_comes_in_bounded_pieces() -> None:
    packed = gzip.compress(bytes(64 * 1024 * 1024))
    assert len(packed) < 128 * 1024
    total = 0
    decoder = GzipDecoder()
    for piece in decoder.feed(packed):  # one chunk holding the whole stream
        assert len(piece) <= PIECE
        total += len(piece)
    decoder.finish()
    assert total == 64 * 1024 * 1024


@settings(max_examples=100, deadline=None)
@given(body=st.binary(min_size=1, max_size=5000), cut=st.integers(1, 10_000))
def test_a_stream_cut_short_is_refused(body: bytes, cut: int) -> None:
    packed = gzip.compress(body)
    with pytest.raises(MalformedEncoding):
        decode([packed[: max(0, len(packed) - cut)] or b"\x1f"])


@pytest.mark.parametrize("after", [b"x", b"\x00" * 8, b"\x1f\x8b"])
def test_bytes_after_the_stream_are_refused(after: bytes) -> None:
    with pytest.raises(MalformedEncoding):
        decode([gzip.compress(b"payload") + after])


def test_no_body_is_no_stream_and_an_empty_body() -> None:
    assert decode([]) == [] and decode([b""]) == []


async def test_the_bytes_held_are_counted_decoded() -> None:
    """The in-flight budget counts what the door holds: decoded bytes, not compressed ones."""
    packed = gzip.compress(bytes(1024 * 1024))
    messages = [{"type": "http.request", "body": packed, "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0)

    budget = ByteBudget(10 * 1024 * 1024)
    chunks = body_chunks(
        receive,
        deadline=SharedDeadlines().deadline(10),
        inflight=budget,
        held_limit=512 * 1024,
        decoder=GzipDecoder(),
    )
    held = []
    async for piece in chunks:
        held.append(budget.total)
        assert len(piece) <= PIECE
    assert held[-1] == 512 * 1024  # up to the held limit, as for a body sent as is
    assert budget.total == 0
