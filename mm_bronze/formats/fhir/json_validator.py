"""FHIR JSON: a JSON object whose structure matches the declared FHIR version.

A body decoded at once (up to ``BUFFER_LIMIT``) first goes through the compiled fast path
(``fast.decider``), which accepts it without any Python walk when it is valid; whatever the
fast path does not accept is walked by ``json_tree.TreeWalker``, which finds and locates every
problem and has the final word. Larger bodies are split as they stream in (``json_stream``).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec

from mm_bronze.formats.base import STRICT, Findings
from mm_bronze.formats.bom import BOM, LeadingBom
from mm_bronze.formats.encoding import Opening
from mm_bronze.formats.fhir.fast.decider import EntryFacts, decide, entries_facts
from mm_bronze.formats.fhir.json_events import JsonWalker
from mm_bronze.formats.fhir.json_stream import JsonSplitter
from mm_bronze.formats.fhir.json_tree import TreeWalker
from mm_bronze.formats.fhir.model import VERSIONS, canonical_version, model
from mm_bronze.formats.fhir.structure import StructureChecker, too_deep

# Bodies up to this size are parsed at once with msgspec (fast); larger ones are split as
# they stream in (``json_stream``), so they are never held whole in memory.
BUFFER_LIMIT = 4 * 1024 * 1024
# A UTF-8 byte order mark may precede the JSON (editors on Windows write one): it is skipped
# for parsing, kept in the stored bytes, and recorded as ``bom: true``.


def checker_for(version: str | None, findings: Findings, *, note: bool = True) -> StructureChecker:
    """A structure checker for a declared version (syntax-only if the version is unknown,
    which is noted in ``findings`` unless ``note`` is false)."""
    canonical = canonical_version(version)
    if canonical is None:
        if note:
            why = (
                f"FHIR version {version!r} is not one of {', '.join(VERSIONS)}"
                if version
                else "no FHIR version declared"
            )
            findings.add("information", "not-supported", f"{why}: resource structure not checked")
        return StructureChecker(None, findings)
    return StructureChecker(model(canonical), findings)


class FhirJsonValidator:
    def __init__(
        self, version: str | None = None, level: str = STRICT, *, note_version: bool = True
    ) -> None:
        self.findings = Findings(level)
        self.version = version
        self.checker = checker_for(version, self.findings, note=note_version)
        self._walker = JsonWalker(self.checker)
        self._buffer: list[bytes] = []
        self._size = 0
        self._splitter: JsonSplitter | None = None
        self._lead = LeadingBom()
        self._opening = Opening()  # the first bytes after a BOM

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._lead.found is None:
            head = self._lead.first(chunk)
            if head is None:
                return
            chunk = head[len(BOM) :] if self._lead.found else head
        if not chunk:
            return
        if not self._opening.settled:
            # A UTF-16 or UTF-32 body is refused whether it is decoded whole or streamed:
            # JSON holds no NUL byte and no such byte order mark, so it is malformed anyway,
            # and this says why.
            if (problem := self._opening.take(chunk)) is not None:
                self._malformed(f"not UTF-8 ({problem})", "line 1, column 1")
            if not self._opening.settled:  # too few bytes to tell yet: hold them
                self._buffer.append(chunk)
                return
        if self._splitter is None and self._size <= BUFFER_LIMIT:
            self._buffer.append(chunk)
            return
        if self._splitter is None:
            canonical = canonical_version(self.version)
            if canonical is not None:
                self._walker.entries_facts = functools.partial(_entries_facts, canonical)
            self._splitter = JsonSplitter(self._walker, self.findings)
            buffered, self._buffer = b"".join(self._buffer), []
            self._splitter.feed(buffered)
        self._splitter.feed(chunk)

    def _malformed(self, detail: str, location: str | None = None) -> None:
        self.findings.add("fatal", "invalid", f"malformed JSON: {detail}", location=location)

    def finish(self) -> dict[str, Any]:
        if self._lead.found is None:  # fewer bytes than a BOM: not JSON, said below
            self._buffer.append(self._lead.held())
        if self._splitter is None:
            data = b"".join(self._buffer)
            canonical = canonical_version(self.version)
            fast = decide(data, canonical) if canonical is not None else None
            if fast is not None:
                # Proven valid: no findings, so the verdict is the same at every level.
                return self._metadata(fast)
            try:
                document = msgspec.json.decode(data)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                detail, location = decode_error(exc, data)
                self._malformed(detail, location)
            except RecursionError:
                too_deep(self.findings, "JSON", None)
            TreeWalker(self.checker).check(document, data)
        else:
            self._splitter.finish()
        summary = self.checker.summary
        if summary.resource_type is None:
            self.findings.add("fatal", "required", "FHIR JSON must have a resourceType")
        return self._metadata(summary.metadata())

    def _metadata(self, meta: dict[str, Any]) -> dict[str, Any]:
        meta["fhir_version"] = canonical_version(self.version) or self.version
        if self._lead.found:
            meta["bom"] = True
        return self.findings.record(meta)


def _entries_facts(version: str, pieces: list[bytes], depth: int) -> list[EntryFacts | None]:
    return entries_facts(pieces, version, depth)


def decode_error(
    exc: msgspec.DecodeError | UnicodeDecodeError, data: bytes
) -> tuple[str, str | None]:
    """msgspec's message without its prefix, and its byte offset as a line and column.

    Invalid UTF-8 is reported the same way whichever error msgspec raises for it (before 0.23
    a ``UnicodeDecodeError``; from 0.23 a ``DecodeError`` "Invalid UTF-8 encoded string"
    without an offset), located at the first invalid byte.
    """
    if isinstance(exc, UnicodeDecodeError) or "UTF-8" in str(exc):
        return "not valid UTF-8", position(data, first_invalid_utf8(data))
    message = str(exc).removeprefix("JSON is malformed: ")
    if message == "Input data was truncated" and (lone := lone_surrogate(data)) is not None:
        # msgspec's words for a high surrogate escape that no low one follows.
        return "a UTF-16 high surrogate escape (\\uD800 to \\uDBFF) without its low half", (
            position(data, lone)
        )
    detail, sep, rest = message.rpartition(" (byte ")
    if not sep:
        return message, None
    try:
        offset = int(rest.rstrip(")"))
    except ValueError:
        return message, None
    if detail == "trailing characters":
        offset -= 1  # msgspec names the byte after the first one (``{}x``: byte 3)
    return detail, position(data, offset)


_HIGH_SURROGATE = re.compile(rb"(\\+)u[dD][89abAB][0-9a-fA-F]{2}")


def lone_surrogate(data: bytes) -> int | None:
    """The offset of the first high surrogate escape that is not followed by a ``\\u`` escape
    and is not the end of ``data`` (a body cut there is truncated), or None."""
    for match in _HIGH_SURROGATE.finditer(data):
        backslashes = match.group(1)
        if len(backslashes) % 2 == 0:  # an escaped backslash, then the letter u
            continue
        end = match.end()
        if end < len(data) and data[end : end + 2] != b"\\u":
            return match.start() + len(backslashes) - 1
    return None


def first_invalid_utf8(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return 0


def position(data: bytes, offset: int) -> str:
    """A byte offset as ``line L, column C`` (both from 1)."""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"
