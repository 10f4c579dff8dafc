"""Walking users' directories without recursion: their depth is theirs to choose."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def entries_under(root: Path) -> Iterator[os.DirEntry[str]]:
    """Every entry below ``root``, depth-first, with an explicit stack (no recursion, no
    symlink followed)."""
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                yield entry


def files_under(root: Path) -> Iterator[Path]:
    """Every regular file below ``root``."""
    for entry in entries_under(root):
        if entry.is_file(follow_symlinks=False):
            yield Path(entry.path)


def count_files(root: Path, stop_at: int) -> int:
    """How many regular files lie below ``root``, counting no further than ``stop_at``."""
    return _count(root, stop_at, directories=False)


def count_directories(root: Path, stop_at: int) -> int:
    """How many directories lie below ``root``, counting no further than ``stop_at``."""
    return _count(root, stop_at, directories=True)


def _count(root: Path, stop_at: int, *, directories: bool) -> int:
    count = 0
    for entry in entries_under(root):
        if (
            entry.is_dir(follow_symlinks=False)
            if directories
            else entry.is_file(follow_symlinks=False)
        ):
            count += 1
            if count >= stop_at:
                break
    return count
