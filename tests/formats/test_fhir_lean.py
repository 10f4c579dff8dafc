"""The lean types of the fast path: they leave out only optional elements that bulk data
seldom holds, decode what they take to the values the full types decode it to, and an NDJSON
file that holds what they leave out is checked by the full types, with the same verdicts.

(Every corpus file and mutation is also decoded to both by ``test_fhir_fast``: the lean types
never decode what the full types refuse, nor to other values.)"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.fhir import ndjson_validator
from mm_bronze.formats.fhir.fast import decider
from tests.formats.helpers import validate
from tests.formats.test_fhir_fast import CORPUS, decoded_to, walker_verdict

PRIMITIVES = {
    "String",
    "Boolean",
    "Integer",
    "PositiveInt",
    "UnsignedInt",
    "Decimal",
    "Raw",
}


def _modules(version: str) -> tuple[Any, Any]:
    name = f"mm_bronze.formats.fhir.fast.{version.lower()}"
    return importlib.import_module(name), importlib.import_module(f"{name}_lean")


def _left_out_on_purpose(cls: type, field: str, resources: set[str]) -> bool:
    if field.startswith("_") or field in ("modifierExtension", "implicitRules"):
        return True
    if field == "id":
        return cls.__name__ not in resources
    return cls.__name__ == "Extension" and field.startswith("value")


@pytest.mark.parametrize("version", ["R4", "R4B", "R5"])
def test_lean_types_leave_out_only_optional_elements_data_seldom_holds(version: str) -> None:
    full, lean = _modules(version)
    resources = set(decider.types(version).tags.values())
    left_out: dict[str, int] = {}
    for cls in full._STRUCTS:
        lean_cls = getattr(lean, cls.__name__)
        names = cls.__struct_encode_fields__
        kept = lean_cls.__struct_encode_fields__
        assert set(kept) <= set(names), cls.__name__
        # The fields kept come in the same order, with the same requirements.
        assert [n for n in names if n in kept] == list(kept)
        required = set(names[: len(names) - len(cls.__struct_defaults__)])
        assert required == set(kept[: len(kept) - len(lean_cls.__struct_defaults__)])
        for name in set(names) - set(kept):
            assert name not in required, (cls.__name__, name)
            assert _left_out_on_purpose(cls, name, resources), (cls.__name__, name)
            kind = "value[x]" if cls.__name__ == "Extension" else name.split("_")[0] or "_"
            left_out[kind] = left_out.get(kind, 0) + 1
    # Extension keeps its primitive members and the most common complex ones.
    extension = lean.Extension.__struct_encode_fields__
    assert {"valueString", "valueCode", "valueCodeableConcept", "valueAddress"} <= set(extension)
    assert not {"valueTiming", "valueMeta", "valueDosage"} & set(extension)
    assert left_out["_"] > 1000 and left_out["id"] > 100 and left_out["modifierExtension"] > 100


def _corpus_lines() -> list[bytes]:
    lines = []
    for path in sorted((CORPUS / "ndjson").glob("*.ndjson")):
        lines += [line for line in path.read_bytes().splitlines() if line]
    return lines


def test_every_corpus_ndjson_line_decodes_to_the_lean_types_as_to_the_full_ones() -> None:
    lean, full = decider.lean_types("R4"), decider.types("R4")
    lines = _corpus_lines()
    assert len(lines) > 900
    for line in lines:
        lean_doc, full_doc = decoded_to(lean, line), decoded_to(full, line)
        assert lean_doc is not None and full_doc is not None
        assert msgspec.json.encode(lean_doc) == msgspec.json.encode(full_doc)


def test_corpus_json_decodes_to_the_lean_types_only_as_to_the_full_ones() -> None:
    taken = 0
    for path in sorted(Path(CORPUS).glob("fhir-r4-*/*.json")):
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
        lean_doc = decoded_to(decider.lean_types("R4"), data)
        if lean_doc is None:
            continue
        taken += 1
        full_doc = decoded_to(decider.types("R4"), data)
        assert full_doc is not None, path.name
        assert msgspec.json.encode(lean_doc) == msgspec.json.encode(full_doc), path.name
    assert taken >= 10


PATIENT = b'{"resourceType":"Patient","id":"p0","birthDate":"1970-01-01"}'
# One line each holding an element the lean types leave out (all valid).
SELDOM = [
    b'{"resourceType":"Patient","id":"p1","birthDate":"1970","_birthDate":{"id":"b"}}',
    b'{"resourceType":"Patient","id":"p2","modifierExtension":[{"url":"http://x","valueBoolean":true}]}',
    b'{"resourceType":"Patient","id":"p3","implicitRules":"http://example.org/rules"}',
    b'{"resourceType":"Patient","id":"p4","name":[{"id":"n1","family":"Doe"}]}',
    b'{"resourceType":"Patient","id":"p5","extension":[{"url":"http://x","valueTiming":{"event":["2020-01-01"]}}]}',
    b'{"resourceType":"Patient","id":"p6","extension":[{"url":"http://x","valueAge":{"value":3}}]}',
]


def _spied(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, bool]]:
    """Each call of ``block_kinds``: whether it accepted, and whether lean types still go
    first after it."""
    calls: list[tuple[bool, bool]] = []

    def spy(runs: list[bytes], version: str, lean: decider.LeanFirst) -> Any:
        found = decider.block_kinds(runs, version, lean)
        calls.append((found is not None, lean.on))
        return found

    monkeypatch.setattr(ndjson_validator, "block_kinds", spy)
    return calls


@pytest.mark.parametrize("line", SELDOM, ids=range(len(SELDOM)))
def test_a_file_holding_what_the_lean_types_leave_out_is_taken_by_the_full_types(
    line: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert decoded_to(decider.lean_types("R4"), line) is None
    assert decoded_to(decider.types("R4"), line) is not None
    body = PATIENT + b"\n" + line + b"\n"
    calls = _spied(monkeypatch)
    meta = validate(body, content_type="ndjson", chunk=1 << 20)
    assert calls == [(True, False)]  # accepted at once, by the full types
    assert meta["resource_count"] == 2
    monkeypatch.undo()
    assert meta == walker_verdict(body, content_type="ndjson")


def test_once_a_block_needs_the_full_types_the_rest_of_the_file_goes_to_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ndjson_validator, "BLOCK", 1)  # a block per chunk
    calls = _spied(monkeypatch)
    lines = [PATIENT, PATIENT, SELDOM[1], PATIENT]
    body = b"".join(line + b"\n" for line in lines)
    meta = validate(body, content_type="ndjson", chunk=len(PATIENT) + 1)
    assert calls == [(True, True), (True, True), (True, False), (True, False)]
    assert meta["resource_count"] == 4


def test_single_payloads_skip_the_lean_types_for_a_while_after_a_miss() -> None:
    lean = decider.LeanFirst(pause=3)
    assert [lean.first() for _ in range(3)] == [True] * 3
    lean.missed()
    assert [lean.first() for _ in range(5)] == [False, False, False, True, True]
    for_good = decider.LeanFirst()
    for_good.missed()
    assert not any(for_good.first() for _ in range(100))


@pytest.mark.parametrize("line", SELDOM[:3], ids=range(3))
def test_a_payload_holding_what_the_lean_types_leave_out_gets_the_walkers_verdict(
    line: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = decider.LeanFirst(pause=2)
    monkeypatch.setattr(decider, "_payloads", payloads)
    meta = validate(line)
    assert not payloads.on  # it decoded to the full types only
    assert validate(PATIENT) == walker_verdict(PATIENT)  # the full types alone: paused
    assert meta == walker_verdict(line) and meta["resource_type"] == "Patient"


@pytest.mark.parametrize(
    ("bad", "lean_after"),
    [
        # Decodes to the full types only (then its uri fails): the file holds what the lean
        # types leave out.
        (b'{"resourceType":"Patient","id":"p7","modifierExtension":[{"url":"a b"}]}', False),
        # Decodes to neither (an extension without its url): that changes nothing.
        (b'{"resourceType":"Patient","id":"p8","modifierExtension":[{"valueCode":"a"}]}', True),
    ],
)
def test_an_invalid_line_is_still_found_after_the_lean_types_refuse_it(
    bad: bytes, lean_after: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = PATIENT + b"\n" + bad + b"\n"
    calls = _spied(monkeypatch)
    with pytest.raises(InvalidPayload) as caught:
        validate(body, content_type="ndjson")
    assert calls == [(False, lean_after)]
    assert "line 2" in str(caught.value.issues[0].location)
    monkeypatch.undo()
    assert walker_verdict(body, content_type="ndjson") is None


@pytest.mark.parametrize("line", SELDOM[:3], ids=range(3))
def test_lines_taken_one_by_one_go_to_the_lean_types_first_too(
    line: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blank line sends the block line by line (``line_kinds``): the lines before the one
    holding a left-out element decode to the lean types, that one and the rest to the full
    types, with the walker's verdict."""
    seen: list[bool] = []

    def spy(lines: list[bytes], version: str, lean: decider.LeanFirst) -> Any:
        found = decider.line_kinds(lines, version, lean)
        seen.append(lean.on)
        return found

    monkeypatch.setattr(ndjson_validator, "line_kinds", spy)
    body = PATIENT + b"\n\n" + line + b"\n" + PATIENT + b"\n"
    meta = validate(body, content_type="ndjson", chunk=1 << 20)
    assert seen == [False]
    assert meta["resource_count"] == 3
    monkeypatch.undo()
    assert meta == walker_verdict(body, content_type="ndjson")
    # Without such a line the lean types take every line.
    lean = decider.LeanFirst()
    assert decider.line_kinds([PATIENT, PATIENT], "R4", lean) == ["Patient", "Patient"]
    assert lean.on
