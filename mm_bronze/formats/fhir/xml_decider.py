"""Decides, at C speed, that a FHIR XML payload is valid, or leaves it to the detailed walker.

``decide(data, version)`` hands the whole body to ``xml_walk`` (C, built from
``xml_walk.c``), which parses it once with the expat the walker uses and checks each FHIR
element on one lookup in ``xml_tables`` (known element, repeats, ``[x]`` choice, attributes,
value format), and, as a complex element closes, what it requires; XHTML narratives are only
counted (their depth is bounded), and text outside them must be XML whitespace. Here, the
declared encoding is checked and the noted values become the walker's summary metadata
(``xml_summary``, with the Bundle rules).

None never means "invalid", only "let the walker decide" (the walker explains every
rejection and has the final word). The fast path never accepts a payload the walker rejects;
it leaves to the walker whatever it does not handle (a DOCTYPE, ``xsi:`` attributes below the
root, a namespace prefix on a FHIR element, a primitive's value that is empty, ...). Where
``xml_walk`` could not be built (no C compiler at install), it decides nothing.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from mm_bronze.formats.encoding import OPENING, names_utf8, wide_encoding
from mm_bronze.formats.fhir.model import BUNDLE_TYPES
from mm_bronze.formats.fhir.xml_summary import summary
from mm_bronze.formats.fhir.xml_tables import check_for, tables

try:
    from mm_bronze.formats.fhir import xml_walk
except ImportError:  # not built: the walker decides every payload
    xml_walk = None  # type: ignore[assignment]

COMPILED = xml_walk is not None
XSI = "http://www.w3.org/2001/XMLSchema-instance "
# What a container (``contained``, ``entry.resource``) must have seen when it closes.
HELD = "\x00resource"
# The encoding an XML declaration names (expat has checked the declaration's syntax).
_ENCODING = re.compile(rb"""\sencoding\s*=\s*["']([^"']*)["']""")


@functools.cache
def _context(version: str) -> tuple[Any, ...]:
    """What ``xml_walk.walk`` reads its tables from, for a canonical version."""
    known = tables(version)
    return (known.roots, known.primitive, HELD, frozenset({HELD}), XSI, check_for("uri"))


def decide(data: bytes, version: str) -> dict[str, Any] | None:
    """The summary metadata of a valid FHIR XML payload of ``version``, or None."""
    if xml_walk is None or wide_encoding(data[:OPENING]) is not None:
        return None  # UTF-16 or UTF-32 (which expat would read): the walker explains
    walked = xml_walk.walk(data, _context(version))
    if walked is None:
        return None
    notes, declaration = walked
    if declaration is not None:
        named = _ENCODING.search(declaration)
        if named is not None and not names_utf8(named[1].decode("latin-1")):
            return None
    return summary(notes, BUNDLE_TYPES[version])
