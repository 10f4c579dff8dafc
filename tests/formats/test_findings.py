"""What a validator keeps of its findings, and what a rejection names, however many came
before the error."""

from __future__ import annotations

import pytest

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.base import LENIENT, MAX_RECORDED, STRICT, Findings


def warned(level: str, warnings: int) -> Findings:
    findings = Findings(level)
    for n in range(warnings):
        findings.add("warning", "structure", f"warning {n}")
    return findings


@pytest.mark.parametrize("warnings", [0, MAX_RECORDED - 1, MAX_RECORDED, 3 * MAX_RECORDED])
def test_an_error_after_any_number_of_warnings_rejects_and_is_named(warnings: int) -> None:
    findings = warned(STRICT, warnings)
    findings.add("error", "structure", "the error", location="line 99")
    with pytest.raises(InvalidPayload) as caught:
        findings.record({})
    assert (caught.value.reason, caught.value.location) == ("the error", "line 99")
    assert [i.diagnostics for i in caught.value.issues] == ["the error"]


def test_a_fatal_issue_after_many_warnings_names_the_errors_before_it() -> None:
    findings = warned(STRICT, MAX_RECORDED)
    findings.add("error", "structure", "an error")
    with pytest.raises(InvalidPayload) as caught:
        findings.add("fatal", "structure", "not this format at all")
    assert [i.diagnostics for i in caught.value.issues] == ["not this format at all", "an error"]


def test_lenient_metadata_keeps_the_first_findings_and_counts_every_one() -> None:
    findings = warned(LENIENT, MAX_RECORDED)
    findings.add("error", "structure", "a late error")
    meta = findings.record({})
    first = [f"warning {n}" for n in range(MAX_RECORDED)]
    assert [f["diagnostics"] for f in meta["findings"]] == first
    assert meta["finding_count"] == MAX_RECORDED + 1
    assert findings.kept()[-1].diagnostics == "a late error"  # what a file gathers of a line


def test_a_rejection_names_the_first_errors_only() -> None:
    findings = Findings(STRICT)
    for n in range(3 * MAX_RECORDED):
        findings.add("error", "structure", f"error {n}")
    with pytest.raises(InvalidPayload) as caught:
        findings.settle()
    assert [i.diagnostics for i in caught.value.issues] == [
        f"error {n}" for n in range(MAX_RECORDED)
    ]
