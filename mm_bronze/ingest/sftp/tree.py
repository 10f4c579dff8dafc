"""Walking users' directories without recursion: their depth is theirs to choose."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def files_under(root: Path) -> Iterator[Path]:
    """Every regular file below ``root``, depth-first, with an explicit stack (no recursion,
    no symlink followed)."""
    stack = [root]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    yield Path(entry.path)


def count_files(root: Path, stop_at: int) -> int:
    """How many regular files lie below ``root``, counting no further than ``stop_at``."""
    count = 0
    stack = [root]
    while stack and count < stop_at:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    count += 1
    return count


def count_directories(root: Path, stop_at: int) -> int:
    """How many directories lie below ``root``, counting no further than ``stop_at``."""
    count = 0
    stack = [root]
    while stack and count < stop_at:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    count += 1
                    stack.append(Path(entry.path))
    return count
