"""FHIR bulk data NDJSON: one FHIR JSON resource per line; findings name the line."""

from __future__ import annotations

from typing import Any

import msgspec

from mm_bronze.errors import InvalidPayload, Issue
from mm_bronze.formats.base import STRICT, Findings
from mm_bronze.formats.fhir.json_tree import TreeWalker
from mm_bronze.formats.fhir.json_validator import checker_for, decode_error
from mm_bronze.formats.fhir.model import canonical_version
from mm_bronze.formats.fhir.structure import StructureChecker


class FhirNdjsonValidator:
    """Checks each complete line as it arrives; only the current line is buffered."""

    def __init__(self, version: str | None = None, level: str = STRICT) -> None:
        self.findings = Findings(level)
        self.version = version
        self._model = checker_for(version, self.findings).model  # notes an unknown version
        self._partial = bytearray()
        self._line = 0
        self._resources = 0
        self._types: dict[str, int] = {}

    def feed(self, chunk: bytes) -> None:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if self._partial:
                self._partial += chunk[start:end]
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = chunk[start:end]
            self._check_line(line)
            start = end + 1
        self._partial += chunk[start:]

    def _check_line(self, line: bytes) -> None:
        self._line += 1
        where = f"line {self._line}"
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            self.findings.add("warning", "structure", f"{where} is blank", location=where)
            return
        try:
            document = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            detail, column = decode_error(exc, line)
            column = column.replace("line 1, ", "") if column else None
            self.findings.add(
                "error",
                "invalid",
                f"{where}: malformed JSON: {detail}",
                location=f"{where}, {column}" if column else where,
            )
            return
        if not isinstance(document, dict):
            self.findings.add(
                "error", "structure", f"{where}: must be a JSON object", location=where
            )
            return
        line_findings = Findings(self.findings.level)
        checker = StructureChecker(self._model, line_findings)
        try:
            TreeWalker(checker).resource(document)
        except InvalidPayload as exc:
            raise _at_line(exc, where) from None
        for issue in line_findings.issues:  # recorded or rejecting, per the level
            self.findings.add(
                issue.severity,
                issue.code,
                f"{where}: {issue.diagnostics}",
                expression=issue.expression,
                location=where,
            )
        resource_type = checker.summary.resource_type
        if resource_type is None:
            self.findings.add(
                "error", "required", f"{where}: a resource must have a resourceType", location=where
            )
            return
        self._resources += 1
        self._types[resource_type] = self._types.get(resource_type, 0) + 1

    def finish(self) -> dict[str, Any]:
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            self._check_line(line)
        if self._resources == 0:
            self.findings.add("fatal", "required", "FHIR NDJSON must hold at least one resource")
        meta: dict[str, Any] = {
            "line_count": self._line,
            "resource_count": self._resources,
            "resource_types": dict(sorted(self._types.items())),
            "fhir_version": canonical_version(self.version) or self.version,
        }
        return self.findings.record(meta)


def _at_line(exc: InvalidPayload, where: str) -> InvalidPayload:
    issues = [
        Issue(i.severity, i.code, f"{where}: {i.diagnostics}", i.expression, where)
        for i in exc.issues
    ]
    return InvalidPayload(f"{where}: {exc.reason}", location=where, issues=issues, code=exc.code)
