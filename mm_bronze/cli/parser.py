"""The ``mm-bronze`` argument parser. Imports nothing heavy, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import datetime as dt
import uuid

from mm_bronze import __version__

DESCRIPTION = "mm-bronze: land raw healthcare data (FHIR, HL7 v2, NDJSON, files) once, durably."

# serve --<role>: what each flag starts (mm_bronze.roles holds how).
ROLE_HELP = {
    "http": "the HTTP front door (POST /ingest/...)",
    "consumers": "the persist pipeline (bus → storage → metadata)",
    "mllp": "the MLLP listener for HL7 v2 (port 2575)",
    "sftp": "the SFTP front door (uploads land on close)",
}
FORMATS = ["fhir-json", "fhir-xml", "fhir-ndjson", "hl7"]
# FHIR versions whose structure mm-bronze ships (and their numbers).
FHIR_VERSIONS = ["R4", "R4B", "R5", "4.0.1", "4.3.0", "5.0.0"]


def port(text: str) -> int:
    """An argparse type: a TCP port number."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


def submission_id(text: str) -> str:
    """An argparse type: a submission uuid."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a submission uuid") from None


def size(text: str) -> int:
    """An argparse type: bytes, with an optional K, M, G or T suffix (powers of 1024)."""
    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (cleaned[:-1], cleaned[-1]) if cleaned[-1:] in units else (cleaned, "")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 500M, 2G)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 500M, 2G)")
    return int(value)


def positive(text: str) -> int:
    """An argparse type: a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="TOML configuration file")
    common.add_argument(
        "--data-dir", metavar="DIR", help="data directory (default ./data or MM_BRONZE_DATA_DIR)"
    )

    parser = argparse.ArgumentParser(prog="mm-bronze", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"mm-bronze {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_p = sub.add_parser("serve", parents=[common], help="run the platform")
    serve_p.add_argument("--all", action="store_true", help="run every role")
    for name, help_text in ROLE_HELP.items():
        serve_p.add_argument(f"--{name}", action="store_true", help=f"run {help_text}")
    for door, host, number in (("http", "127.0.0.1", 8000), ("mllp", "127.0.0.1", 2575)):
        serve_p.add_argument(f"--{door}-host", metavar="H", help=f"{door} bind address ({host})")
        serve_p.add_argument(
            f"--{door}-port", metavar="P", type=port, help=f"{door} port ({number})"
        )
    serve_p.add_argument("--sftp-host", metavar="H", help="SFTP bind address (127.0.0.1)")
    serve_p.add_argument("--sftp-port", metavar="P", type=port, help="SFTP port (2222)")

    sub.add_parser("migrate", parents=[common], help="apply database migrations")
    sub.add_parser("config", parents=[common], help="print the effective configuration")
    status_p = sub.add_parser("status", parents=[common], help="show a submission's status")
    status_p.add_argument("uuid", type=submission_id)

    clients_p = sub.add_parser("clients", help="manage API clients")
    clients_sub = clients_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_p = clients_sub.add_parser("add", parents=[common], help="create a client, print its token")
    add_p.add_argument("name")
    add_p.add_argument(
        "--role",
        choices=("ingest", "read", "admin"),
        default="ingest",
        help="ingest: submit and read its own submissions (default); read: read its own "
        "submissions and the operations surface; admin: see every client's submissions",
    )
    clients_sub.add_parser("list", parents=[common], help="list clients (name, role, created)")
    rm_p = clients_sub.add_parser("remove", parents=[common], help="remove a client")
    rm_p.add_argument("name")

    _users(sub, common)
    _dlq(sub, common)

    doctor_p = sub.add_parser(
        "doctor", parents=[common], help="check settings, database, bus, storage, keys and disk"
    )
    doctor_p.add_argument("--json", action="store_true", help="one JSON document, for automation")
    doctor_p.add_argument(
        "--min-free",
        type=size,
        metavar="SIZE",
        help="free space the data directory's disk must have (default 1G)",
    )
    _submissions(sub, common)

    db_p = sub.add_parser("db", help="the metadata database")
    db_sub = db_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_sub.add_parser("url", parents=[common], help="print the PostgreSQL connection URL")
    db_sub.add_parser("shell", parents=[common], help="open psql on the metadata database")
    bus_p = db_sub.add_parser(
        "bus",
        parents=[common],
        help="record the bus the deployment publishes to (after moving it by hand)",
    )
    bus_p.add_argument("bus", choices=["embedded", "kafka"], help="the bus to record")
    adopt_p = db_sub.add_parser(
        "adopt",
        parents=[common],
        help="take over a deployment's id (a database that replaces its, restored or recreated)",
    )
    adopt_p.add_argument("id", type=uuid.UUID, help="the id, as a refused consumer names it")

    storage_p = sub.add_parser("storage", help="stored objects")
    storage_sub = storage_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    report_p = storage_sub.add_parser(
        "compression-report",
        parents=[common],
        help="measure gzip and zstd on stored objects; recommend storage.compression",
    )
    report_p.add_argument(
        "--sample", type=positive, default=200, metavar="N", help="objects to read (default 200)"
    )
    report_p.add_argument(
        "--format",
        metavar="F",
        help="only objects of this format: fhir, fhir-json, fhir-xml, fhir-ndjson, hl7...",
    )
    report_p.add_argument(
        "--random", action="store_true", help="a random sample (default: the newest objects)"
    )
    report_p.add_argument("--json", action="store_true", help="one JSON document")

    validate_p = sub.add_parser(
        "validate", parents=[common], help="validate files offline, as the ingest door would"
    )
    validate_p.add_argument(
        "files", nargs="+", metavar="FILE", help="files (gzip ones are read decoded) or directories"
    )
    validate_p.add_argument(
        "--format", choices=FORMATS, help="the files' format (default: from extension and content)"
    )
    validate_p.add_argument(
        "--fhir-version", choices=FHIR_VERSIONS, metavar="V", help="R4 (default), R4B or R5"
    )
    validate_p.add_argument(
        "--level", choices=["strict", "lenient"], help="validation level (default: config)"
    )
    validate_p.add_argument(
        "--json", action="store_true", help="one JSON document with every result and the summary"
    )
    validate_p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="worker processes (default: one per core for large inputs)",
    )

    fhir_p = sub.add_parser("fhir", help="FHIR tools")
    fhir_sub = fhir_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    split_p = fhir_sub.add_parser(
        "split", parents=[common], help="split Bundles into one file per resource"
    )
    split_p.add_argument("bundles", nargs="+", metavar="BUNDLE")
    split_p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    return parser


def _users(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    users_p = sub.add_parser("users", help="manage SFTP users")
    users_sub = users_p.add_subparsers(dest="action", required=True)
    add_p = users_sub.add_parser(
        "add", parents=[common], help="create a user, or update an existing one"
    )
    add_p.add_argument("name")
    add_p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add_p.add_argument("--key", metavar="PUBKEY_FILE", help="an OpenSSH public key to accept")
    add_p.add_argument(
        "--perms",
        type=permissions,
        metavar="PERMS",
        help="comma-separated: read,write,delete (default read,write)",
    )
    users_sub.add_parser("list", parents=[common], help="list users and their permissions")
    rm_p = users_sub.add_parser("remove", parents=[common], help="remove a user")
    rm_p.add_argument("name")
    key_p = users_sub.add_parser(
        "add-key", parents=[common], help="generate a key pair for a user and register it"
    )
    key_p.add_argument("name")
    key_p.add_argument("--out", metavar="DIR", help="where to write the key pair")


def _dlq(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    dlq_p = sub.add_parser("dlq", help="dead letters: list, show, replay, purge")
    dlq_sub = dlq_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ids_help = "dead letter ids (embedded: a number; Kafka: PARTITION:OFFSET)"
    list_p = dlq_sub.add_parser("list", parents=[common], help="pending dead letters, oldest first")
    list_p.add_argument("--topic", metavar="T", help="only those consumed from topic T")
    list_p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (100)")
    list_p.add_argument("--after", metavar="ID", help="those after ID (the last of a page)")
    list_p.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    show_p = dlq_sub.add_parser("show", parents=[common], help="one dead letter (no payload)")
    show_p.add_argument("id", metavar="ID", help=ids_help)
    show_p.add_argument("--json", action="store_true", help="JSON instead of text")
    replay_p = dlq_sub.add_parser(
        "replay", parents=[common], help="put dead letters back on their topic, once"
    )
    replay_p.add_argument("ids", nargs="*", metavar="ID", help=ids_help)
    replay_p.add_argument("--all", action="store_true", help="replay every pending dead letter")
    replay_p.add_argument("--topic", metavar="T", help="with --all: only those of topic T")
    purge_p = dlq_sub.add_parser("purge", parents=[common], help="drop dead letters for good")
    purge_p.add_argument("ids", nargs="+", metavar="ID", help=ids_help)
    purge_p.add_argument("--yes", action="store_true", help="do not ask (asked only on a terminal)")


def _submissions(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    subs_p = sub.add_parser("submissions", help="find submissions and their bytes")
    subs_sub = subs_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    list_p = subs_sub.add_parser(
        "list", parents=[common], help="list recorded submissions, newest first"
    )
    list_p.add_argument("--client", metavar="NAME", help="the submitting client")
    list_p.add_argument("--source", choices=("api", "sftp", "mllp"))
    list_p.add_argument("--format", type=format_name, metavar="F", help="fhir, hl7, file...")
    list_p.add_argument("--status", choices=("stored", "duplicate"))
    list_p.add_argument("--sha256", type=sha256_hex, metavar="HEX", help="the payload's SHA-256")
    list_p.add_argument("--since", type=timestamp, metavar="TIME", help="received at or after")
    list_p.add_argument("--until", type=timestamp, metavar="TIME", help="received before")
    list_p.add_argument(
        "--path", type=sftp_path, metavar="USER:/PATH", help="an SFTP partner's file"
    )
    list_p.add_argument(
        "--limit", type=page_size, default=100, metavar="N", help="at most N (1-1000, 100)"
    )
    cursor = list_p.add_mutually_exclusive_group()
    cursor.add_argument("--after", type=cursor_value, metavar="SEQ", help="oldest first after SEQ")
    cursor.add_argument(
        "--before", type=cursor_value, metavar="SEQ", help="newest first before SEQ"
    )
    list_p.add_argument("--order", choices=("asc", "desc"), help="desc (default) or asc")
    list_p.add_argument(
        "--json", action="store_true", help='one JSON document: {"items": [...], "next": SEQ}'
    )
    get_p = subs_sub.add_parser(
        "get", parents=[common], help="write a submission's bytes exactly as received"
    )
    get_p.add_argument("uuid", type=submission_id)
    get_p.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")


def sha256_hex(text: str) -> str:
    """An argparse type: a SHA-256 in hex."""
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a SHA-256 (64 hex digits)")
    return text.lower()


def timestamp(text: str) -> dt.datetime:
    """An argparse type: an ISO 8601 time, UTC without an offset."""
    from mm_bronze.metadata.submissions import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def sftp_path(text: str) -> tuple[str, str]:
    """An argparse type: USER:/PATH."""
    from mm_bronze.metadata.submissions import parse_sftp_path

    try:
        return parse_sftp_path(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def permissions(text: str) -> list[str]:
    """An argparse type: SFTP permissions such as ``read,write``, as a checked list."""
    from mm_bronze.errors import ConfigError
    from mm_bronze.ingest.sftp.users import parse_perms

    try:
        return parse_perms(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def format_name(text: str) -> str:
    """A format as submissions record it (``fhir``), as ``GET /submissions`` accepts it."""
    from mm_bronze.metadata.submissions import FORMAT_NAME

    if not FORMAT_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a format name such as fhir or hl7 (the format alone, without"
            " the content type)"
        )
    return text


def page_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a page size (1-1000)")
    return int(text)


def cursor_value(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a cursor (a seq, 0 or more)")
    return int(text)


def subparser_for(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The (sub)parser of the command in ``args``, so errors show that command's usage."""
    current = parser
    for attr in ("command", "action"):
        name = getattr(args, attr, None)
        actions = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not name or not actions:
            break
        current = actions[0].choices.get(name, current)
    return current
