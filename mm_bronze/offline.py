"""Offline tools: ``mm-bronze validate`` and ``mm-bronze fhir split``."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from mm_bronze import formats
from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.base import issue_dict
from mm_bronze.formats.detect import detect
from mm_bronze.formats.fhir.split import split_bundle

CHUNK = 1024 * 1024


def validate_files(
    paths: Iterable[str],
    *,
    format: str | None = None,
    content_type: str | None = None,
    version: str | None = None,
    level: str = formats.STRICT,
    out: TextIO = sys.stdout,
) -> int:
    """Validate each file as the HTTP door would; 0 if all are valid, 1 otherwise."""
    failed = 0
    for path in _files(paths, ("*",)):
        with path.open("rb") as handle:
            head = handle.read(CHUNK)
            fmt, ctype = (format, content_type) if format and content_type else detect(path, head)
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
                failed += 1
                where = f" [{exc.location}]" if exc.location else ""
                print(f"INVALID {path} ({fmt}/{ctype}): {exc.reason}{where}", file=out)
                for issue in exc.issues[1:]:
                    print(f"    {_issue_line(issue_dict(issue))}", file=out)
                continue
        print(f"OK      {path} ({fmt}/{ctype}){_summary(metadata)}", file=out)
        for finding in metadata.get("findings", []):
            print(f"    {_issue_line(finding)}", file=out)
    return 1 if failed else 0


def split_bundles(paths: Iterable[str], out_dir: str, *, out: TextIO = sys.stdout) -> int:
    """Split every Bundle into one file per resource; 0 if all could be read."""
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


def _summary(meta: dict[str, Any]) -> str:
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


def _issue_line(issue: dict[str, str]) -> str:
    where = issue.get("location") or issue.get("expression")
    return f"{issue['severity']}: {issue['diagnostics']}" + (f" [{where}]" if where else "")
