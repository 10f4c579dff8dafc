"""FHIR bulk data NDJSON: one FHIR JSON resource per line; findings name the line."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, cast

from mm_bronze.errors import InvalidPayload, Issue
from mm_bronze.formats.base import LENIENT, STRICT, Findings
from mm_bronze.formats.fhir import json_validator
from mm_bronze.formats.fhir.fast.decider import (
    LeanFirst,
    block_kinds,
    collection_paused,
    line_kinds,
)
from mm_bronze.formats.fhir.json_validator import FhirJsonValidator, checker_for
from mm_bronze.formats.fhir.model import canonical_version

# Complete lines are gathered up to this size before the fast path checks them together: the
# formats of a block are checked in one batch, once per distinct value, so 64 KiB chunks cost
# a tenth more than one block for a whole file.
BLOCK = 1024 * 1024


class FhirNdjsonValidator:
    """Checks each line, as it arrives, as a FHIR JSON body.

    Complete lines are gathered up to ``BLOCK``, as the runs of them each chunk holds, and go
    through the fast path together: each run decoded in one call when every line is a compact
    resource (``block_kinds``: to the lean types until a block holds what they leave out),
    else line by line (``line_kinds``: each decoded at C speed, the formats of all checked in
    one batch); a line that spans chunks is held until it ends and then joins the next
    chunk's lines, unless it grows beyond ``BUFFER_LIMIT``: then, as a line the fast path
    does not accept, it goes to its own FHIR JSON validator (which streams it, so a long line
    is never held whole). The line validators collect everything (lenient); this validator's level
    decides what rejects the file.
    """

    def __init__(self, version: str | None = None, level: str = STRICT) -> None:
        self.findings = Findings(level)
        self.version = version
        checker_for(version, self.findings)  # notes an unknown version, once
        self._line = 0
        self._current: FhirJsonValidator | None = None
        self._held: list[bytes] = []  # the start of a line that spans chunks
        self._held_size = 0
        self._pending: list[bytes] = []  # runs of complete lines not yet checked
        self._pending_size = 0
        self._blank = True
        self._failed = False
        self._resources = 0
        self._types: dict[str, int] = {}
        self._fast = canonical_version(version)
        self._lean = LeanFirst()
        self._bom = False

    def feed(self, chunk: bytes) -> None:
        start = 0
        head = b""
        if self._current is not None:  # the end of a long line begun in an earlier chunk
            end = chunk.find(b"\n")
            if end == -1:
                self._piece(chunk)
                return
            self._piece(chunk[:end])
            self._end_line()
            start = end + 1
        elif self._held:  # the end of a held line goes with this chunk's complete lines
            if chunk.find(b"\n") == -1:
                self._hold(chunk)
                return
            head = b"".join(self._held)
            self._held = []
            self._held_size = 0
        end = chunk.rfind(b"\n")
        if end >= start:  # complete lines, always when a held line (``head``) ends here
            self._gather(head + chunk[start:end] if head else chunk[start:end])
            start = end + 1
        if start < len(chunk):
            self._hold(chunk[start:])

    def _hold(self, piece: bytes) -> None:
        """Keep the start of a line until it ends, or stream it once it is too long."""
        if self._current is None and self._held_size + len(piece) <= json_validator.BUFFER_LIMIT:
            self._held.append(piece)
            self._held_size += len(piece)
            return
        self._flush()  # the lines before this one come first
        held, self._held, self._held_size = self._held, [], 0
        for part in held:
            self._piece(part)
        self._piece(piece)

    def _gather(self, run: bytes) -> None:
        """Keep complete lines (one newline between each) until ``BLOCK`` of them are
        waiting, then check them."""
        self._pending.append(run)
        self._pending_size += len(run) + 1
        if self._pending_size >= BLOCK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            pending, self._pending, self._pending_size = self._pending, [], 0
            self._runs(pending)

    def _runs(self, runs: list[bytes]) -> None:
        """Runs of complete lines: at once when the fast path takes every line as it stands,
        else line by line."""
        if self._fast is not None:
            with collection_paused():
                counted = block_kinds(runs, self._fast, self._lean)
            if counted is not None:
                self._accepted(counted)
                return
        lines: list[bytes] = []
        for run in runs:
            within, last = _lines_of(run, 0)
            lines += within
            lines.append(last)
        self._lines(lines)

    def _lines(self, lines: list[bytes]) -> None:
        """Complete lines: the fast path accepts the valid ones, the walker checks the rest."""
        if self._fast is None:
            for line in lines:
                self._slow_line(line)
            return
        with collection_paused():
            kinds = line_kinds(lines, self._fast, self._lean)
        if None not in kinds:
            self._accepted(cast("Counter[str]", Counter(kinds)))  # no None in it
            return
        for line, kind in zip(lines, kinds, strict=True):
            if kind is None:
                self._slow_line(line)
            else:
                self._accepted({kind: 1})

    def _accepted(self, types: Mapping[str, int]) -> None:
        """Count lines the fast path accepted, ``types`` giving how many of each resource
        type."""
        for name, count in types.items():
            self._line += count
            self._resources += count
            self._types[name] = self._types.get(name, 0) + count

    def _slow_line(self, line: bytes) -> None:
        self._piece(line)
        self._end_line()

    def _piece(self, piece: bytes) -> None:
        if self._current is None:
            self._current = FhirJsonValidator(self.version, LENIENT, note_version=False)
            self._blank = True
            self._failed = False
        if self._blank and piece.strip():
            self._blank = False
        if self._failed or not piece:
            return
        try:
            self._current.feed(piece)
        except InvalidPayload as exc:
            self._failed = True
            self._reject_line(exc)

    def _end_line(self) -> None:
        self._line += 1
        where = f"line {self._line}"
        current, self._current = self._current, None
        if current is None or self._blank:
            self.findings.add("warning", "structure", f"{where} is blank", location=where)
            return
        if self._failed:
            return
        try:
            meta = current.finish()
        except InvalidPayload as exc:
            self._reject_line(exc)
            return
        for issue in current.findings.kept():
            self._add(issue)
        if meta.get("bom"):  # a UTF-8 BOM may only start the file
            if self._line == 1:
                self._bom = True
            else:
                message = f"{where}: a byte order mark is only allowed at the start of the file"
                self.findings.add("error", "invalid", message, location=where)
        self._resources += 1
        resource_type = meta["resource_type"]
        self._types[resource_type] = self._types.get(resource_type, 0) + 1

    def _reject_line(self, exc: InvalidPayload) -> None:
        """A line that is not a FHIR resource at all is an error of the file, not fatal."""
        for issue in exc.issues:
            severity = "error" if issue.severity == "fatal" else issue.severity
            self._add(
                Issue(severity, issue.code, issue.diagnostics, issue.expression, issue.location)
            )

    def _add(self, issue: Issue) -> None:
        where = f"line {self._line + (0 if self._current is None else 1)}"
        location = issue.location or ""
        location = location.replace("line 1, ", "") if location.startswith("line 1, ") else location
        self.findings.add(
            issue.severity,
            issue.code,
            f"{where}: {issue.diagnostics}",
            expression=issue.expression,
            location=f"{where}, {location}" if location else where,
        )

    def finish(self) -> dict[str, Any]:
        if self._held:
            last = b"".join(self._held)
            self._held = []
            if last.strip():  # not just trailing whitespace after the last newline
                self._gather(last)
        self._flush()
        if self._current is not None:
            if self._blank:
                self._current = None  # trailing whitespace after the last newline
            else:
                self._end_line()
        if self._resources == 0:
            # Lines that failed are why there is no resource: when they reject, the reason
            # is theirs (say, the JSON of a file whose line breaks were removed).
            self.findings.settle()
            self.findings.add("fatal", "required", "FHIR NDJSON must hold at least one resource")
        meta: dict[str, Any] = {
            "line_count": self._line,
            "resource_count": self._resources,
            "resource_types": dict(sorted(self._types.items())),
            "fhir_version": canonical_version(self.version) or self.version,
        }
        if self._bom:
            meta["bom"] = True
        return self.findings.record(meta)


def _lines_of(chunk: bytes, start: int) -> tuple[list[bytes], bytes]:
    """The complete lines of ``chunk`` from ``start``, and what follows the last newline.

    Each newline is found with ``find`` (memchr): ``bytes.split`` looks at every byte in
    turn, which cost more than the loop over lines (a resource per line, a few KB each)."""
    lines: list[bytes] = []
    append = lines.append
    find = chunk.find
    end = find(b"\n", start)
    while end != -1:
        append(chunk[start:end])
        start = end + 1
        end = find(b"\n", start)
    return lines, chunk[start:]
