"""A cap on bytes that many connections hold in memory together (request bodies at the HTTP
door, unfinished frames at the MLLP door).

Each holder takes bytes as they arrive and gives them back when it lets them go; taking
more than the cap leaves raises ``BudgetExceeded`` and takes nothing, so the door can refuse
that one holder while the others go on.
"""

from __future__ import annotations

from mm_bronze.errors import BronzeError


class BudgetExceeded(BronzeError):
    """Holding more would take the total past the cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} bytes are held already")
        self.limit = limit


class ByteBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0

    def take(self, size: int) -> None:
        """Hold ``size`` more bytes; raises ``BudgetExceeded`` (taking nothing) past the cap."""
        if self.total + size > self.limit:
            raise BudgetExceeded(self.limit)
        self.total += size

    def give(self, size: int) -> None:
        self.total -= size
