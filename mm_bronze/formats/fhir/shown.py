"""What a finding may show of a name read from a payload.

Findings (and the OperationOutcomes and log lines that carry them) name places, never values:
a payload's keys, element names and resource types are the sender's text and could hold
anything, a patient's name included. A key or element name is shown as written when it is
shaped like a FHIR name (a letter, then letters, digits and ``_``, at most 64, with an optional
leading ``_``); anything else is described by its length. A resource type is shown only when
it is the name of a resource type of some FHIR version.
"""

from __future__ import annotations

import functools
import re

import msgspec

from mm_bronze.formats.fhir.model import VERSIONS, definitions

_NAME = re.compile(r"_?[A-Za-z][A-Za-z0-9_]{0,63}")


def name(key: str) -> str:
    """``key`` for an expression (``Patient.<key>``)."""
    return key if _NAME.fullmatch(key) else f"<{len(key)} characters>"


def quoted(key: str) -> str:
    """``key`` for a message: ``'key'``, or what it is when it is not shown."""
    if _NAME.fullmatch(key):
        return f"'{key}'"
    return f"(not shaped like a FHIR name: {len(key)} characters, not shown)"


def type_name(given: str) -> str:
    """A resource type for an expression: as given when some FHIR version defines it."""
    return given if given in _every_resource_type() else f"<{len(given)} characters>"


def resource_type(given: str, version: str) -> str:
    """``unknown resource type ...`` for ``given``, which ``version`` does not define."""
    if given in _every_resource_type():
        return f"unknown resource type '{given}' for FHIR {version}"
    match = _by_lower_case().get(given.lower())
    hint = f"did you mean '{match}'?" if match else "not a FHIR resource type, not shown"
    return f"unknown resource type for FHIR {version} ({hint})"


class _Names(msgspec.Struct):
    resources: list[str]


@functools.cache
def _every_resource_type() -> frozenset[str]:
    """The resource types of every shipped version (read on the first unknown one)."""
    found: set[str] = set()
    for version in VERSIONS:
        found.update(msgspec.json.decode(definitions(version).read_bytes(), type=_Names).resources)
    return frozenset(found)


@functools.cache
def _by_lower_case() -> dict[str, str]:
    return {known.lower(): known for known in _every_resource_type()}
