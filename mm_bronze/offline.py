"""Offline tools: ``mm-bronze validate`` and ``mm-bronze fhir split``.

``validate`` checks files exactly as the HTTP door would (the same validators, through
``formats.validator_for``). Files it cannot identify as FHIR or HL7 v2 are skipped and
counted; large inputs are validated in a pool of worker processes, one per core.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import msgspec

from mm_bronze import formats
from mm_bronze.errors import ConfigError, InvalidPayload, Issue
from mm_bronze.formats.base import issue_dict
from mm_bronze.formats.detect import EXTENSIONS, detect
from mm_bronze.offline_report import Progress, Tally, issue_line, summary_of

CHUNK = 1024 * 1024
# Inputs at least this large (and of more than one file) are validated on every core.
POOL_MIN_BYTES = 16 * CHUNK
# An HL7 v2 header segment at the start of a line, for files without a known extension.
_HL7_HEADER = re.compile(rb"(?:^|[\r\n])(?:MSH|FHS|BHS)[|]")

Task = tuple[str, str | None, str | None, str | None, str]


def validate_files(
    paths: Iterable[str],
    *,
    format: str | None = None,
    content_type: str | None = None,
    version: str | None = None,
    level: str = formats.STRICT,
    as_json: bool = False,
    jobs: int | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Validate each file as the HTTP door would; 0 if all are valid, 1 if any is invalid.

    Raises ``ConfigError`` when the inputs hold no file at all, or no file it can identify.
    """
    files = list(_files(paths, ("*",)))
    if not files:
        raise ConfigError(f"no files to validate in {', '.join(paths)}")
    sizes = [_size(path) for path in files]
    tasks: list[Task] = [(str(p), format, content_type, version, level) for p in files]
    workers = _workers(jobs, len(files), sum(sizes))
    tally = Tally()
    progress = Progress(len(files), sum(sizes), enabled=not as_json and sys.stderr.isatty())
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    for result in _run(tasks, workers):
        tally.add(result)
        progress.advance(result["size"])
        if as_json:
            results.append(result)
        else:
            progress.clear()
            _print_result(result, out)
    progress.clear()
    summary = tally.summary(time.perf_counter() - started, workers)
    if as_json:
        document = {"files": results, "summary": summary}
        out.write(msgspec.json.format(msgspec.json.encode(document)).decode() + "\n")
    else:
        print(summary_of(summary), file=out)
    if tally.checked == 0:
        raise ConfigError(
            "no file was recognised as FHIR JSON/XML/NDJSON or HL7 v2: choose one with --format"
        )
    return 1 if tally.invalid else 0


def _workers(jobs: int | None, count: int, total: int) -> int:
    if jobs is not None:
        return max(1, min(jobs, count))
    if count < 2 or total < POOL_MIN_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, count))


def _run(tasks: list[Task], workers: int) -> Iterator[dict[str, Any]]:
    if workers == 1:
        yield from map(check_file, tasks)
        return
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(1, len(tasks) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(check_file, tasks, chunksize=chunk)


def check_file(task: Task) -> dict[str, Any]:
    """Validate one file (in a worker process for large inputs); a plain-data result.

    A gzip file is validated decoded, as the HTTP door validates a body sent with
    ``Content-Encoding: gzip``, and identified by its name without ``.gz``."""
    name, format, content_type, version, level = task
    path = Path(name)
    result: dict[str, Any] = {"path": name, "size": _size(path)}
    with _open(path) as handle:
        try:
            head = handle.read(CHUNK)
        except _GZIP_ERRORS as exc:
            return _invalid(result, _gzip_reason(exc))
        named = path.with_suffix("") if isinstance(handle, gzip.GzipFile) else path
        kind = (format, content_type) if format and content_type else identify(named, head)
        if kind is None:
            return {**result, "status": "skipped", "reason": "not FHIR or HL7 v2"}
        fmt, ctype = kind
        result.update(format=fmt, content_type=ctype)
        fhir_version = version or ("R4" if fmt == "fhir" else None)
        validator = formats.validator_for(fmt, ctype, version=fhir_version, level=level)
        try:
            chunk = head
            while chunk:
                validator.feed(chunk)
                chunk = handle.read(CHUNK)
            if not head:
                raise InvalidPayload("empty file")
            metadata = validator.finish()
        except InvalidPayload as exc:
            return _invalid(result, exc.reason, exc.location, exc.issues)
        except _GZIP_ERRORS as exc:
            return _invalid(result, _gzip_reason(exc))
    return {**result, "status": "valid", "metadata": metadata}


# What reading a gzip file that is cut short or corrupt raises.
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


@contextlib.contextmanager
def _open(path: Path) -> Iterator[io.BufferedIOBase]:
    """The file's bytes: decoded when it is gzip (it starts with the gzip magic number).
    Opened once and peeked at, so a pipe (``<(zcat …)``) loses nothing."""
    with path.open("rb") as raw:
        if raw.peek(2)[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=raw, mode="rb") as decoded:
                yield decoded
        else:
            yield raw


def _gzip_reason(exc: Exception) -> str:
    if isinstance(exc, EOFError):
        return "not valid gzip: the file ends before the end of its gzip stream"
    return f"not valid gzip: {exc}"


def _invalid(
    result: dict[str, Any],
    reason: str,
    location: str | None = None,
    issues: Iterable[Issue] = (),
) -> dict[str, Any]:
    listed = [issue_dict(issue) for issue in issues] or [
        {"severity": "fatal", "code": "invalid", "diagnostics": reason}
    ]
    return {**result, "status": "invalid", "reason": reason, "location": location, "issues": listed}


def identify(path: Path, head: bytes) -> tuple[str, str] | None:
    """``(format, content_type)`` from the extension or the first bytes; None if neither."""
    if path.suffix.lower() in EXTENSIONS:
        return EXTENSIONS[path.suffix.lower()]
    kind = detect(path, head)
    if kind != ("hl7", "text"):
        return kind
    return kind if _HL7_HEADER.search(head[:4096].removeprefix(b"\xef\xbb\xbf")) else None


def _print_result(result: dict[str, Any], out: TextIO) -> None:
    path, status = result["path"], result["status"]
    if status == "skipped":
        print(f"SKIPPED {path}: {result['reason']} (choose a format with --format)", file=out)
        return
    # A gzip file that cannot be read is invalid before its format is known.
    kind = f" ({result['format']}/{result['content_type']})" if "format" in result else ""
    if status == "invalid":
        where = f" [{result['location']}]" if result.get("location") else ""
        print(f"INVALID {path}{kind}: {result['reason']}{where}", file=out)
        for issue in result["issues"][1:]:
            print(f"    {issue_line(issue)}", file=out)
        return
    metadata = result["metadata"]
    print(f"OK      {path}{kind}{_describe(metadata)}", file=out)
    for finding in metadata.get("findings", []):
        print(f"    {issue_line(finding)}", file=out)


def _describe(meta: dict[str, Any]) -> str:
    if "resource_type" in meta:
        text = f": {meta['resource_type']}"
        if meta.get("bundle_type"):
            text += f" ({meta['bundle_type']}, {meta.get('entry_count', 0)} entries)"
        return text
    if "line_count" in meta:
        return f": {meta['resource_count']} resources on {meta['line_count']} lines"
    if "message_count" in meta:
        kind = "^".join(p for p in (meta.get("message_type"), meta.get("trigger_event")) if p)
        return f": {meta['message_count']} message(s) {kind} v{meta.get('hl7_version')}"
    return ""


def split_bundles(paths: Iterable[str], out_dir: str, *, out: TextIO = sys.stdout) -> int:
    """Split every Bundle into one file per resource; 0 if all could be read."""
    from mm_bronze.formats.fhir.split import split_bundle

    target = Path(out_dir)
    failed = 0
    total = 0
    files: set[Path] = set()
    for path in _files(paths, ("*.json",)):
        try:
            written = split_bundle(path, target)
        except (InvalidPayload, OSError) as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        total += len(written)
        files.update(written)
        print(f"{path}: {len(written)} resources", file=out)
    print(f"{total} resources written to {len(files)} files under {target}", file=out)
    return 1 if failed else 0


def _files(paths: Iterable[str], patterns: tuple[str, ...]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for pattern in patterns:
                yield from sorted(p for p in path.rglob(pattern) if p.is_file())
        else:
            yield path


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
