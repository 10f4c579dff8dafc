"""The SFTP host key: present, readable as a private key, and private to its owner."""

from __future__ import annotations

import os
import stat

from mm_bronze.doctor.check import Check, describe, failed, passed, skipped
from mm_bronze.ingest.sftp.door import host_key_path
from mm_bronze.settings import Settings

NAME = "sftp host key"


def check_host_key(settings: Settings) -> Check:
    path = host_key_path(settings)
    if not path.exists():
        if not settings.sftp.host_key_path:
            return skipped(
                NAME,
                f"not created yet at {path}: `mm-bronze serve --sftp` creates it on first start",
            )
        return failed(
            NAME,
            f"{path} (sftp.host_key_path) does not exist",
            "point sftp.host_key_path at the server's private key, or leave it empty to use "
            "the key mm-bronze generates under the data directory",
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return failed(
            NAME,
            f"{path} is readable or writable by others (mode {mode:04o})",
            f"chmod 600 {path}",
        )
    if path.stat().st_uid != os.geteuid():
        return failed(
            NAME, f"{path} belongs to another user", "chown the key to the user mm-bronze runs as"
        )
    try:
        import asyncssh

        key = asyncssh.read_private_key(str(path))
    except Exception as exc:
        return failed(
            NAME,
            f"{path} is not a readable private key: {describe(exc)}",
            "restore the key from a backup (clients pinned its fingerprint), or remove it to "
            "have a new one generated",
        )
    return passed(NAME, f"{path} (mode {mode:04o}, {key.get_fingerprint('sha256')})")
