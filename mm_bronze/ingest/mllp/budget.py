"""A cap on the bytes that all MLLP connections together hold while frames arrive."""

from __future__ import annotations


class BufferBudgetExceeded(Exception):
    """Holding more would take the connections past the shared cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"MLLP connections already hold {limit} bytes of unfinished frames")
        self.limit = limit


class BufferBudget:
    """Each reader reports what it holds; the sum stays at most ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._held: dict[int, int] = {}

    def hold(self, reader: object, size: int) -> None:
        """Record that ``reader`` now holds ``size`` bytes; raises ``BufferBudgetExceeded``
        (recording nothing for it) when that would cross the limit."""
        key = id(reader)
        before = self._held.get(key, 0)
        if size > before and self.total - before + size > self.limit:
            self.release(reader)
            raise BufferBudgetExceeded(self.limit)
        self.total += size - before
        if size:
            self._held[key] = size
        else:
            self._held.pop(key, None)

    def release(self, reader: object) -> None:
        self.total -= self._held.pop(id(reader), 0)
