"""Commands that use the database or serve: ``serve``, ``migrate``, ``status``, ``clients``."""

from __future__ import annotations

import argparse
import sys

import msgspec

from mm_bronze.errors import ConfigError
from mm_bronze.settings import Settings, redacted


def print_config(settings: Settings) -> int:
    from mm_bronze.ingest.sftp.door import host_key_path, users_path
    from mm_bronze.metadata.embedded import pgdata_for

    data = redacted(settings)
    embedded = f"embedded, {pgdata_for(settings.data_path)}"
    # Where what an empty setting means lies: the values the processes will use.
    data["effective"].update(
        data_dir=str(settings.data_path),
        postgres=data["postgres"]["dsn"] if settings.postgres.dsn else embedded,
        users_file=str(users_path(settings)),
        host_key_path=str(host_key_path(settings)),
    )
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(data)).decode())
    sys.stdout.write("\n")
    return 0


async def serve(args: argparse.Namespace, settings: Settings) -> int:
    from mm_bronze.binding import check_doors
    from mm_bronze.roles import ROLES, metrics_door, run_metrics
    from mm_bronze.runtime import RoleRunner
    from mm_bronze.runtime import serve as serve_roles

    chosen = [name for name in ROLES if args.all or getattr(args, name)]
    if not chosen:
        raise ConfigError("choose roles: --all or " + ", ".join(f"--{r}" for r in ROLES))
    runners: dict[str, RoleRunner] = {name: ROLES[name].run for name in chosen}
    doors = [door(settings) for name in chosen if (door := ROLES[name].door)]
    if settings.metrics.port:
        runners["metrics"] = run_metrics
        doors.append(metrics_door(settings))
    # Before anything opens: a port in use is one line per door, and nothing starts.
    check_doors(doors)
    await serve_roles(settings, runners)
    return 0


async def admin(args: argparse.Namespace, settings: Settings) -> int:
    from mm_bronze.metadata import clients, records
    from mm_bronze.runtime import open_database

    if args.command == "migrate":  # it creates the data directory, whichever the database
        settings.data_path.mkdir(parents=True, exist_ok=True)
    async with open_database(settings) as db:
        if args.command == "migrate":
            print("database schema is up to date")
            return 0
        if args.command == "status":
            found = await records.submission_status(db.pool, args.uuid)
            if found is None:
                print(f"no submission {args.uuid}", file=sys.stderr)
                return 1
            print(msgspec.json.format(msgspec.json.encode(found)).decode())
            return 0
        if args.action == "add":
            token = await clients.add_client(db.pool, args.name, args.role)
            print(token)
            print(
                f"client {args.name!r} ({args.role}) created; this token is shown only once",
                file=sys.stderr,
            )
            return 0
        if args.action == "list":
            for name, role, created in await clients.list_clients(db.pool):
                print(f"{name}\t{role}\t{created}")
            return 0
        if args.action == "remove":
            if not await clients.remove_client(db.pool, args.name):
                print(f"no client {args.name!r}", file=sys.stderr)
                return 1
            if await clients.client_count(db.pool) == 0:
                print(
                    "that was the last API client: every HTTP request is now refused until "
                    "one is added with `mm-bronze clients add NAME`",
                    file=sys.stderr,
                )
            return 0
    raise AssertionError(args)
