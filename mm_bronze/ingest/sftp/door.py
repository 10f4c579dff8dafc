"""The SFTP door as a role: users, spool recovery, the retry loop and the server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from mm_bronze.errors import ConfigError
from mm_bronze.ingest.sftp.users import UserStore
from mm_bronze.settings import Settings

if TYPE_CHECKING:
    from mm_bronze.bus import Bus
    from mm_bronze.metrics import DoorMetrics
    from mm_bronze.storage import ObjectStore

log = structlog.get_logger(__name__)


def sftp_root(settings: Settings) -> Path:
    return settings.data_path / "sftp"


def users_path(settings: Settings) -> Path:
    configured = settings.sftp.users_file
    return Path(configured).expanduser() if configured else sftp_root(settings) / "users.json"


def host_key_path(settings: Settings) -> Path:
    configured = settings.sftp.host_key_path
    if configured:
        return Path(configured).expanduser()
    return sftp_root(settings) / "ssh_host_ed25519_key"


def check_sftp_settings(settings: Settings) -> None:
    sftp = settings.sftp
    for key in ("inline_limit", "max_concurrent_uploads_per_user", "retry_seconds"):
        if getattr(sftp, key) <= 0:
            raise ConfigError(f"invalid setting: sftp.{key} must be positive")


async def run_sftp_door(
    settings: Settings,
    bus: Bus,
    staging: ObjectStore,
    topic: str,
    health: dict[str, Callable[[], str | None]],
    stop: asyncio.Event,
    *,
    metrics: DoorMetrics,
) -> None:
    """Recover the spool, then serve SFTP until ``stop`` is set."""
    # Imported here so that commands which never serve (``mm-bronze users ...``) start fast.
    from mm_bronze.ingest.sftp.server import serve_sftp
    from mm_bronze.ingest.sftp.spool import Spool, SpoolConfig

    check_sftp_settings(settings)
    users = UserStore(users_path(settings), legacy=settings.sftp.users)
    users.load()
    if not users.names():
        log.warning("no SFTP users: add one with `mm-bronze users add NAME`")
    config = SpoolConfig.from_settings(settings.sftp, sftp_root(settings), topic)
    spool = Spool(config, bus, staging, metrics)
    await spool.open()
    try:
        recovered = await spool.replay(stop, startup=True)
        if recovered is None:
            return  # stopped before the door listened
        if recovered:
            log.info("sftp uploads published at start", count=recovered)
        listening = asyncio.Event()
        health["sftp"] = lambda: None if listening.is_set() else "starting"
        retries = asyncio.create_task(spool.run_retries(stop), name="sftp-retries")
        try:
            await serve_sftp(
                settings.sftp, users, spool, str(host_key_path(settings)), stop, listening
            )
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await retries
    finally:
        await spool.close()
