"""The validator interface, validation levels, and the findings a validator collects."""

from __future__ import annotations

from typing import Any, Protocol

from mm_bronze.errors import InvalidPayload, Issue

STRICT = "strict"
LENIENT = "lenient"
LEVELS = (STRICT, LENIENT)

# Findings kept in a submission's metadata; the rest are only counted.
MAX_RECORDED = 20


class PayloadValidator(Protocol):
    """Validates one payload incrementally; never holds more than it needs in memory.

    ``feed`` may raise ``InvalidPayload`` as soon as the bytes seen so far are wrong;
    ``finish`` raises it for problems found at the end and otherwise returns the metadata
    extracted from the payload (JSON-serialisable, never patient data).
    """

    def feed(self, chunk: bytes) -> None: ...

    def finish(self) -> dict[str, Any]: ...


class Findings:
    """Collects a payload's issues and decides, by level, whether they reject it.

    ``fatal`` issues (the payload is not the declared format at all) reject at once;
    ``error`` issues (syntax, structure) reject at the ``strict`` level when the validator
    calls ``settle`` at the end, so a rejection lists every error found (and a syntax error
    later in the stream still wins over a structure error before it); at the ``lenient``
    level they are recorded in the metadata. Warnings and information (e.g. profile or
    vocabulary level) never reject.
    """

    def __init__(self, level: str = STRICT) -> None:
        if level not in LEVELS:
            raise ValueError(f"validation level must be one of {', '.join(LEVELS)}")
        self.level = level
        self.issues: list[Issue] = []  # the first MAX_RECORDED, whatever their severity
        # Errors found once ``issues`` is full: a rejection still names them (after twenty
        # warnings, say), and so does a file that gathers its lines' findings (``kept``).
        self._late_errors: list[Issue] = []
        self.count = 0
        self.rejected = False

    def add(
        self,
        severity: str,
        code: str,
        diagnostics: str,
        *,
        expression: str | None = None,
        location: str | None = None,
    ) -> None:
        """Record an issue; raises ``InvalidPayload`` at once for a fatal one."""
        issue = Issue(severity, code, diagnostics, expression, location)
        if severity == "fatal":
            raise _rejection([issue, *self.errors()])
        self.count += 1
        if len(self.issues) < MAX_RECORDED:
            self.issues.append(issue)
        elif severity == "error" and len(self._late_errors) < MAX_RECORDED:
            self._late_errors.append(issue)
        if severity == "error" and self.level == STRICT:
            self.rejected = True

    def kept(self) -> list[Issue]:
        """The recorded issues, then the errors found once they were full."""
        return [*self.issues, *self._late_errors]

    def errors(self) -> list[Issue]:
        """The errors kept, in the order found (at most ``MAX_RECORDED``)."""
        return [i for i in self.kept() if i.severity in ("fatal", "error")][:MAX_RECORDED]

    def settle(self) -> None:
        """Raise ``InvalidPayload`` listing the errors, if the level says they reject."""
        if self.rejected:
            raise _rejection(self.errors())

    def record(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """Settle, then add the level and any findings to ``metadata`` and return it."""
        self.settle()
        metadata["validation_level"] = self.level
        if self.count:
            metadata["findings"] = [issue_dict(i) for i in self.issues]
            metadata["finding_count"] = self.count
        return metadata


def _rejection(issues: list[Issue]) -> InvalidPayload:
    first = issues[0]
    return InvalidPayload(
        first.diagnostics,
        location=first.location or first.expression,
        issues=issues,
        code=first.code,
    )


def issue_dict(issue: Issue) -> dict[str, str]:
    """An issue as plain data, without empty keys."""
    out = {"severity": issue.severity, "code": issue.code, "diagnostics": issue.diagnostics}
    if issue.expression:
        out["expression"] = issue.expression
    if issue.location:
        out["location"] = issue.location
    return out
