"""Offline tools: ``mm-bronze validate`` and ``mm-bronze fhir split``.

``validate`` checks files exactly as the HTTP door would (the same validators, through
``formats.validator_for``). Files it cannot identify as FHIR or HL7 v2 are skipped and
counted; large inputs are validated in a pool of worker processes, one per core.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import msgspec

from mm_bronze import formats
from mm_bronze.errors import ConfigError, InvalidPayload
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
    """Validate one file (in a worker process for large inputs); a plain-data result."""
    name, format, content_type, version, level = task
    path = Path(name)
    result: dict[str, Any] = {"path": name, "size": _size(path)}
    with path.open("rb") as handle:
        head = handle.read(CHUNK)
        kind = (format, content_type) if format and content_type else identify(path, head)
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
            return {
                **result,
                "status": "invalid",
                "reason": exc.reason,
                "location": exc.location,
                "issues": [issue_dict(issue) for issue in exc.issues],
            }
    return {**result, "status": "valid", "metadata": metadata}


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
    kind = f"({result['format']}/{result['content_type']})"
    if status == "invalid":
        where = f" [{result['location']}]" if result.get("location") else ""
        print(f"INVALID {path} {kind}: {result['reason']}{where}", file=out)
        for issue in result["issues"][1:]:
            print(f"    {issue_line(issue)}", file=out)
        return
    metadata = result["metadata"]
    print(f"OK      {path} {kind}{_describe(metadata)}", file=out)
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
