"""The server's ed25519 host key: generated on first start, reused afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh
import structlog

log = structlog.get_logger(__name__)


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """Read the host key at ``path``, creating it (mode 0600) when missing; logs its fingerprint."""
    if path.exists():
        key = asyncssh.read_private_key(str(path))
        created = False
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.export_private_key())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        key.write_public_key(str(path) + ".pub")
        created = True
    log.info(
        "sftp host key",
        path=str(path),
        created=created,
        fingerprint=key.get_fingerprint("sha256"),
    )
    return key
