"""``mm-bronze submissions list`` and ``get``: find submissions and their bytes in the
database and storage the settings name, with every client's submissions in view."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
from pathlib import Path
from typing import IO

import msgspec

from mm_bronze.errors import BronzeError
from mm_bronze.metadata import records
from mm_bronze.metadata.submissions import (
    Page,
    Pool,
    SubmissionItem,
    SubmissionQuery,
    list_submissions,
    order_of,
)
from mm_bronze.settings import Settings
from mm_bronze.storage import ObjectStore

COLUMNS = ("time", "uuid", "client", "source", "format", "status", "size", "path")


async def submissions_command(args: argparse.Namespace, settings: Settings) -> int:
    from mm_bronze.runtime import open_database

    async with open_database(settings) as db:
        if args.action == "list":
            return await _list(args, db.pool)
        return await _get(args, settings, db.pool)


async def _list(args: argparse.Namespace, pool: Pool) -> int:
    from mm_bronze.cli import UsageError

    if args.order == "desc" and args.after is not None:
        raise UsageError("--after lists oldest first; use --before with --order desc")
    if args.order == "asc" and args.before is not None:
        raise UsageError("--before lists newest first; use --after with --order asc")
    user, path = args.path if args.path else (None, None)
    query = SubmissionQuery(
        client=args.client,
        source=args.source,
        format=args.format,
        status=args.status,
        sha256=args.sha256,
        since=args.since,
        until=args.until,
        sftp_user=user,
        sftp_path=path,
        after=args.after,
        before=args.before,
        order=args.order or "desc",
        limit=args.limit,
    )
    page = await list_submissions(pool, query, owner=None)
    if args.json:
        sys.stdout.write(msgspec.json.encode(page).decode() + "\n")
        return 0
    print_table(page, sys.stdout)
    if not page.items:
        print("no submissions match", file=sys.stderr)
    if order_of(query) == "asc":
        print(f"continue with --after {page.next}", file=sys.stderr)
    elif page.next is not None:
        print(f"more: add --before {page.next}", file=sys.stderr)
    return 0


def print_table(page: Page, out: IO[str]) -> None:
    """The items as aligned columns under a header line."""
    rows = [COLUMNS, *(_row(item) for item in page.items)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


def _row(item: SubmissionItem) -> tuple[str, ...]:
    return (
        item.received_at.astimezone().strftime("%Y-%m-%d %H:%M:%S%z"),
        item.uuid,
        item.client or "-",
        item.source,
        "/".join(p for p in (item.format, item.content_type) if p) or "-",
        item.status,
        str(item.size),
        item.path or "-",
    )


async def _get(args: argparse.Namespace, settings: Settings, pool: Pool) -> int:
    found = await records.submission_status(pool, args.uuid)
    if found is None:
        raise BronzeError(f"no submission {args.uuid}")
    if found.sha256 is None or found.storage_path is None:
        raise BronzeError(f"submission {args.uuid} is {found.status}: nothing is stored")
    if args.out is None and sys.stdout.isatty():
        raise BronzeError(
            "refusing to write a payload to the terminal: use --out FILE or redirect stdout"
        )
    store = ObjectStore(settings.storage_url, settings.storage.options)
    try:
        key = store.key_for(found.storage_path)
    except ValueError:
        raise BronzeError(
            f"submission {args.uuid} is stored at {found.storage_path}, outside the "
            f"configured storage {settings.storage_url}"
        ) from None
    async with store:
        if args.out is None:
            await _copy(store, key, found.compression or "none", sys.stdout.buffer, found.sha256)
            sys.stdout.buffer.flush()
            return 0
        out = Path(args.out)
        partial = out.with_name(f".{out.name}.partial")
        try:
            file = await asyncio.to_thread(open, partial, "wb")
            with file as f:
                await _copy(store, key, found.compression or "none", f, found.sha256)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    print(f"{found.size} bytes written to {out}", file=sys.stderr)
    return 0


async def _copy(
    store: ObjectStore, key: str, compression: str, out: IO[bytes], sha256: str
) -> None:
    digest = hashlib.sha256()
    try:
        async for chunk in store.stream_original(key, compression):
            digest.update(chunk)
            out.write(chunk)
    except FileNotFoundError:
        raise BronzeError(f"the stored object {key} is missing") from None
    if digest.hexdigest() != sha256:
        raise BronzeError(f"the stored object {key} does not match its SHA-256 {sha256}")
