"""Free space on the filesystem where the data directory lies."""

from __future__ import annotations

import shutil
from pathlib import Path

from mm_bronze.doctor.check import Check, failed, passed
from mm_bronze.settings import Settings

NAME = "free space"
DEFAULT_MIN_FREE = 1024**3  # bytes; `mm-bronze doctor --min-free` changes it
GiB = 1024**3


def check_free_space(settings: Settings, min_free: int = DEFAULT_MIN_FREE) -> Check:
    path = _existing(settings.data_path)
    usage = shutil.disk_usage(path)
    shown = f"{usage.free / GiB:.1f} GiB free of {usage.total / GiB:.1f} GiB at {path}"
    if usage.free < min_free:
        return failed(
            NAME,
            f"{shown}, below {min_free / GiB:.1f} GiB",
            "free space there or move the data directory (embedded PostgreSQL, SFTP spool, "
            "local storage) to a larger disk; payloads are refused once it is full",
        )
    return passed(NAME, shown)


def _existing(path: Path) -> Path:
    """``path``, or its nearest existing parent when the data directory is not created yet."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
