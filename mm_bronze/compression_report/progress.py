"""A one-line progress bar on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
REDRAW_SECONDS = 0.1


class Progress:
    """``advance`` as work is done; ``close`` clears the line. Silent when not on a terminal
    (CI logs, pipes), so output stays clean there."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.total = max(total, 1)
        self.done = 0
        self.label = ""
        self._drawn = 0.0

    def advance(self, steps: int = 1, label: str | None = None) -> None:
        self.done = min(self.done + steps, self.total)
        if label is not None:
            self.label = label
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= REDRAW_SECONDS or self.done == self.total):
            self._drawn = now
            filled = WIDTH * self.done // self.total
            bar = "█" * filled + "·" * (WIDTH - filled)
            percent = 100 * self.done // self.total
            self.stream.write(f"\r{bar} {percent:3d}% {self.label:<24.24}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (WIDTH + 30) + "\r")
            self.stream.flush()
