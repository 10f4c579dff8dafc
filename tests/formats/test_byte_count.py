"""``byte_count.count`` agrees with ``bytes.count`` on both sides of its size threshold."""

from __future__ import annotations

import pytest

from mm_bronze.formats import byte_count


@pytest.mark.parametrize(
    "size",
    [0, 1, byte_count.LARGE - 1, byte_count.LARGE, byte_count.SLICE + 1, 3 * byte_count.SLICE],
)
def test_count_matches_bytes_count(size: int) -> None:
    blob = bytes(range(256)) * (size // 256 + 1)
    blob = blob[:size]
    for byte in (0, ord(":"), 255):
        assert byte_count.count(blob, byte) == blob.count(byte)
        assert byte_count.count(bytearray(blob), byte) == blob.count(byte)


def test_count_of_a_byte_throughout() -> None:
    blob = b":" * (byte_count.LARGE * 3 + 7)
    assert byte_count.count(blob, ord(":")) == len(blob)
    assert byte_count.count(blob, ord(";")) == 0
