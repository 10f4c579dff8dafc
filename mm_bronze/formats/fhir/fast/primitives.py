"""FHIR primitive types and the Struct bases shared by the generated fast-path types.

Each primitive is the msgspec type whose decoding accepts exactly what the walker's
``model.primitive_problem`` accepts from JSON (or less: a stricter type only sends a payload
to the walker, which has the final word); string formats are collected by the generated
``__post_init__`` methods and checked in batches (``formats``), with str methods or the
walker's own patterns below.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import Meta

from mm_bronze.formats.fhir.model import PATTERNS

Boolean = bool
Integer = int
PositiveInt = Annotated[int, Meta(ge=1)]
UnsignedInt = Annotated[int, Meta(ge=0)]
# A decimal is kept as its JSON text (its form checked in batches, ``formats``): re-encoded,
# it is the same bytes, which lets the duplicate-key check compare lengths
# (``decider.keys_unique``). A float would grow (``5`` is written ``5.0``).
Decimal = msgspec.Raw
# Any non-empty string: string, markdown, xhtml, the id of a non-resource element, and the
# primitives whose format the generated ``__post_init__`` checks with the functions below.
String = Annotated[str, Meta(min_length=1)]

# The walker's patterns (``model.PATTERNS``), matched the same way: ``fullmatch``.
date = PATTERNS["date"].fullmatch
date_time = PATTERNS["dateTime"].fullmatch
instant = PATTERNS["instant"].fullmatch
time = PATTERNS["time"].fullmatch
oid = PATTERNS["oid"].fullmatch
uuid = PATTERNS["uuid"].fullmatch
integer64 = PATTERNS["integer64"].fullmatch
# Base64 (RFC 4648 alphabet, padded) in which ASCII whitespace may appear anywhere (wrapped
# lines, the specification's own examples); anything else goes to the walker.
_B64 = "[A-Za-z0-9+/][ \\t\\r\\n]*"
base64 = re.compile(
    f"[ \\t\\r\\n]*(?=[A-Za-z0-9+/])(?:{_B64 * 4})*"
    f"(?:{_B64 * 2}=[ \\t\\r\\n]*=[ \\t\\r\\n]*|{_B64 * 3}=[ \\t\\r\\n]*)?"
).fullmatch

NonEmpty = Meta(min_length=1)
UNSET = msgspec.UNSET


class Base(
    msgspec.Struct,
    forbid_unknown_fields=True,
    omit_defaults=True,
    repr_omit_defaults=True,
    kw_only=True,
    gc=False,
):
    """What every generated Struct shares (subclasses inherit it): unknown elements refused,
    unset elements left out of the encoding (``decider.keys_unique``) and out of
    ``__rich_repr__`` (a type with a large choice group counts the fields set from it), no
    garbage-collector tracking (decoded Structs hold no cycles)."""


class Complex(Base):
    """A FHIR complex datatype or backbone element."""


class Resource(Base, tag_field="resourceType"):
    """A FHIR resource, tagged by its ``resourceType``."""


class FormatError(ValueError):
    """A code, uri or id value that does not match its FHIR pattern."""


class ChoiceError(ValueError):
    """More than one element of a ``[x]`` choice group, or none of a required one."""
