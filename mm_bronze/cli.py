"""The ``mm-bronze`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from mm_bronze import __version__
from mm_bronze.errors import BronzeError, ConfigError
from mm_bronze.logging import configure_logging
from mm_bronze.roles import ROLES
from mm_bronze.runtime import open_database, run, serve
from mm_bronze.settings import Settings, load_settings, redacted


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="TOML configuration file")
    common.add_argument(
        "--data-dir", metavar="DIR", help="data directory (default ./data or MM_BRONZE_DATA_DIR)"
    )

    parser = argparse.ArgumentParser(prog="mm-bronze", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mm-bronze {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve_p = sub.add_parser("serve", parents=[common], help="run the platform")
    serve_p.add_argument("--all", action="store_true", help="run every role")
    for role in ROLES.values():
        serve_p.add_argument(f"--{role.name}", action="store_true", help=f"run {role.help}")
    serve_p.add_argument("--http-host", metavar="H", help="HTTP bind address (127.0.0.1)")
    serve_p.add_argument("--http-port", metavar="P", type=int, help="HTTP port (8000)")
    serve_p.add_argument("--mllp-host", metavar="H", help="MLLP bind address (127.0.0.1)")
    serve_p.add_argument("--mllp-port", metavar="P", type=int, help="MLLP port (2575)")
    serve_p.add_argument("--sftp-host", metavar="H", help="SFTP bind address (127.0.0.1)")
    serve_p.add_argument("--sftp-port", metavar="P", type=int, help="SFTP port (2222)")

    sub.add_parser("migrate", parents=[common], help="apply database migrations")
    sub.add_parser("config", parents=[common], help="print the effective configuration")
    status_p = sub.add_parser("status", parents=[common], help="show a submission's status")
    status_p.add_argument("uuid")

    clients_p = sub.add_parser("clients", help="manage API clients")
    clients_sub = clients_p.add_subparsers(dest="action", required=True)
    add_p = clients_sub.add_parser("add", parents=[common], help="create a client, print its token")
    add_p.add_argument("name")
    add_p.add_argument(
        "--role",
        choices=("ingest", "read", "admin"),
        default="ingest",
        help="ingest: submit and read its own submissions (default); read: read its own "
        "submissions and the operations surface; admin: see every client's submissions",
    )
    clients_sub.add_parser("list", parents=[common], help="list clients")
    rm_p = clients_sub.add_parser("remove", parents=[common], help="remove a client")
    rm_p.add_argument("name")

    from mm_bronze.ingest.sftp.admin import add_users_parser

    add_users_parser(sub, common)
    validate_p = sub.add_parser(
        "validate", parents=[common], help="validate files offline, as the ingest door would"
    )
    validate_p.add_argument("files", nargs="+", metavar="FILE")
    validate_p.add_argument(
        "--format",
        choices=["fhir-json", "fhir-xml", "fhir-ndjson", "hl7"],
        help="the files' format (default: from extension and content)",
    )
    validate_p.add_argument("--fhir-version", default=None, help="R4 (default), R4B or R5")
    validate_p.add_argument(
        "--level", choices=["strict", "lenient"], help="validation level (default: config)"
    )
    fhir_p = sub.add_parser("fhir", help="FHIR tools")
    fhir_sub = fhir_p.add_subparsers(dest="action", required=True)
    split_p = fhir_sub.add_parser(
        "split", parents=[common], help="split Bundles into one file per resource"
    )
    split_p.add_argument("bundles", nargs="+", metavar="BUNDLE")
    split_p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    http: dict[str, Any] = {}
    if getattr(args, "http_host", None):
        http["host"] = args.http_host
    if getattr(args, "http_port", None):
        http["port"] = args.http_port
    if http:
        overrides["http"] = http
    mllp: dict[str, Any] = {}
    if getattr(args, "mllp_host", None):
        mllp["host"] = args.mllp_host
    if getattr(args, "mllp_port", None):
        mllp["port"] = args.mllp_port
    if mllp:
        overrides["mllp"] = mllp
    sftp: dict[str, Any] = {}
    if getattr(args, "sftp_host", None):
        sftp["host"] = args.sftp_host
    if getattr(args, "sftp_port", None):
        sftp["port"] = args.sftp_port
    if sftp:
        overrides["sftp"] = sftp
    env_data_dir = None if args.data_dir else _env("MM_BRONZE_DATA_DIR")
    if env_data_dir:
        overrides.setdefault("data_dir", env_data_dir)
    return load_settings(args.config, overrides=overrides)


def _env(name: str) -> str | None:
    import os

    return os.environ.get(name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        configure_logging(settings.log.level, settings.log.format)
        return run(_dispatch(args, settings))
    except ConfigError as exc:
        print(f"mm-bronze: configuration error: {exc}", file=sys.stderr)
        return 2
    except BronzeError as exc:
        print(f"mm-bronze: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        chosen = [name for name in ROLES if args.all or getattr(args, name)]
        if not chosen:
            raise ConfigError("choose roles: --all or " + ", ".join(f"--{r}" for r in ROLES))
        await serve(settings, {name: ROLES[name].run for name in chosen})
        return 0
    if args.command == "users":
        from mm_bronze.ingest.sftp.admin import users_command

        return users_command(args, settings)
    if args.command in ("validate", "fhir"):
        return _offline(args, settings)
    if args.command == "config":
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(redacted(settings))).decode())
        sys.stdout.write("\n")
        return 0
    return await _admin(args, settings)


def _offline(args: argparse.Namespace, settings: Settings) -> int:
    from mm_bronze import offline

    if args.command == "fhir":
        return offline.split_bundles(args.bundles, args.out)
    fmt, _, ctype = (args.format or "").partition("-")
    return offline.validate_files(
        args.files,
        format=fmt or None,
        content_type=(ctype or "text") if fmt else None,
        version=args.fhir_version,
        level=args.level or settings.validation.level,
    )


async def _admin(args: argparse.Namespace, settings: Settings) -> int:
    from mm_bronze.metadata import clients, records

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
