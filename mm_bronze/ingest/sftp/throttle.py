"""Slows down password guessing: a growing delay after failed logins, per user and per address.

Every failed login counts against both the user name and the peer address; the next failure
for either is answered only after ``base * 2 ** (failures - 1)`` seconds (at most ``limit``).
Counts are forgotten ``forget_after`` seconds after the last failure, and a user's count is
cleared by a successful login. Memory is bounded: the oldest entries go first.
"""

from __future__ import annotations

import time
from collections import OrderedDict

MAX_ENTRIES = 10_000


class LoginThrottle:
    def __init__(self, base: float, limit: float = 10.0, forget_after: float = 900.0) -> None:
        self._base = base
        self._limit = limit
        self._forget_after = forget_after
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def _count(self, key: str, now: float) -> int:
        entry = self._failures.get(key)
        if entry is None or now - entry[1] > self._forget_after:
            return 0
        return entry[0]

    def failed(self, user: str, peer: str | None) -> float:
        """Count a failed login; return how long to wait before answering it."""
        now = time.monotonic()
        worst = 0
        for key in (f"user:{user}", f"peer:{peer}"):
            count = self._count(key, now) + 1
            self._failures[key] = (count, now)
            self._failures.move_to_end(key)
            worst = max(worst, count)
        while len(self._failures) > MAX_ENTRIES:
            self._failures.popitem(last=False)
        if self._base <= 0:
            return 0.0
        return float(min(self._limit, self._base * 2 ** (worst - 1)))

    def succeeded(self, user: str) -> None:
        self._failures.pop(f"user:{user}", None)
