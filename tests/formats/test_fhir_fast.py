"""The compiled fast path: its generated types are current, and its verdicts agree with the
walker's on every corpus file and on thousands of mutations of them."""

from __future__ import annotations

import copy
import functools
import importlib.util
import itertools
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats import byte_count
from mm_bronze.formats.fhir import json_validator, ndjson_validator
from mm_bronze.formats.fhir.fast import decider
from mm_bronze.formats.fhir.fast.primitives import FormatError
from mm_bronze.formats.fhir.json_keys import shape
from mm_bronze.formats.fhir.model import model
from mm_bronze.formats.fhir.structure import MAX_DEPTH
from tests.formats.helpers import validate

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
BOM = b"\xef\xbb\xbf"
T = TypeVar("T")


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "generate_fhir_structs", ROOT / "tools" / "generate_fhir_structs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("lean", [False, True], ids=["full", "lean"])
@pytest.mark.parametrize("version", ["R4", "R4B", "R5"])
def test_generated_types_are_current(version: str, lean: bool) -> None:
    generator = _generator()
    path = generator.OUT / f"{generator.module_name(version, lean)}.py"
    assert path.read_text(encoding="utf-8") == generator.generate(version, lean), (
        f"{path.name} is stale: run python tools/generate_fhir_structs.py"
    )


PATIENT = b'{"resourceType":"Patient","id":"p1","birthDate":"1970-01-01","active":true}'


def test_fast_path_metadata_and_bom() -> None:
    meta = validate(PATIENT)
    assert fast_verdict(PATIENT) is not None
    assert meta == walker_verdict(PATIENT)
    assert "bom" not in meta
    with_bom = validate(BOM + PATIENT)
    assert with_bom == {**meta, "bom": True}
    assert validate(BOM + PATIENT, level="lenient")["bom"] is True


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceType":"Patient","id":"p1","id":"p2"}',  # a repeated key
        b'{"resourceType":"Patient","resourceType":"Patient"}',
        b'{"resourceType":"Patient","name":[{"given":["a"],"given":["b"]}]}',
        b'{"resourceType":"Patient","fhir_comments":["x"]}',
        b'{"resourceType":"Patient","deceasedBoolean":true,"deceasedDateTime":"2020"}',
        b'{"resourceType":"Patient","extension":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"resourceType":"Binary","contentType":"x","data":"YQ="}',
        b'{"resourceType":"Patient","name":[{"text":"a\\u003ab","text":"c"}]}',
        b'{"resourceType":"Patient","name":[{"text":"a:b","text":"c:d"}]}',
    ],
)
def test_fast_path_defers(body: bytes) -> None:
    """Payloads the fast path leaves to the walker (never raising, whatever the input)."""
    assert fast_verdict(body) is None


def indented_patient(names: int, repeat: bool) -> bytes:
    """An indented Patient with ``names`` names (colons inside their strings too), the last
    one naming its family twice if ``repeat``."""
    name = {"family": "F", "given": ["a:b"], "text": "c: d"}
    body = json.dumps({"resourceType": "Patient", "name": [name] * names}, indent=2).encode()
    if repeat:
        last = body.rindex(b'"family"')
        body = body[:last] + b'"family": "G",\n' + body[last:]
    return body


@pytest.mark.parametrize("names", [1, 2_000])  # counted by bytes.count, by numpy
def test_repeated_keys_in_indented_json_of_any_size(names: int) -> None:
    """Indented JSON re-encodes shorter, so the colons are counted (at memory speed once the
    payload is large): a repeated key among thousands of members is still found."""
    body = indented_patient(names, repeat=False)
    repeated = indented_patient(names, repeat=True)
    assert (len(body) < byte_count.LARGE) == (names == 1)
    assert fast_verdict(body) is not None
    assert fast_verdict(repeated) is None
    with pytest.raises(InvalidPayload) as caught:
        validate(repeated)
    assert [(i.diagnostics, i.expression) for i in caught.value.issues] == [
        ("Duplicate property 'family'", f"Patient.name[{names - 1}].family")
    ]


def nested_extensions(levels: int) -> bytes:
    """A Patient whose JSON nests ``1 + 2 * (levels + 1)`` objects and arrays deep."""
    extension = b'{"url":"x","valueString":"y"}'
    for _ in range(levels):
        extension = b'{"url":"x","extension":[' + extension + b"]}"
    return b'{"resourceType":"Patient","extension":[' + extension + b"]}"


def test_nesting_bound_is_the_walkers() -> None:
    """The walker accepts 99 levels, the fast path too up to a small margin; 101 neither
    (the walker explains); arrays alone: 90 decode, 101 do not."""
    assert fast_verdict(nested_extensions(44)) is not None
    assert walker_verdict(nested_extensions(48)) is not None
    assert fast_verdict(nested_extensions(49)) is None
    assert walker_verdict(nested_extensions(49)) is None
    with pytest.raises(InvalidPayload, match="nested deeper than 100"):
        validate(nested_extensions(49))
    decode = msgspec.json.Decoder().decode
    assert decider.within_depth(decode, b"[" * 90 + b"]" * 90) is not None
    with pytest.raises(RecursionError):
        decider.within_depth(decode, b"[" * 101 + b"]" * 101)


def _fast_then_walker(
    monkeypatch: pytest.MonkeyPatch, check: Callable[[], T]
) -> tuple[T, T, list[bool]]:
    """``check()`` with the fast path offered each streamed Bundle entry, then with every
    entry left to the walker; and, in order, whether the fast path took each entry."""
    taken: list[bool] = []

    def spy(version: str, pieces: list[bytes], depth: int) -> Any:
        found = decider.entries_facts(pieces, version, depth)
        taken.extend(facts is not None for facts in found)
        return found

    monkeypatch.setattr(json_validator, "_entries_facts", spy)
    fast = check()
    monkeypatch.setattr(
        json_validator, "_entries_facts", lambda version, pieces, depth: [None] * len(pieces)
    )
    return fast, check(), taken


@pytest.mark.parametrize("levels", [44, 45, 46, 47, 48])
def test_streamed_entries_keep_the_nesting_bound(
    levels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A streamed Bundle's entry is nested 3 levels down: the fast path (which skips its
    nesting guard when an entry has fewer brackets than the levels left) agrees with the
    walker on either side of the bound."""
    monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 64)
    entry = b'{"resource":' + nested_extensions(levels) + b"}"
    padding = b'{"resource":{"resourceType":"Patient"}},' * 5000  # the root is not one piece
    body = b'{"resourceType":"Bundle","type":"collection","entry":[' + padding + entry + b"]}"

    def verdict() -> dict[str, Any] | None:
        try:
            return validate(body)
        except InvalidPayload:
            return None

    fast, walker, taken = _fast_then_walker(monkeypatch, verdict)
    assert fast == walker
    assert len(taken) == 5001
    assert taken[-1] == (walker is not None and levels < 47)


def _outcome(body: bytes, chunk: int) -> tuple[Any, ...]:
    """The verdict of ``validate``: its metadata, or the issues it rejects with."""
    try:
        return ("valid", validate(body, chunk=chunk))
    except InvalidPayload as exc:
        return (
            "invalid",
            [(i.severity, i.diagnostics, i.expression, i.location) for i in exc.issues],
        )


@pytest.mark.parametrize("chunk", [256, 4096, 65536])
@pytest.mark.parametrize(
    "tail",
    [b"]}", b"]", b', {"resource": }]}'],
    ids=["complete", "truncated", "malformed"],
)
def test_streamed_entries_checked_together_keep_the_walkers_order(
    chunk: int, tail: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries of a streamed Bundle are offered to the fast path a chunk's worth at a time;
    those it does not take are walked in their place: the findings (and their locations)
    are the walker's alone, in the same order, whether the body ends well or not."""
    monkeypatch.setattr(json_validator, "BUFFER_LIMIT", 64)
    good = b'{"fullUrl":"urn:uuid:%d","resource":{"resourceType":"Patient","id":"p%d"}}'
    bad = [
        b'{"resource":{"resourceType":"Patient","colour":"blue"}}',
        b'{"resource":{"resourceType":"Patient","birthDate":"yesterday"}}',
        b'{"fullUrl":"urn:uuid:3","resource":{"resourceType":"Patient"}}',  # repeats entry 3
    ]
    entries = [good % (n, n) for n in range(4000)]  # neither the root nor the array is a piece
    for offset, entry in enumerate(bad):
        entries.insert(1000 + 1000 * offset, entry)
    entries.append(bad[1])  # still waiting with the entries before it when the body ends
    body = b'{"resourceType":"Bundle","type":"collection","entry":[' + b",".join(entries) + tail
    fast, walker, taken = _fast_then_walker(monkeypatch, lambda: _outcome(body, chunk))
    assert fast == walker
    assert fast[0] == "invalid"
    # Only three bad entries were walked: the other is valid alone, and its repeated fullUrl
    # is found by the Bundle rules, which see every entry.
    assert taken.count(False) == 3


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceType":"Patient","name":[{"text":"a\\u003ab\\"c"}]}',
        b'{\n "resourceType" : "Patient" ,\n "name" : [ { "text" : "a:b \\\\" } ]\n}\n',
        b'{"resourceType":"Patient","name":[{"text":":"}]}',
    ],
)
def test_fast_path_accepts_escapes_and_spacing(body: bytes) -> None:
    assert fast_verdict(body) is not None
    assert validate(body) == walker_verdict(body)


ONSET = {
    "onsetAge": {"value": 3},
    "onsetDateTime": "2020-01-01",
    "onsetPeriod": {"start": "2020"},
    "onsetRange": {"low": {"value": 1}},
    "onsetString": "x",
}


@pytest.mark.parametrize("count", [0, 1, 2])
def test_choice_groups_take_at_most_one_member(count: int) -> None:
    for members in itertools.combinations(ONSET, count):
        condition = {"resourceType": "Condition", "subject": {"reference": "Patient/a"}}
        condition.update({name: ONSET[name] for name in members})
        body = json.dumps(condition).encode()
        assert (fast_verdict(body) is not None) == (count < 2), members
        assert (walker_verdict(body) is not None) == (count < 2), members


@pytest.mark.parametrize("members", [(), ("valueString",), ("valueString", "valueBase64Binary")])
def test_a_required_choice_group_takes_exactly_one_member(members: tuple[str, ...]) -> None:
    detail: dict[str, Any] = {"type": "t", **{name: "AAAA" for name in members}}
    event = {
        "resourceType": "AuditEvent",
        "type": {"code": "x"},
        "recorded": "2020-01-01T00:00:00Z",
        "agent": [{"requestor": True}],
        "source": {"observer": {"reference": "Device/a"}},
        "entity": [{"detail": [detail]}],
    }
    body = json.dumps(event).encode()
    assert (fast_verdict(body) is not None) == (len(members) == 1)
    assert (walker_verdict(body) is not None) == (len(members) == 1)


@pytest.mark.parametrize(
    ("fields", "valid"),
    [
        ({"valueCode": "a"}, True),
        ({"id": "e", "valueCode": "a"}, True),
        ({"valueCode": "a", "valueString": "b"}, False),
        ({"id": "e", "valueCode": "a", "valueString": "b"}, False),
        ({"valueCode": "two  spaces"}, False),
        ({"valueDateTime": "2020-13-01"}, False),
        ({"valueDecimal": 1.5}, True),
        ({"valueDecimal": "1.5"}, False),
    ],
    ids=["one", "one-and-an-id", "two", "two-and-an-id", "bad-code", "bad-date", "decimal",
         "decimal-as-text"],
)  # fmt: skip
def test_an_extension_takes_one_value_of_its_format(fields: dict[str, Any], valid: bool) -> None:
    """Extension.value[x] is a large group, counted from the fields set; the format of the
    member set is checked then."""
    extension = {"url": "http://example.org/x", **fields}
    body = json.dumps({"resourceType": "Patient", "extension": [extension]}).encode()
    assert (fast_verdict(body) is not None) == valid
    assert (walker_verdict(body) is not None) == valid


# A value of each checked format that the walker accepts, and one it refuses.
FORMAT_VALUES: dict[str, tuple[Any, Any]] = {
    "Base64Binary": ("AAAA", "A*AA"),
    "Canonical": ("http://x/y", "http://x y"),
    "Code": ("a b", "a  b"),
    "Date": ("2020-02", "2020-13"),
    "DateTime": ("2020-01-01T00:00:00+01:00", "2020-01-01T24:00:00Z"),
    "Decimal": (1.5, "1.5"),
    "Instant": ("2020-01-01T00:00:00Z", "2020-01-01"),
    "Integer64": ("-12", "012"),
    "Oid": ("urn:oid:1.2.3", "urn:oid:1.02"),
    "Time": ("23:59:60", "24:00:00"),
    "Uri": ("urn:x", "a b"),
    "Url": ("http://x", "http://x\n"),
    "Uuid": ("urn:uuid:c757873d-ec9a-4326-a141-556f43239520", "urn:uuid:xyz"),
}


@pytest.mark.parametrize("version", ["R4", "R4B", "R5"])
def test_each_formatted_extension_value_is_checked(version: str) -> None:
    """Extension.value[x] looks at its members only when one of a checked format is set."""
    fields = decider.types(version).module.Extension.__struct_encode_fields__
    members = [name for name in fields if name.removeprefix("value") in FORMAT_VALUES]
    assert len(members) >= 12
    for name in members:
        good, bad = FORMAT_VALUES[name.removeprefix("value")]
        for value, valid in ((good, True), (bad, False)):
            extension = {"url": "http://x", name: value}
            body = json.dumps({"resourceType": "Patient", "extension": [extension]}).encode()
            assert (fast_verdict(body, version) is not None) == valid, (name, value)
            assert (walker_verdict(body, version) is not None) == valid, (name, value)


PATIENT_LINE = b'{"resourceType":"Patient","id":"a"}'
CONDITION_LINE = b'{"resourceType":"Condition","subject":{"reference":"Patient/a"}}'


@pytest.mark.parametrize(
    ("body", "at_once"),
    [
        (PATIENT_LINE + b"\n" + CONDITION_LINE + b"\n" + PATIENT_LINE, True),
        (nested_extensions(40) + b"\n" + PATIENT_LINE, True),
        # Resources that do not start with their type, compact: at once too.
        (PATIENT_LINE + b'\n{"id":"b","resourceType":"Patient"}\n' + PATIENT_LINE, True),
        (b'{"id":"b","resourceType":"Patient"}\n{"subject":{},"resourceType":"Condition"}', True),
        # What ``decode_lines`` takes but a line by line check does not.
        (PATIENT_LINE + b" " + CONDITION_LINE + b"\n", False),  # two on one line
        (PATIENT_LINE + CONDITION_LINE + b"\n" + PATIENT_LINE, False),  # nothing between
        # One resource over two lines and two on the third: as many resources as lines, and
        # the re-encoding as long as the bytes (the newline inside it for the one missing).
        (PATIENT_LINE.replace(b",", b",\n") + b"\n" + PATIENT_LINE + CONDITION_LINE + b"\n", False),
        (PATIENT_LINE + b"\n\n" + CONDITION_LINE, False),  # a blank line
        (b'{"id":"b","resourceType":"Patient"}\n\n{"resourceType":"Patient"}', False),
        (b'{"id":"b","resourceType":"Patient"}\n {"resourceType":"Patient"}', False),
        # Lines that end with CRLF: at once, mixed with LF too, unless spaced.
        (PATIENT_LINE + b"\r\n" + CONDITION_LINE + b"\r\n", True),
        (PATIENT_LINE + b"\r\n" + CONDITION_LINE + b"\r\n" + PATIENT_LINE, True),
        (PATIENT_LINE + b"\r\n" + CONDITION_LINE + b"\n" + PATIENT_LINE + b"\r\n", True),
        (PATIENT_LINE + b" \r\n" + CONDITION_LINE + b"\r\n", False),
        (PATIENT_LINE + b"\r\n" + CONDITION_LINE + b"\r\r\n", False),
        (PATIENT_LINE + b"\r\n\r\n" + CONDITION_LINE + b"\r\n", False),  # then line by line
        (PATIENT_LINE + b"\r\n" + PATIENT_LINE.replace(b'"id"', b'"id":"b","id"') + b"\r\n", False),
        (PATIENT_LINE + b"\n" + PATIENT_LINE.replace(b'"id"', b'"id":"b","id"'), False),
        (PATIENT_LINE + b"\n" + nested_extensions(49), False),  # deeper than the walker allows
        (b'{"resourceType":"Bundle","type":"collection"}\n' + PATIENT_LINE, False),
    ],
)
def test_ndjson_lines_taken_at_once_agree_with_the_walker(
    body: bytes, at_once: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs of compact lines are decoded in one call (``block_kinds``) only when that proves
    what checking them line by line would: the verdicts and metadata are the walker's."""
    taken: list[bool] = []

    def spy(runs: list[bytes], version: str, lean: decider.LeanFirst) -> Any:
        found = decider.block_kinds(runs, version, lean)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(ndjson_validator, "block_kinds", spy)
    try:
        fast: dict[str, Any] | None = validate(body, content_type="ndjson")
    except InvalidPayload:
        fast = None
    assert taken == [at_once]
    monkeypatch.undo()
    assert fast == walker_verdict(body, content_type="ndjson")


# --- verdicts ------------------------------------------------------------------------------


def fast_verdict(body: bytes, version: str = "R4") -> dict[str, Any] | None:
    """The fast path's metadata, or None when it leaves the payload to the walker."""
    return decider.decide(body.removeprefix(BOM), version)


def walker_verdict(
    body: bytes, version: str = "R4", content_type: str = "json", level: str = "strict"
) -> dict[str, Any] | None:
    """The walker's metadata, or None when it rejects (the fast path switched off)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_validator, "decide", lambda data, version: None)
        patch.setattr(ndjson_validator, "block_kinds", lambda runs, version, lean: None)
        patch.setattr(
            ndjson_validator, "line_kinds", lambda lines, version, lean: [None] * len(lines)
        )
        try:
            return validate(body, content_type=content_type, version=version, level=level)
        except InvalidPayload:
            return None
        except RecursionError:
            return None  # a crash is not an acceptance; the walker's own tests cover it


def decoded_to(kinds: decider.Types, data: bytes) -> Any:
    """``data`` decoded to ``kinds`` as the fast path decodes it (formats and nesting
    checked), or None."""
    return decider.checked(kinds.decoder, [data])[0]


def lean_defect(body: bytes, version: str) -> str | None:
    """What is wrong with the lean types' decoding of ``body``, if anything: they may refuse
    what the full types decode (it holds what they leave out), but never decode what those
    refuse, nor to other values."""
    data = body.removeprefix(BOM)
    lean = decoded_to(decider.lean_types(version), data)
    if lean is None:
        return None
    full = decoded_to(decider.types(version), data)
    if full is None:
        return "the lean types decode what the full types refuse"
    if msgspec.json.encode(lean) != msgspec.json.encode(full):
        return "the lean types decode to other values"
    return None


def known_deferral(body: bytes, version: str) -> str | None:
    """Why the fast path leaves to the walker a payload the walker accepts, if that is one of
    the cases it is documented to leave (rare in practice, and never wrong: only slower)."""
    data = body.removeprefix(BOM)
    try:
        decider.decode_strict(data, version)
    except (msgspec.ValidationError, FormatError) as exc:
        if _unprintable(json.loads(data)):
            return "a code, uri or id with a character that is neither printable nor a space"
        missing = re.search(r"missing required field `(\w+)`", str(exc))
        if missing and f'"_{missing.group(1)}"'.encode() in data:
            return "a required primitive given only by its _element"
        unknown = re.search(r"unknown field `_(\w+)`", str(exc))
        if unknown and unknown.group(1) in _choice_elements(version):
            return "a primitive extension (_element) on a [x] choice element"
        if "Expected `int`, got `float`" in str(exc):
            return "an integer written with a fraction"
        return None
    except (msgspec.DecodeError, RecursionError):
        return None
    depth = shape(json.loads(data))[1]
    if depth > MAX_DEPTH - 6:
        return "nesting within a few levels of the walker's bound (the fast path keeps a margin)"
    if depth > MAX_DEPTH // 2 and _accepted_elsewhere(body, version):
        # Seen once in a mutation nested 94 levels deep, and not again on hypothesis's replay:
        # the recursion msgspec is given depends on where the fast path runs (the caller's
        # stack, the limit, which hypothesis raises while it generates; decider.within_depth).
        return "deeply nested, and accepted when the fast path runs on a thread of its own"
    return None


def _accepted_elsewhere(body: bytes, version: str) -> bool:
    """The fast path accepts ``body`` when it runs on a thread of its own."""
    verdict: list[dict[str, Any] | None] = []
    thread = threading.Thread(target=lambda: verdict.append(fast_verdict(body, version)))
    thread.start()
    thread.join()
    return bool(verdict) and verdict[0] is not None


@functools.cache
def _choice_elements(version: str) -> frozenset[str]:
    types = model(version)._types.values()
    return frozenset(e.name for t in types for e in t.elements.values() if e.choice)


def fast_reason(body: bytes, version: str) -> str:
    """Why the fast path did not accept ``body`` (for failure messages)."""
    data = body.removeprefix(BOM)
    try:
        document = decider.decode_strict(data, version)
    except (msgspec.DecodeError, FormatError, RecursionError) as exc:
        return str(exc)
    if not decider.keys_unique(data, (document,)):
        return "repeated keys"
    return "summary" if decider.summary(document, decider.types(version)) is None else "depth"


def _unprintable(value: Any) -> bool:
    if isinstance(value, str):
        return any(not c.isprintable() and not c.isspace() for c in value)
    if isinstance(value, dict):
        return any(_unprintable(v) for v in value.values())
    if isinstance(value, list):
        return any(_unprintable(v) for v in value)
    return False


class Tally:
    """Disagreements by kind: a fast accept the walker rejects is a defect; a fast deferral
    of a payload the walker accepts is only slow, and must be one of the known cases."""

    def __init__(self) -> None:
        self.cases = 0
        self.kinds: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.causes: Counter[str] = Counter()
        self.verdicts: Counter[str] = Counter()

    def compare(self, body: bytes, version: str = "R4", what: str = "") -> None:
        self.cases += 1
        fast = fast_verdict(body, version)
        walker = walker_verdict(body, version)
        lean = lean_defect(body, version)
        if lean is not None:
            self._note(lean, what, body)
        if fast is not None and walker is None:
            self._note("fast accepts what the walker rejects", what, body)
        elif fast is None and walker is not None:
            known = known_deferral(body, version)
            if known:
                self._note(f"fast defers, walker accepts ({known})", what, body)
            else:
                self._note("fast defers what the walker accepts", what, body, version)
        elif fast is not None and walker is not None:
            self.verdicts["both accept"] += 1
            whole = validate(body, version=version)
            if whole != walker:
                self._note("metadata differs", what, body)
        else:
            self.verdicts["both reject"] += 1

    def _note(self, kind: str, what: str, body: bytes, version: str = "") -> None:
        self.kinds[kind] += 1
        self.causes[f"{kind}: {what}"] += 1
        why = f" ({fast_reason(body, version)})" if version else ""
        self.examples.setdefault(kind, f"{what}{why}: {body[:300]!r}")

    def defects(self) -> dict[str, int]:
        """Disagreements that are not explained by a rule the walker is being taught."""
        return {k: n for k, n in self.kinds.items() if not k.startswith("fast defers, ")}


def corpus_json() -> list[Path]:
    paths = []
    for line in (CORPUS / "MANIFEST.tsv").read_text().splitlines()[1:]:
        path, _, _, kind, _expected, *_ = line.split("\t")
        if kind == "fhir-json":
            paths.append(CORPUS / path)
    return paths


def test_corpus_json_verdicts_agree() -> None:
    tally = Tally()
    for path in corpus_json():
        tally.compare(path.read_bytes(), what=path.name)
    assert tally.cases == 41 + 10
    assert not tally.kinds, tally.examples


def test_corpus_valid_files_take_the_fast_path() -> None:
    """Every valid corpus file is accepted without the walker (the whole point)."""
    rows = [line.split("\t") for line in (CORPUS / "MANIFEST.tsv").read_text().splitlines()]
    for row in rows[1:]:
        if row[3] == "fhir-json" and row[4] == "valid":
            assert fast_verdict((CORPUS / row[0]).read_bytes()) is not None, row[0]


@pytest.mark.parametrize("level", ["strict", "lenient"])
def test_corpus_ndjson_agrees_line_by_line(level: str) -> None:
    for path in sorted((CORPUS / "ndjson").glob("*.ndjson")):
        body = path.read_bytes()
        walker = walker_verdict(body, content_type="ndjson", level=level)
        assert walker is not None
        assert validate(body, content_type="ndjson", level=level, chunk=65536) == walker
        assert validate(body, content_type="ndjson", level=level, chunk=997) == walker
        for line in body.splitlines():
            assert fast_verdict(line) is not None, path.name


# --- mutations -----------------------------------------------------------------------------


def _bases() -> list[Any]:
    docs = []
    for path in corpus_json():
        if path.stat().st_size > 40_000:  # the large ones add time, not variety
            continue
        try:
            docs.append(json.loads(path.read_bytes()))
        except ValueError:
            continue  # the corpus's malformed JSON files
    for path in sorted((CORPUS / "ndjson").glob("*.ndjson")):
        docs.extend(json.loads(line) for line in path.read_bytes().splitlines()[:3])
    return docs


BASES = _bases()
# Elements the lean types leave out (``tools/generate_fhir_structs.py``), each with a value.
SELDOM = [
    ("id", "element-1"),
    ("id", ""),
    ("modifierExtension", [{"url": "http://x", "valueBoolean": True}]),
    ("modifierExtension", []),
    ("implicitRules", "http://example.org/rules"),
    ("implicitRules", "a b"),
    ("extension", [{"url": "http://x", "valueTiming": {"event": ["2020-01-01"]}}]),
    ("extension", [{"url": "http://x", "valueMeta": {"versionId": "1"}, "valueString": "y"}]),
    ("extension", [{"url": "http://x", "valueDosage": {"text": "x"}}]),
    ("extension", [{"url": "http://x", "valueCount": {"value": "1"}}]),
]
CHOICE_PREFIXES = ("value", "effective", "onset", "deceased", "multipleBirth", "occurrence")
BAD_STRINGS = [
    "",
    " x",
    "x ",
    "a  b",
    "a\tb",
    "x\n",
    "\u00a0x",
    "a b",
    "2020-13-01",
    "2020-01-01T10:00:00",
    "not a date",
    "bad id!",
    "x" * 65,
    "urn:uuid:1234",
    "===",
    "YQ==",
    "YWJj",
    "-1",
    "1.0",
    "\u2003x",
    "a\u200bb",
    "a\u2028b",
    "x\x0b",
    "caf\u00e9",
    "a-b.c",
]
ODD_VALUES: list[Any] = [None, [], {}, [None], [[]], 1, 1.0, -1, 0, True, "1", "x", [1], {"a": 1}]


def locations(doc: Any) -> list[tuple[Any, ...]]:
    """Every path to a value in ``doc`` (keys and indexes)."""
    out: list[tuple[Any, ...]] = []
    stack: list[tuple[Any, ...]] = [()]
    while stack:
        path = stack.pop()
        out.append(path)
        value = at(doc, path)
        if isinstance(value, dict):
            stack.extend((*path, key) for key in value)
        elif isinstance(value, list):
            stack.extend((*path, index) for index in range(len(value)))
    return out


def at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def objects(doc: Any) -> list[tuple[Any, ...]]:
    return [p for p in locations(doc) if isinstance(at(doc, p), dict)]


def mutate(data: st.DataObject, doc: Any) -> tuple[Any, str]:
    """One mutation of ``doc`` in place; returns the document and what was done."""
    kind = data.draw(
        st.sampled_from(
            [
                "drop",
                "unknown",
                "unwrap",
                "wrap",
                "string",
                "odd",
                "choice",
                "primitive-extension",
                "resource-type",
                "fhir-comments",
                "nest",
                "bundle",
                "extension",
                "extension",
                "seldom",
            ]
        )
    )
    paths = [p for p in locations(doc) if p]
    if kind == "drop" and paths:
        path = data.draw(st.sampled_from(paths))
        del at(doc, path[:-1])[path[-1]]
    elif kind == "unknown":
        path = data.draw(st.sampled_from(objects(doc)))
        at(doc, path)[
            data.draw(st.sampled_from(["unknownThing", "Value", "_x", "resourceType"]))
        ] = 1
    elif kind == "unwrap":
        lists = [p for p in paths if isinstance(at(doc, p), list) and at(doc, p)]
        if lists:
            path = data.draw(st.sampled_from(lists))
            at(doc, path[:-1])[path[-1]] = at(doc, path)[0]
    elif kind == "wrap" and paths:
        path = data.draw(st.sampled_from(paths))
        at(doc, path[:-1])[path[-1]] = [at(doc, path)]
    elif kind == "string":
        strings = [p for p in paths if isinstance(at(doc, p), str)]
        if strings:
            path = data.draw(st.sampled_from(strings))
            at(doc, path[:-1])[path[-1]] = data.draw(st.sampled_from(BAD_STRINGS))
    elif kind == "odd" and paths:
        path = data.draw(st.sampled_from(paths))
        at(doc, path[:-1])[path[-1]] = copy.deepcopy(data.draw(st.sampled_from(ODD_VALUES)))
    elif kind == "choice":
        path = data.draw(st.sampled_from(objects(doc)))
        target = at(doc, path)
        prefix = data.draw(st.sampled_from(CHOICE_PREFIXES))
        suffix, value = data.draw(
            st.sampled_from(
                [("String", "x"), ("Boolean", True), ("DateTime", "2020"), ("Integer", 1)]
            )
        )
        if data.draw(st.booleans()):
            target[f"_{prefix}{suffix}"] = {"id": "e"}
        else:
            target[f"{prefix}{suffix}"] = value
        if data.draw(st.booleans()):
            target[f"{prefix}Quantity"] = {"value": 1}
    elif kind == "primitive-extension":
        path = data.draw(st.sampled_from(objects(doc)))
        target = at(doc, path)
        keys = [k for k in target if not k.startswith("_")]
        if keys:
            key = data.draw(st.sampled_from(keys))
            target[f"_{key}"] = copy.deepcopy(
                data.draw(
                    st.sampled_from(
                        [
                            {"extension": [{"url": "http://x", "valueString": "y"}]},
                            {"id": "a"},
                            [None, {"id": "a"}],
                            [],
                            None,
                            "x",
                            {"value": 1},
                        ]
                    )
                )
            )
    elif kind == "extension":  # most often valid: the accepting side gets tested too
        path = data.draw(st.sampled_from(objects(doc)))
        at(doc, path)["extension"] = [
            {"url": "http://example.org/x", "valueCode": data.draw(st.sampled_from(BAD_STRINGS))}
        ]
    elif kind == "seldom":  # what the lean types leave out, valid or not
        path = data.draw(st.sampled_from(objects(doc)))
        key, value = data.draw(st.sampled_from(SELDOM))
        at(doc, path)[key] = copy.deepcopy(value)
    elif kind == "resource-type":
        path = data.draw(st.sampled_from(objects(doc)))
        at(doc, path)["resourceType"] = data.draw(
            st.sampled_from(["Patient", "Nope", "", 1, "Bundle"])
        )
    elif kind == "fhir-comments":
        path = data.draw(st.sampled_from(objects(doc)))
        at(doc, path)["fhir_comments"] = ["a comment"]
    elif kind == "nest":
        path = data.draw(st.sampled_from(objects(doc)))
        depth = data.draw(st.sampled_from([2, 30, 200]))
        extension: dict[str, Any] = {"url": "http://x", "valueString": "y"}
        for _ in range(depth):
            extension = {"url": "http://x", "extension": [extension]}
        at(doc, path)["extension"] = [extension]
    elif kind == "bundle":
        doc = {
            "resourceType": "Bundle",
            "type": data.draw(
                st.sampled_from(
                    [
                        "collection",
                        "batch",
                        "transaction",
                        "history",
                        "batch-response",
                        "transaction-response",
                        "searchset",
                        "x",
                    ]
                )
            ),
            "entry": [
                {"fullUrl": "urn:uuid:1", "resource": doc},
                data.draw(
                    st.sampled_from(
                        [
                            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Basic"}},
                            {"fullUrl": "urn:uuid:2", "request": {"method": "GET", "url": "x"}},
                            {"response": {"status": "200"}},
                            {"fullUrl": "urn:uuid:3", "resource": {"resourceType": "Basic"}},
                            {
                                "fullUrl": "urn:uuid:1",
                                "resource": {"resourceType": "Basic", "meta": {"versionId": "2"}},
                            },
                            {"fullUrl": "urn:uuid:1"},
                        ]
                    )
                ),
            ],
        }
    return doc, kind


def serialize(data: st.DataObject, doc: Any) -> tuple[bytes, str]:
    """``doc`` as JSON: compact or indented, maybe with a repeated key, escapes or a BOM."""
    if data.draw(st.booleans()):
        body = msgspec.json.encode(doc)
    else:
        body = json.dumps(doc, indent=data.draw(st.sampled_from([1, 2]))).encode()
    trick = data.draw(
        st.sampled_from(["none", "duplicate", "escape", "bom", "deep", "extensions", "contained"])
    )
    if trick == "duplicate":
        # Repeat one member of one object: the first member after a random "{".
        starts = [m.start() + 1 for m in re.finditer(rb'\{\s*"', body)]
        start = data.draw(st.sampled_from(starts)) if starts else 0
        end = body.find(b",", start)
        member = body[start:end]
        if starts and end > 0 and not any(c in member for c in b"{}[]"):
            body = body[:start] + member + b"," + body[start:]
    elif trick == "escape":
        body = json.dumps(doc, ensure_ascii=True).encode().replace(b"a", b"\\u0061", 3)
        body = body.replace(b":", b"\\u003a", data.draw(st.integers(0, 2)))
    elif trick == "bom":
        body = BOM + body
    elif trick == "deep":
        depth = data.draw(st.sampled_from([100, 5000, 100_000]))
        body = body[:-1] + b',"extension":' + b"[" * depth + b"]" * depth + b"}"
    elif trick == "extensions":
        depth = data.draw(st.sampled_from([50, 3000]))
        nested = b'{"url":"http://x","extension":[' * depth + b'{"url":"x","valueCode":"a"}'
        body = body[:-1] + b',"extension":[' + nested + b"]}" * depth + b"]}"
    elif trick == "contained":
        depth = data.draw(st.sampled_from([50, 2000]))
        nested = b'{"resourceType":"Basic","contained":[' * depth + b'{"resourceType":"Basic"}'
        body = body[:-1] + b',"contained":[' + nested + b"]}" * depth + b"]}"
    return body, trick


def _mutations_agree(data: st.DataObject, tally: Tally) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(BASES)))
    done = []
    for _ in range(data.draw(st.integers(0, 3))):
        doc, kind = mutate(data, doc)
        done.append(kind)
    body, trick = serialize(data, doc)
    version = data.draw(st.sampled_from(["R4", "R4", "R4B", "R5"]))
    tally.compare(body, version, what="+".join(done or ["as is"]) + f" ({trick}, {version})")


MUTATIONS = Tally()


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(st.data())
def test_mutations_agree(data: st.DataObject) -> None:
    _mutations_agree(data, MUTATIONS)
    assert not MUTATIONS.defects(), MUTATIONS.examples


def test_mutations_report() -> None:
    """Runs after ``test_mutations_agree`` (same module, in order): prints the tally."""
    assert MUTATIONS.cases >= 1000
    print(f"\n{MUTATIONS.cases} mutations: {dict(MUTATIONS.verdicts)}")
    print(f"disagreements: {dict(MUTATIONS.kinds)}")
    for cause, count in MUTATIONS.causes.most_common(12):
        print(f"{count:5} {cause}")
    assert not MUTATIONS.defects(), MUTATIONS.examples
