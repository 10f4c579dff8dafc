"""The FHIR structure model of each supported version, shipped as data with mm-bronze.

``definitions/<version>.json`` lists the resource types and, per type, its elements with
type, cardinality and choice group; it is generated from the published FHIR models by
``tools/generate_fhir_definitions.py``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from mm_bronze.formats.built_once import built_once

VERSIONS = ("R4", "R4B", "R5")
_ALIASES = {
    "r4": "R4",
    "4.0": "R4",
    "4.0.0": "R4",
    "4.0.1": "R4",
    "r4b": "R4B",
    "4.3": "R4B",
    "4.3.0": "R4B",
    "r5": "R5",
    "5.0": "R5",
    "5.0.0": "R5",
}

BUNDLE_TYPES = {
    "R4": frozenset(
        "document message transaction transaction-response batch batch-response history"
        " searchset collection".split()
    ),
}
BUNDLE_TYPES["R4B"] = BUNDLE_TYPES["R4"]
BUNDLE_TYPES["R5"] = BUNDLE_TYPES["R4"] | {"subscription-notification"}

# JSON kinds: what each primitive is in FHIR JSON.
NUMBER_TYPES = frozenset({"integer", "decimal", "positiveInt", "unsignedInt"})
# What FHIR JSON carries as JSON booleans and numbers rather than strings.
JSON_NATIVE = NUMBER_TYPES | {"boolean"}
PRIMITIVES = NUMBER_TYPES | frozenset(
    "boolean string code id markdown uri url canonical oid uuid date dateTime instant time"
    " base64Binary xhtml integer64".split()
)

# The specification's year, ``([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)``, is any
# four digits but 0000; said this way it matches in a third less time. Groups do not capture.
_YEAR = r"(?!0000)[0-9]{4}"
_MONTH = r"(?:0[1-9]|1[0-2])"
_DAY = r"(?:0[1-9]|[1-2][0-9]|3[0-1])"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
_ZONE = r"(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
# The value patterns of the FHIR specification's primitive types (datatypes.html).
PATTERNS = {
    name: re.compile(pattern)
    for name, pattern in {
        "date": rf"{_YEAR}(?:-{_MONTH}(?:-{_DAY})?)?",
        "dateTime": rf"{_YEAR}(?:-{_MONTH}(?:-{_DAY}(?:T{_TIME}{_ZONE})?)?)?",
        "instant": rf"{_YEAR}-{_MONTH}-{_DAY}T{_TIME}{_ZONE}",
        "time": _TIME,
        # The specification's ``[^\s]+( [^\s]+)*``, without its group and backtracking,
        # which change nothing it matches: about twice as fast.
        "code": r"\S++(?: \S++)*+",
        "id": r"[A-Za-z0-9\-\.]{1,64}",
        "oid": r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+",
        "uuid": r"urn:uuid:[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}",
        "uri": r"\S*",
        "url": r"\S*",
        "canonical": r"\S*",
        "integer": r"-?([0]|([1-9][0-9]*))",
        "integer64": r"-?([0]|([1-9][0-9]*))",
        "positiveInt": r"\+?[1-9][0-9]*",
        "unsignedInt": r"\+?([0]|([1-9][0-9]*))",
        "decimal": r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?",
        "boolean": r"true|false",
    }.items()
}
# base64Binary: the specification's pattern is ``(\s*([0-9a-zA-Z\+/=]){4}\s*)+``; whitespace
# may separate the characters (line-wrapped data), and ``=`` only pads the end.
BASE64 = re.compile(r"[0-9a-zA-Z+/]*={0,2}")
WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Element:
    """One element of a FHIR type: its type, cardinality and choice group (``value[x]``)."""

    name: str
    type: str
    many: bool
    required: bool
    choice: str | None
    primitive: bool


@dataclass(frozen=True)
class TypeInfo:
    name: str
    elements: dict[str, Element]
    required: tuple[str, ...]
    required_choices: tuple[str, ...]


class Model:
    """The resource types and element definitions of one FHIR version."""

    def __init__(self, version: str, data: dict[str, Any]) -> None:
        self.version = version
        self.resources = frozenset(data["resources"])
        self.bundle_types = BUNDLE_TYPES[version]
        self._types: dict[str, TypeInfo] = {}
        for name, raw in data["types"].items():
            elements = {
                key: Element(
                    key,
                    spec[0],
                    spec[1] in "*+",
                    spec[1] in "1+",
                    _choice(spec),
                    spec[0] in PRIMITIVES,
                )
                for key, spec in raw.items()
                if not key.startswith("@")
            }
            self._types[name] = TypeInfo(
                name,
                elements,
                tuple(e.name for e in elements.values() if e.required and e.choice is None),
                tuple(raw.get("@required_choices", ())),
            )

    def type(self, name: str) -> TypeInfo | None:
        return self._types.get(name)


def _choice(spec: list[Any]) -> str | None:
    return spec[2] if len(spec) > 2 else None


def canonical_version(declared: str | None) -> str | None:
    """``R4``/``R4B``/``R5`` for a declared version (``R4``, ``4.0.1``, ...), else None."""
    if not declared:
        return None
    if declared in VERSIONS:
        return declared
    return _ALIASES.get(declared.lower())


def definitions(version: str) -> Traversable:
    """The shipped structure definitions of a canonical version (JSON)."""
    return resources.files("mm_bronze.formats.fhir") / "definitions" / f"{version}.json"


@built_once
def model(version: str) -> Model:
    """The model of a canonical version (loaded once, on first use)."""
    return Model(version, json.loads(definitions(version).read_text(encoding="utf-8")))


def primitive_problem(type_name: str, value: Any, *, from_json: bool) -> str | None:
    """Why ``value`` is not a valid ``type_name`` (a short phrase), or None if it is.

    JSON carries booleans and numbers natively; XML carries every value as a string.
    """
    if type(value) is str and not (from_json and type_name in JSON_NATIVE):
        return string_problem(type_name, value)  # the common case, first
    if from_json and type_name != "integer64":
        if type_name == "boolean":
            return None if isinstance(value, bool) else "must be a JSON boolean"
        if type_name in NUMBER_TYPES:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return "must be a JSON number"
            if type_name != "decimal" and not (isinstance(value, int) or value.is_integer()):
                return f"is not a valid {type_name}"
            if type_name == "positiveInt" and value < 1:
                return "must be a positive integer"
            if type_name == "unsignedInt" and value < 0:
                return "must not be negative"
            return None
        if not isinstance(value, str):
            return "must be a JSON string"
    elif not isinstance(value, str):
        return "must be a string"
    return string_problem(type_name, value)


def string_problem(type_name: str, value: str) -> str | None:
    """Why the string ``value`` is not a valid ``type_name``, or None if it is."""
    if value == "":
        return "must not be empty"
    if type_name == "base64Binary":
        return base64_problem(value)
    pattern = PATTERNS.get(type_name)
    if pattern is not None and pattern.fullmatch(value) is None:
        if type_name == "dateTime" and "T" in value and PATTERNS["dateTime"].fullmatch(value + "Z"):
            return "has a time but no timezone"
        return f"is not a valid {type_name}"
    return None


def base64_problem(value: str) -> str | None:
    """Why ``value`` is not base64 (whitespace aside), or None if it is."""
    compact = WHITESPACE.sub("", value) if WHITESPACE.search(value) else value
    if not compact or len(compact) % 4 or BASE64.fullmatch(compact) is None:
        return "is not valid base64"
    return None
