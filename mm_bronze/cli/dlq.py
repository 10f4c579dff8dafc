"""``mm-bronze dlq``: list, show, replay and purge dead letters, on either bus."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence

import msgspec

from mm_bronze.bus.dead_letters import (
    DeadLetter,
    DeadLetterNotFound,
    DeadLetters,
    InvalidDeadLetterId,
)
from mm_bronze.errors import BronzeError
from mm_bronze.settings import Settings

MAX_LIMIT = 100_000
COLUMNS = ("ID", "TOPIC", "SUBMISSION", "CLIENT", "ROUTE", "ATTEMPTS", "DEAD-LETTERED", "REASON")


async def dlq_command(args: argparse.Namespace, settings: Settings) -> int:
    from mm_bronze.cli import UsageError
    from mm_bronze.runtime import open_dead_letters

    if args.action == "replay" and bool(args.ids) == bool(args.all):
        raise UsageError("name the dead letters to replay, or --all (not both)")
    if args.action == "replay" and args.topic and not args.all:
        raise UsageError("--topic goes with --all")
    if args.action == "list" and not 1 <= args.limit <= MAX_LIMIT:
        raise UsageError(f"--limit {args.limit}: expected 1 to {MAX_LIMIT}")
    if getattr(args, "topic", None) == "":
        raise UsageError("--topic: expected a topic name")
    if args.action == "purge" and not args.yes and not _confirmed(len(args.ids)):
        print("nothing purged", file=sys.stderr)
        return 1
    try:
        async with open_dead_letters(settings) as letters:
            return await _run(args, letters)
    except InvalidDeadLetterId as exc:
        raise UsageError(str(exc)) from None


async def _run(args: argparse.Namespace, letters: DeadLetters) -> int:
    from mm_bronze.cli import UsageError

    if args.action == "list":
        found = await letters.pending(topic=args.topic, limit=args.limit, after=args.after)
        _print(found, as_json=args.json)
        return 0
    if args.action == "show":
        letter = await letters.get(args.id)
        if args.json:
            print(msgspec.json.format(msgspec.json.encode(letter)).decode())
        else:
            for field in msgspec.structs.fields(DeadLetter):
                print(f"{field.name + ':':<18}{_text(getattr(letter, field.name))}")
        return 0
    if args.action == "replay" and args.all:
        count = await letters.replay_all(args.topic)
        print(f"{count} dead letter{'' if count == 1 else 's'} replayed")
        return 0
    # Every id is checked, its form and that it names a pending dead letter, before the
    # first is acted on: a typo in the third of three ids must not leave the first two
    # replayed or purged and the rest not.
    ids = [letters.canonical_id(id) for id in args.ids]
    if repeated := sorted({id for id in ids if ids.count(id) > 1}):
        raise UsageError(f"{', '.join(repeated)}: named more than once")
    unknown = []
    for id in ids:
        try:
            await letters.get(id)
        except DeadLetterNotFound:
            unknown.append(id)
    if unknown:
        names = ", ".join(unknown)
        print(
            f"mm-bronze: error: no dead letter {names} (unknown, or already replayed or"
            f" purged); nothing {'replayed' if args.action == 'replay' else 'purged'}",
            file=sys.stderr,
        )
        return 1
    failed = 0
    for id in ids:
        try:
            if args.action == "replay":
                await letters.replay(id)
                print(f"{id} replayed")
            else:
                await letters.purge(id)
                print(f"{id} purged")
        except DeadLetterNotFound as exc:
            print(
                f"mm-bronze: error: {exc} (unknown, or already replayed or purged)", file=sys.stderr
            )
            failed += 1
        except BronzeError as exc:
            print(f"mm-bronze: error: {id}: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _confirmed(count: int) -> bool:
    """Ask on a terminal; without one (scripts, CI) there is nobody to ask."""
    if not sys.stdin.isatty():
        return True
    answer = input(f"purge {count} dead letter{'' if count == 1 else 's'} for good? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _print(found: Sequence[DeadLetter], *, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode(list(found)).decode())
        return
    if not found:
        print("no dead letters", file=sys.stderr)
        return
    rows = [COLUMNS, *(_row(letter) for letter in found)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))


def _row(letter: DeadLetter) -> tuple[str, ...]:
    route = "/".join(
        part or "?" for part in (letter.format, letter.content_type, letter.version, letter.subtype)
    )
    at = letter.dead_lettered_at
    return (
        letter.id,
        letter.topic,
        letter.uuid or "-",
        letter.client or "-",
        route if letter.format else "-",
        str(letter.attempts),
        at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at else "-",
        letter.reason,
    )


def _text(value: object) -> str:
    if value is None:
        return "-"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
