"""The mm-bronze command line: parse, load settings, run one command.

Each command imports what it needs when it runs, so ``--help`` and the offline and admin
commands start fast. A user's mistake (unknown flag, bad value, missing file) is one line
on stderr after the command's usage, exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_bronze.cli.parser import build_parser, subparser_for
from mm_bronze.errors import BronzeError, ConfigError

if TYPE_CHECKING:
    from mm_bronze.settings import Settings


# Commands that print their results and log nothing: no need to load the logging setup.
QUIET_COMMANDS = ("validate", "fhir", "config")


class UsageError(BronzeError):
    """A mistake in the command's arguments: shown with that command's usage, exit 2."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    command = subparser_for(parser, args)
    if unknown:  # reported by the subcommand, with its usage (argparse would show the top's)
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        _check_files(args)
        if args.command == "doctor":  # invalid settings are one of its findings
            from mm_bronze.doctor.run import doctor_command

            return doctor_command(args)
        settings = settings_from(args)
        if args.command not in QUIET_COMMANDS:
            from mm_bronze.logging import configure_logging

            level = settings.log.level
            if args.command not in ("serve", "migrate") and level == "info":
                level = "warning"  # admin commands print their result; progress is noise
            configure_logging(level, settings.log.format)
        code = _run(args, settings)
        sys.stdout.flush()  # here, where a reader gone away is caught below
        return code
    except UsageError as exc:
        command.error(str(exc))  # prints usage and the message, exits 2
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"mm-bronze: {line}", file=sys.stderr)
        return 2
    except BronzeError as exc:
        print(f"mm-bronze: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as on SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush finds no pipe
        return 141
    raise AssertionError("unreachable")


def _check_files(args: argparse.Namespace) -> None:
    """Files named on the command line exist: a missing one is a usage error."""
    if args.config and not Path(args.config).is_file():
        raise UsageError(f"--config {args.config}: no such file")
    named = [*getattr(args, "files", []), *getattr(args, "bundles", [])]
    missing = [name for name in named if not Path(name).exists()]
    if missing:
        raise UsageError(f"{missing[0]}: no such file or directory")
    key = getattr(args, "key", None)
    if key and not Path(key).is_file():
        raise UsageError(f"--key {key}: no such file")
    if args.command == "submissions" and getattr(args, "out", None):
        folder = Path(args.out).parent
        if not folder.is_dir():
            raise UsageError(f"--out {args.out}: no such directory {folder}")
        if Path(args.out).is_dir():
            raise UsageError(f"--out {args.out}: is a directory; name the file to write")


def settings_from(args: argparse.Namespace) -> Settings:
    """The effective settings: file, environment, then this command's flags."""
    from mm_bronze.settings import load_settings

    overrides: dict[str, Any] = {}
    labels: dict[tuple[str, ...], str] = {}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
        labels[("data_dir",)] = f"--data-dir {args.data_dir}"
    for door in ("http", "mllp", "sftp"):
        for key in ("host", "port"):
            value = getattr(args, f"{door}_{key}", None)
            if value:
                overrides.setdefault(door, {})[key] = value
                labels[(door, key)] = f"--{door}-{key} {value}"
    return load_settings(args.config, overrides=overrides, override_labels=labels)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "validate":
        return _validate(args, settings)
    if args.command == "fhir":
        from mm_bronze.offline import split_bundles

        return split_bundles(args.bundles, args.out)
    if args.command == "config":
        from mm_bronze.cli.commands import print_config

        return print_config(settings)
    from mm_bronze.cli.datadir import require_data_dir

    require_data_dir(args, settings)
    if args.command == "users":
        from mm_bronze.ingest.sftp.admin import users_command

        return users_command(args, settings)
    if args.command == "db":
        from mm_bronze.cli.db import db_command

        return db_command(args, settings)
    if args.command == "storage":
        from mm_bronze.compression_report.command import compression_report

        return compression_report(args, settings)
    from mm_bronze.runtime import run

    if args.command == "dlq":
        from mm_bronze.cli.dlq import dlq_command

        return run(dlq_command(args, settings))
    if args.command == "submissions":
        from mm_bronze.cli.submissions import submissions_command

        return run(submissions_command(args, settings))

    if args.command == "serve":
        from mm_bronze.cli.commands import serve
        from mm_bronze.cli.parser import ROLE_HELP

        if not (args.all or any(getattr(args, role) for role in ROLE_HELP)):
            raise UsageError("choose the roles to run: --all, or any of " + _flags(ROLE_HELP))

        return run(serve(args, settings))
    from mm_bronze.cli.commands import admin

    return run(admin(args, settings))


def _flags(names: dict[str, str]) -> str:
    return ", ".join(f"--{name}" for name in names)


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    from mm_bronze.offline import validate_files

    fmt, _, ctype = (args.format or "").partition("-")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: expected at least 1")
    return validate_files(
        args.files,
        format=fmt or None,
        content_type=(ctype or "text") if fmt else None,
        version=args.fhir_version,
        level=args.level or settings.validation.level,
        as_json=args.json,
        jobs=args.jobs,
    )


__all__ = ["UsageError", "main", "settings_from"]
