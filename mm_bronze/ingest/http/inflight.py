"""A cap on the request-body bytes that all in-flight HTTP requests hold in memory.

A body is held in memory up to the size where it is streamed on (to staging and to the
streaming validator): at most ``inline_limit`` plus the validator's 4 MiB buffer. Each
request takes its share as its chunks arrive and gives it back when it ends; a chunk that
would take the total past the cap refuses that request (``ServerBusy``), so slow or stalled
uploads cannot exhaust the server's memory together.
"""

from __future__ import annotations

from mm_bronze.errors import BronzeError


class ServerBusy(BronzeError):
    """In-flight request bodies already hold the configured maximum."""


class InflightBytes:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0

    def take(self, size: int) -> None:
        """Hold ``size`` more bytes; raises ``ServerBusy`` (holding nothing more) past the cap."""
        if self.total + size > self.limit:
            raise ServerBusy(
                f"the server holds {self.limit} bytes of request bodies already; retry later"
            )
        self.total += size

    def give(self, size: int) -> None:
        self.total -= size
