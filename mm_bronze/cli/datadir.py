"""Only ``serve`` and ``migrate`` create a data directory; other commands use an existing one.

Otherwise ``mm-bronze status`` run from another directory would start a new, empty embedded
PostgreSQL under ``./data`` and answer "no submission", and ``clients add`` or ``users add``
would quietly write to the wrong place.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mm_bronze.errors import ConfigError
from mm_bronze.settings import Settings

CREATES_DATA_DIR = ("serve", "migrate")


class NoDataDir(ConfigError):
    """The data directory a command needs does not exist."""


def require_data_dir(args: argparse.Namespace, settings: Settings) -> None:
    """Raise ``NoDataDir`` when the command needs a data directory that is not there."""
    if args.command in CREATES_DATA_DIR:
        return
    data = settings.data_path
    if args.command == "users":
        needed = data if not settings.sftp.users_file else None
        if args.action == "add-key" and not args.out:
            needed = data
    else:  # the database: embedded under the data directory unless postgres.dsn is set
        needed = None if settings.postgres.dsn else data / "pg"
    if needed is None or needed.is_dir():
        return
    what = "data directory" if needed == data else "embedded database"
    raise NoDataDir(
        f"no {what} at {needed} ({_origin(args, settings)}): point to the one `mm-bronze "
        "serve` uses with --data-dir DIR, MM_BRONZE_DATA_DIR or data_dir in a --config file "
        "(only `serve` and `migrate` create one)"
    )


def _origin(args: argparse.Namespace, settings: Settings) -> str:
    """Where the data directory's name came from, so the user knows what to change."""
    if args.data_dir:
        return "from --data-dir"
    if os.environ.get("MM_BRONZE_DATA_DIR"):
        return "from MM_BRONZE_DATA_DIR"
    if Path(settings.data_dir) != Path("./data"):
        return "from data_dir in the configuration file"
    return "the default ./data, in the current directory"
