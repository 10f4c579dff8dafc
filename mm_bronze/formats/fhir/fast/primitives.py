"""FHIR primitive types and the Struct bases shared by the generated fast-path types.

Each primitive is the msgspec type whose decoding accepts exactly what the walker's
``model.primitive_problem`` accepts from JSON (or less: a stricter type only sends a payload
to the walker, which has the final word). Patterns are anchored with ``\\Z`` because msgspec
uses ``re.search`` and ``$`` would accept a trailing newline.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from mm_bronze.formats.fhir.model import PATTERNS


def _pattern(name: str) -> Meta:
    return Meta(pattern=f"^(?:{PATTERNS[name].pattern})\\Z")


Boolean = bool
Integer = int
PositiveInt = Annotated[int, Meta(ge=1)]
UnsignedInt = Annotated[int, Meta(ge=0)]
Decimal = float
# Any non-empty string: string, markdown, xhtml, and the id of a non-resource element.
String = Annotated[str, Meta(min_length=1)]
Code = Annotated[str, _pattern("code")]
Id = Annotated[str, _pattern("id")]
Uri = Annotated[str, Meta(pattern="^\\S+\\Z")]
Oid = Annotated[str, _pattern("oid")]
Uuid = Annotated[str, _pattern("uuid")]
Date = Annotated[str, _pattern("date")]
DateTime = Annotated[str, _pattern("dateTime")]
Instant = Annotated[str, _pattern("instant")]
Time = Annotated[str, _pattern("time")]
Integer64 = Annotated[str, _pattern("integer64")]
# Base64 (RFC 4648 alphabet, padded) in which spaces may appear anywhere, as in the
# specification's own examples; anything else goes to the walker.
_B64 = "[A-Za-z0-9+/] *"
Base64Binary = Annotated[
    str,
    Meta(pattern=(f"^ *(?=[A-Za-z0-9+/])(?:{_B64 * 4})*(?:{_B64 * 2}= *= *|{_B64 * 3}= *)?\\Z")),
]

# FHIR primitive name -> the name of its type in this module.
TYPES = {
    "boolean": "Boolean",
    "integer": "Integer",
    "positiveInt": "PositiveInt",
    "unsignedInt": "UnsignedInt",
    "decimal": "Decimal",
    "string": "String",
    "markdown": "String",
    "xhtml": "String",
    "code": "Code",
    "id": "Id",
    "uri": "Uri",
    "url": "Uri",
    "canonical": "Uri",
    "oid": "Oid",
    "uuid": "Uuid",
    "date": "Date",
    "dateTime": "DateTime",
    "instant": "Instant",
    "time": "Time",
    "integer64": "Integer64",
    "base64Binary": "Base64Binary",
}

NonEmpty = Meta(min_length=1)
UNSET = msgspec.UNSET


class Complex(
    msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True, gc=False
):
    """A FHIR complex datatype or backbone element."""


class Resource(
    msgspec.Struct,
    forbid_unknown_fields=True,
    omit_defaults=True,
    kw_only=True,
    gc=False,
    tag_field="resourceType",
):
    """A FHIR resource, tagged by its ``resourceType``."""


class FormatError(ValueError):
    """A code, uri or id value that does not match its FHIR pattern."""


class ChoiceError(ValueError):
    """More than one element of a ``[x]`` choice group, or none of a required one."""
