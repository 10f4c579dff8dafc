"""FHIR ``OperationOutcome`` bodies for rejected payloads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mm_bronze.errors import Issue


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """An R4/R5 ``OperationOutcome`` with one ``issue`` per finding."""
    out = []
    for issue in issues:
        entry: dict[str, Any] = {
            "severity": issue.severity,
            "code": issue.code,
            "diagnostics": issue.diagnostics,
        }
        if issue.expression:
            entry["expression"] = [issue.expression]
        if issue.location:
            entry["location"] = [issue.location]
        out.append(entry)
    return {"resourceType": "OperationOutcome", "issue": out}
