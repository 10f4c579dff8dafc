"""Decides, with little Python per element, that a FHIR XML payload is valid, or leaves it to
the detailed walker.

``decide(data, version)`` parses the whole body once with expat: each FHIR element's start
is one dictionary lookup in ``xml_tables`` (known element, repeats, ``[x]`` choice,
attributes, value format); ends are only counted (``list.append``, no Python frame), which
tells each start its depth and so its parent (the last element started one level up); what
complex elements require is checked once the body is parsed; narratives raise no event at
all but their comments (``xml_narratives``), and text is looked for in the bytes around
them. Python's cost per event bounds this path: besides elements, only namespace
declarations and the XML declaration raise events, expat interns no name, and attributes
come as a list. It returns the metadata the walker's ``Summary`` would produce, or None:
None never means "invalid", only "let the walker decide" (the walker explains every
rejection and has the final word). The fast path never accepts a payload the walker
rejects; it leaves to the walker whatever it does not handle (CDATA, XHTML outside a
narrative ``div`` that declares its namespace, ``xsi:`` attributes below the root, text made
of character references to whitespace, ...)."""

from __future__ import annotations

from typing import Any, NoReturn
from xml.parsers import expat

from mm_bronze.formats.encoding import OPENING, wide_encoding
from mm_bronze.formats.fhir.model import BUNDLE_TYPES
from mm_bronze.formats.fhir.structure import MAX_DEPTH
from mm_bronze.formats.fhir.xml_narratives import blank, fits
from mm_bronze.formats.fhir.xml_summary import summary
from mm_bronze.formats.fhir.xml_tables import (
    COMPLEX,
    CONTAINER,
    ENTRY,
    ENTRY_RESOURCE,
    NOTED,
    PRIMITIVE,
    RESOURCE,
    TEXT,
    XHTML_NS,
    Check,
    Table,
    Tables,
    check_for,
    tables,
)

XSI = "http://www.w3.org/2001/XMLSchema-instance "
# What a container (``contained``, ``entry.resource``) must have seen when it closes.
HELD = "\x00resource"
_HOLDS = frozenset({HELD})
_NOTHING: frozenset[str] = frozenset()
# What a primitive has seen: nothing is ever noted (its only possible children, extensions,
# repeat and are never required), so one set serves every primitive.
_EXTENDED: set[str] = set()

_URL = check_for("uri")
_UTF8 = ("utf-8", "utf8")

# An open element: the table of its children, what it has seen of them, and what it must
# have seen when it closes.
Frame = tuple[Table, set[str], frozenset[str]]


class _Unsure(Exception):
    """The fast path cannot tell: the detailed walker decides."""


def decide(data: bytes, version: str) -> dict[str, Any] | None:
    """The summary metadata of a valid FHIR XML payload of ``version``, or None."""
    if wide_encoding(data[:OPENING]) is not None:  # UTF-16 or UTF-32, which expat would read
        return None
    try:
        return _decision(data, tables(version), BUNDLE_TYPES[version])
    except Exception:  # any doubt (including a malformed payload): the walker decides
        return None


def _decision(data: bytes, known: Tables, bundle_types: frozenset[str]) -> dict[str, Any]:
    """The summary metadata of ``data``; raises (``_Unsure`` or any error) where the walker
    must decide."""
    notes: list[tuple[str, Any]] = []  # (element, value) the summary notes
    # No interning (each name is hashed once, by the table lookup, and never for an end),
    # and attributes as a list (name, value, ...): both cheaper per element.
    parser = expat.ParserCreate(namespace_separator=" ", intern=None)
    parser.ordered_attributes = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    ends: list[str | None] = []  # one item per element that ended
    started = 0
    # The last element started at each depth: while deeper elements start, the one at
    # depth d is their open ancestor. One more level raises IndexError (too deep).
    primitive: Frame = (known.primitive, _EXTENDED, _NOTHING)
    frames: list[Frame] = [primitive] * MAX_DEPTH
    pending: list[Frame] = []  # the elements that need children, checked once all closed
    decls: list[tuple[str | None, str, int]] = []
    narratives: list[tuple[int, int, int, bool]] = []
    opened = 0  # where the narrative being skipped starts
    above = 0  # its ancestors
    leaving = 0  # namespace declarations of its div still to end
    nested = 0  # namespace declarations open inside it
    marked = False  # it holds a comment or processing instruction

    def start(name: str, attrs: list[str]) -> None:
        nonlocal started
        depth = started - len(ends)
        started += 1
        table, seen, _need = frames[depth - 1]
        kind, track, many, _group, children, need, carried, local = table[name]
        if track is not None:
            if track in seen:
                if not many:
                    raise _Unsure
            else:
                seen.add(track)
        if kind == TEXT:
            if len(attrs) != 2 or attrs[0] != "value" or not attrs[1]:
                _attributes(attrs, children)
            frames[depth] = primitive
        elif kind == PRIMITIVE:
            if len(attrs) != 2 or attrs[0] != "value":
                _attributes(attrs, children)
            elif not children(attrs[1]):
                raise _Unsure
            frames[depth] = primitive
        elif kind == COMPLEX:
            frame = frames[depth] = (children, _carry(attrs, carried) if attrs else set(), need)
            if need:
                pending.append(frame)
        elif kind == CONTAINER:
            if attrs:
                raise _Unsure
            frame = frames[depth] = (children, set(), _HOLDS)
            pending.append(frame)
        elif kind == RESOURCE:
            if attrs or HELD in seen:  # a container holds one resource
                raise _Unsure
            seen.add(HELD)
            frame = frames[depth] = (children, set(), need)
            if need:
                pending.append(frame)
        elif kind == NOTED:
            value = _attributes(attrs, children)
            if value is not None:
                notes.append((local, value))
            frames[depth] = primitive
        elif kind == ENTRY:
            frame = frames[depth] = (children, _carry(attrs, carried) if attrs else set(), need)
            pending.append(frame)
            notes.append(("entry", frame[1]))
        elif kind == ENTRY_RESOURCE:
            if attrs or HELD in seen:
                raise _Unsure
            seen.add(HELD)
            frame = frames[depth] = (children, set(), need)
            pending.append(frame)
            notes.append(("entryType", local))
        else:
            narrative(depth)

    def narrative(depth: int) -> None:
        nonlocal opened, above, leaving, nested, marked
        position = parser.CurrentByteIndex
        own = []
        for prefix, uri, at in reversed(decls):
            if at != position:
                break
            own.append((prefix, uri))
        if (None, XHTML_NS) not in own:
            raise _Unsure
        opened, above, leaving, nested, marked = position, depth, len(own), 0, False
        parser.StartElementHandler = None
        parser.EndElementHandler = None
        parser.CommentHandler = aside  # only a narrative's comments matter (to ``fits``)
        parser.ProcessingInstructionHandler = aside

    def start_root(name: str, attrs: list[str]) -> None:
        nonlocal started
        _kind, _track, _many, _group, children, need, _carried, local = known.roots[name]
        if any(not key.startswith(XSI) for key in attrs[::2]):
            raise _Unsure
        frame = frames[0] = (children, set(), need)
        pending.append(frame)
        notes.append(("resourceType", local))
        started = 1
        parser.StartElementHandler = start

    def declared(prefix: str | None, uri: str) -> None:
        nonlocal nested
        if parser.StartElementHandler is None:
            nested += 1
        else:
            decls.append((prefix, uri, parser.CurrentByteIndex))

    def undeclared(_prefix: str | None) -> None:
        nonlocal nested, leaving
        if parser.StartElementHandler is not None:
            return
        if nested:
            nested -= 1
            return
        leaving -= 1
        if not leaving:
            end = data.index(b">", parser.CurrentByteIndex) + 1
            narratives.append((opened, end, above, marked))
            ends.append(None)  # the div's own end
            parser.StartElementHandler = start
            parser.EndElementHandler = ends.append
            parser.CommentHandler = None
            parser.ProcessingInstructionHandler = None

    def declaration(_version: str, encoding: str | None, _standalone: int) -> None:
        if encoding and encoding.lower().replace("_", "-") not in _UTF8:
            raise _Unsure

    def aside(*_: Any) -> None:
        nonlocal marked
        marked = True  # a comment or processing instruction inside a narrative

    parser.StartElementHandler = start_root
    parser.EndElementHandler = ends.append
    parser.StartNamespaceDeclHandler = declared
    parser.EndNamespaceDeclHandler = undeclared
    parser.XmlDeclHandler = declaration
    parser.StartDoctypeDeclHandler = _refuse
    parser.StartCdataSectionHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    try:
        parser.Parse(data, True)
    finally:  # these handlers refer to the parser, which holds them: free both now, not in a GC
        parser.StartElementHandler = None
        parser.StartNamespaceDeclHandler = None
        parser.EndNamespaceDeclHandler = None
    if not notes or started != len(ends):
        raise _Unsure
    for _table, seen, need in pending:
        if not need <= seen:
            raise _Unsure
    # No text outside narratives; no narrative nested too deep.
    position = 0
    for first, end, ancestors, commented in narratives:
        if not blank(data, position, first) or not fits(data, first, end, ancestors, commented):
            raise _Unsure
        position = end - 1  # text right after the div follows its '>'
    if not blank(data, position, len(data)):
        raise _Unsure
    out = summary(notes, bundle_types)
    if out is None:
        raise _Unsure
    return out


def _refuse(*_: Any) -> NoReturn:
    raise _Unsure


def _attributes(attrs: list[str], check: Check | None) -> str | None:
    """A primitive's ``value`` (None if it has none), once its attributes (``name, value,
    ...``) are checked: only ``value`` (valid) and ``id`` (not empty)."""
    value = None
    for index in range(0, len(attrs), 2):
        key, given = attrs[index], attrs[index + 1]
        if key == "value":
            if not check(given):  # type: ignore[misc]
                raise _Unsure
            value = given
        elif key != "id" or not given:
            raise _Unsure
    return value


def _carry(attrs: list[str], carried: frozenset[str]) -> set[str]:
    """What a complex element's attributes (``id``, an extension's ``url``) give it."""
    owned = set(attrs[::2])
    if not owned <= carried:
        raise _Unsure
    for index in range(0, len(attrs), 2):
        key, given = attrs[index], attrs[index + 1]
        if not (given if key == "id" else _URL(given)):
            raise _Unsure
    return owned
