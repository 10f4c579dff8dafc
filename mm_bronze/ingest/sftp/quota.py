"""How many files each user's home holds, without walking it on every upload.

A user's home is walked once, the first time the count is needed after the process starts
(so a restart always begins from what is on disk), and the spool then keeps the count as
files are created and removed. The count only decides refusals: when it says a home is
full, the home is walked again and the exact figure decides, so a count that ran high can
never refuse an upload that fits.
"""

from __future__ import annotations

from pathlib import Path

from mm_bronze.ingest.sftp.tree import count_files


class FileCounts:
    """Regular files per user below ``homes/<user>``, at most ``limit`` each."""

    def __init__(self, homes: Path, limit: int) -> None:
        self.homes = homes
        self._roots = (homes, homes.resolve())  # the jail hands out resolved paths
        self.limit = limit
        self._counts: dict[str, int] = {}

    def admits(self, user: str) -> bool:
        """True when one more file fits in ``user``'s home."""
        count = self._counts.get(user)
        if count is None or count >= self.limit:
            count = self._counts[user] = self._walk(user)
        return count < self.limit

    def created(self, local: Path) -> None:
        """A new regular file appeared at ``local``."""
        user = self._user(local)
        if user is not None and user in self._counts:
            self._counts[user] += 1

    def removed(self, local: Path) -> None:
        """The regular file at ``local`` is gone."""
        user = self._user(local)
        if user is not None and self._counts.get(user, 0) > 0:
            self._counts[user] -= 1

    def forget(self, user: str | None = None) -> None:
        """Walk ``user``'s home (every home without a user) again when next asked."""
        if user is None:
            self._counts.clear()
        else:
            self._counts.pop(user, None)

    def _walk(self, user: str) -> int:
        home = self.homes / user
        # Counted exactly, not stopped at the limit: the count is kept from here on.
        return count_files(home, 2**62) if home.is_dir() else 0

    def _user(self, local: Path) -> str | None:
        for root in self._roots:
            if local.is_relative_to(root):
                parts = local.relative_to(root).parts
                return parts[0] if len(parts) > 1 else None
        return None
