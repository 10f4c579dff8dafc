"""How ``mm-bronze validate`` reports: the running tally, the summary and a progress bar."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

MB = 1_000_000


@dataclass
class Tally:
    """Counts of files by outcome, and the bytes of the files checked."""

    files: int = 0
    valid: int = 0
    invalid: int = 0
    skipped: int = 0
    checked_bytes: int = 0

    @property
    def checked(self) -> int:
        return self.valid + self.invalid

    def add(self, result: dict[str, Any]) -> None:
        self.files += 1
        status = result["status"]
        setattr(self, status, getattr(self, status) + 1)
        if status != "skipped":
            self.checked_bytes += result["size"]

    def summary(self, seconds: float, workers: int) -> dict[str, Any]:
        rate = self.checked_bytes / MB / seconds if seconds > 0 else 0.0
        return {
            "files": self.files,
            "valid": self.valid,
            "invalid": self.invalid,
            "skipped": self.skipped,
            "bytes": self.checked_bytes,
            "seconds": round(seconds, 3),
            "mb_per_s": round(rate, 1),
            "workers": workers,
        }


def summary_of(summary: dict[str, Any]) -> str:
    """The closing line: files, valid, invalid, skipped, MB and MB/s."""
    return (
        f"{summary['files']} files: {summary['valid']} valid, {summary['invalid']} invalid, "
        f"{summary['skipped']} skipped; {summary['bytes'] / MB:.1f} MB in "
        f"{summary['seconds']:.2f} s ({summary['mb_per_s']:.1f} MB/s, "
        f"{summary['workers']} process{'es' if summary['workers'] > 1 else ''})"
    )


def issue_line(issue: dict[str, str]) -> str:
    where = issue.get("location") or issue.get("expression")
    return f"{issue['severity']}: {issue['diagnostics']}" + (f" [{where}]" if where else "")


class Progress:
    """A one-line progress bar on a terminal (stderr), redrawn at most ten times a second."""

    WIDTH = 30

    def __init__(self, files: int, total: int, *, enabled: bool, out: TextIO = sys.stderr):
        self._files = files
        self._total = max(total, 1)
        self._enabled = enabled
        self._out = out
        self._done = 0
        self._bytes = 0
        self._drawn = 0.0
        self._shown = False
        self._started = time.perf_counter()

    def advance(self, size: int) -> None:
        self._done += 1
        self._bytes += size
        now = time.perf_counter()
        if not self._enabled or now - self._drawn < 0.1:
            return
        self._drawn = now
        filled = int(self.WIDTH * self._bytes / self._total)
        rate = self._bytes / MB / max(now - self._started, 1e-9)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self._out.write(f"\r[{bar}] {self._done}/{self._files} files, {rate:.1f} MB/s")
        self._out.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._out.write("\r\x1b[K")
            self._out.flush()
            self._shown = False
