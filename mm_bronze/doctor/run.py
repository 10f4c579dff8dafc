"""``mm-bronze doctor``: run every check, print one line each, exit 1 when any failed."""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack
from typing import TextIO

import msgspec

from mm_bronze.doctor.check import Check, bounded, skipped
from mm_bronze.doctor.disk import DEFAULT_MIN_FREE
from mm_bronze.errors import ConfigError
from mm_bronze.settings import Settings

MARKS = {"ok": "✔", "fail": "✘", "skip": "-"}
# The Kafka round trip makes several requests of a few seconds each (see bus_probe).
BUS_TIMEOUT = 40.0
# Every check, in the order they run and print.
CHECKS = (
    "settings",
    "postgres",
    "migrations",
    "bus",
    "storage",
    "staging",
    "kafka message size",
    "sftp host key",
    "http tls",
    "mllp tls",
    "http access",
    "free space",
)


class Report(msgspec.Struct):
    """What ``--json`` prints."""

    ok: bool
    checks: list[Check]
    summary: dict[str, int]


def doctor_command(args: argparse.Namespace) -> int:
    """Load the settings (their failure is the first check), run the rest, print, exit."""
    from mm_bronze.cli import settings_from
    from mm_bronze.doctor.config import invalid_settings
    from mm_bronze.logging import configure_logging

    try:
        settings = settings_from(args)
    except ConfigError as exc:
        configure_logging("warning", "auto")
        checks = [invalid_settings(exc)]
        checks += [skipped(name, "needs valid settings") for name in CHECKS[1:]]
        return report(checks, as_json=args.json)
    configure_logging("warning", settings.log.format)
    from mm_bronze.runtime import run

    checks = run(run_checks(settings, min_free=args.min_free or DEFAULT_MIN_FREE))
    return report(checks, as_json=args.json)


async def run_checks(settings: Settings, *, min_free: int = DEFAULT_MIN_FREE) -> list[Check]:
    from mm_bronze.doctor.bus_probe import check_bus
    from mm_bronze.doctor.config import check_settings
    from mm_bronze.doctor.database import check_migrations, check_postgres
    from mm_bronze.doctor.disk import check_free_space
    from mm_bronze.doctor.host_key import check_host_key
    from mm_bronze.doctor.http_access import check_http_access
    from mm_bronze.doctor.kafka_limits import check_kafka_limits
    from mm_bronze.doctor.storage_probe import check_storage
    from mm_bronze.doctor.tls import check_tls

    checks = [check_settings(settings)]
    async with AsyncExitStack() as stack:
        database, dsn = await check_postgres(settings, stack)
        checks.append(database)
        if dsn:
            checks.append(
                await bounded("migrations", lambda: check_migrations(dsn), "check PostgreSQL")
            )
        else:
            checks.append(skipped("migrations", "needs PostgreSQL"))
        bus = await bounded(
            "bus",
            lambda: check_bus(settings, dsn),
            "check that the bus (kafka.servers, or PostgreSQL for the embedded queue) answers",
            timeout=BUS_TIMEOUT,
        )
        checks.append(bus)
        # While the database is up (an embedded one stops with the block); reported later.
        access = await bounded(
            "http access", lambda: check_http_access(settings, dsn), "check PostgreSQL"
        )
    checks += await check_storage(settings)
    if settings.kafka.servers and bus.failed:
        checks.append(skipped("kafka message size", "Kafka is not reachable (see bus)"))
    else:
        checks.append(
            await bounded(
                "kafka message size",
                lambda: check_kafka_limits(settings),
                "check that Kafka is reachable",
            )
        )
    checks.append(check_host_key(settings))
    checks.append(check_tls(settings, "http"))
    checks.append(check_tls(settings, "mllp"))
    checks.append(access)
    checks.append(check_free_space(settings, min_free))
    return checks


def report(checks: list[Check], *, as_json: bool, out: TextIO | None = None) -> int:
    """Print ``checks`` (text or JSON); the exit status: 1 when any failed, else 0."""
    out = out or sys.stdout
    summary = {status: sum(c.status == status for c in checks) for status in ("ok", "fail", "skip")}
    ok = summary["fail"] == 0
    if as_json:
        out.write(msgspec.json.format(msgspec.json.encode(Report(ok, checks, summary)).decode()))
        out.write("\n")
        return 0 if ok else 1
    width = max(len(c.name) for c in checks)
    for check in checks:
        out.write(f"{MARKS[check.status]} {check.name:<{width}}  {check.detail}\n")
        if check.failed and check.fix:
            out.write(f"  {'':<{width}}  fix: {check.fix}\n")
    out.write(
        f"{summary['ok']} passed, {summary['fail']} failed, {summary['skip']} not applicable\n"
    )
    return 0 if ok else 1
