"""Who may use the HTTP door: ``serve --http`` refuses a non-loopback address without API
clients, so the doctor does too, rather than pass a setup that will not start."""

from __future__ import annotations

import psycopg

from mm_bronze.addresses import is_loopback
from mm_bronze.doctor.check import Check, describe, failed, passed, skipped
from mm_bronze.doctor.database import fetch_one
from mm_bronze.metadata.clients import CLIENT_COUNT, TOKENS_REQUIRED
from mm_bronze.settings import Settings

NAME = "http access"


async def check_http_access(settings: Settings, dsn: str) -> Check:
    host = settings.http.host
    if not dsn:
        return skipped(NAME, "needs PostgreSQL (see postgres)")
    try:  # both in one round trip, on the doctor's own connection
        row = await fetch_one(dsn, f"SELECT ({CLIENT_COUNT}), ({TOKENS_REQUIRED})")
    except psycopg.Error as exc:
        return skipped(NAME, f"cannot count API clients: {describe(exc)}")
    count, required = (int(row[0]), bool(row[1])) if row else (0, False)
    if count:
        return passed(NAME, f"{count} API client(s); every request needs a token")
    if required:  # a client has existed: anonymous access is over for good
        return failed(
            NAME,
            "no API client, and one has existed: every HTTP request is refused (401)",
            "create one with `mm-bronze clients add NAME`",
        )
    if is_loopback(host):
        return passed(NAME, f"no API client: http.host {host} is loopback, open without tokens")
    return failed(
        NAME,
        f"http.host {host} is not loopback and no API client exists: `serve --http` refuses"
        " to start",
        "create one with `mm-bronze clients add NAME`, or serve HTTP on a loopback address",
    )
