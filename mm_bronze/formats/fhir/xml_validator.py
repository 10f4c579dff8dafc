"""FHIR XML: well-formed UTF-8 XML, no DTD or entities, a FHIR resource in the FHIR namespace.

A body up to ``BUFFER_LIMIT`` is held and first goes through the fast path
(``xml_decider``), which accepts it when it is valid; whatever the fast path does not accept
(and any larger body, as it streams in) is checked here on expat's events (a C parser), which
finds and locates every problem and has the final word.

Beyond the structure shared with JSON, FHIR XML allows only the attributes FHIR defines
(``value`` on primitives, ``url`` on extensions, ``id`` on elements, namespace declarations,
and ``xsi:`` schema hints), no text outside ``value`` attributes and XHTML ``div``s, and no
empty attribute.
"""

from __future__ import annotations

from typing import Any, NoReturn
from xml.parsers import expat

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.base import STRICT, Findings
from mm_bronze.formats.bom import BOM, LeadingBom
from mm_bronze.formats.encoding import Opening, names_utf8
from mm_bronze.formats.fhir import shown
from mm_bronze.formats.fhir.json_validator import checker_for
from mm_bronze.formats.fhir.model import Element, canonical_version, primitive_problem
from mm_bronze.formats.fhir.structure import MAX_DEPTH, Node, StructureChecker, too_deep
from mm_bronze.formats.fhir.xml_decider import decide

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
# XML whitespace, the only text allowed between FHIR elements.
BLANK = " \t\r\n"
# Bodies up to this size are held and tried on the fast path at the end; larger ones are
# checked as they stream in.
BUFFER_LIMIT = 4 * 1024 * 1024


def _refuse_dtd(*_: Any) -> NoReturn:
    raise InvalidPayload("XML with a DTD or entity declarations is refused", code="security")


_DETACHED = expat.ParserCreate()  # stands for the walker's parser until it is made


class _Frame:
    """An open XML element: a resource or datatype (``node``), a primitive, a resource
    container (``contained``, ``entry.resource``), or a subtree to skip."""

    __slots__ = ("counts", "kind", "node", "path", "resource", "text")

    def __init__(self, kind: str, path: str, node: Node | None = None) -> None:
        self.kind = kind
        self.path = path
        self.node = node
        self.counts: dict[str, int] = {}
        self.resource = False
        self.text = False  # text content was found (reported once)


class FhirXmlValidator:
    def __init__(self, version: str | None = None, level: str = STRICT) -> None:
        self.findings = Findings(level)
        self.version = version
        self.checker: StructureChecker  # the walker's, made when the walker runs
        self._parser = _DETACHED  # the walker's parser, made with it
        self._stack: list[_Frame] = []
        self._skip = 0
        self._root_seen = False
        self._lead = LeadingBom()  # expat skips a BOM; the metadata records it
        self._opening = Opening()  # the body's first bytes, a UTF-8 BOM included
        self._held: list[bytes] | None = []  # None once the body streams
        self._size = 0

    def _where(self) -> str:
        parser = self._parser
        return f"line {parser.CurrentLineNumber}, column {parser.CurrentColumnNumber + 1}"

    def _error(self, code: str, message: str, expression: str | None) -> None:
        self.findings.add("error", code, message, expression=expression, location=self._where())

    def _declaration(self, _version: str, encoding: str | None, _standalone: int) -> None:
        if encoding and not names_utf8(encoding):
            self._error("invalid", f"FHIR XML must be UTF-8, not {encoding}", None)

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        if len(self._stack) >= MAX_DEPTH:
            too_deep(self.findings, "XML", self._stack[-1].path if self._stack else None)
        self._open(name, attrs)
        if self._skip:  # until this element ends, only count (XHTML, unknown elements)
            self._parser.StartElementHandler = self._skipped_start
            self._parser.EndElementHandler = self._skipped_end

    def _skipped_start(self, _name: str, _attrs: dict[str, str]) -> None:
        self._skip += 1
        if len(self._stack) + self._skip > MAX_DEPTH:
            too_deep(self.findings, "XML", self._stack[-1].path if self._stack else None)

    def _skipped_end(self, _name: str) -> None:
        self._skip -= 1
        if not self._skip:
            self._parser.StartElementHandler = self._start
            self._parser.EndElementHandler = self._end

    def _open(self, name: str, attrs: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        if not self._stack:
            self._root(namespace, local)
            self._attributes(attrs, local, ())
            return
        top = self._stack[-1]
        if top.kind == "container":
            self._contained(top, namespace, local)
            self._attributes(attrs, top.path, ())
        elif top.kind == "primitive":
            if namespace == FHIR_NS and local == "extension":
                self._child(top, local, attrs)
            else:
                self._error(
                    "structure",
                    f"Undefined element {shown.quoted(local)} inside the primitive at {top.path}",
                    f"{top.path}.{shown.name(local)}",
                )
                self._skip = 1
        elif namespace == XHTML_NS and local == "div":
            if top.node is not None:
                self.checker.child(top.node, "div")
            self._skip = 1
        elif namespace != FHIR_NS:
            message = f"element {shown.quoted(local)} is not in the FHIR namespace"
            self._error("structure", message, top.path)
            self._skip = 1
        else:
            self._child(top, local, attrs)

    def _root(self, namespace: str, local: str) -> None:
        self._root_seen = True
        if namespace != FHIR_NS:
            self.findings.add(
                "fatal",
                "structure",
                f"root element is not in the FHIR namespace {FHIR_NS}",
                location=self._where(),
            )
        model = self.checker.model
        path = local if model is not None and local in model.resources else shown.type_name(local)
        node = self.checker.open_resource(local, path, None)
        frame = _Frame("node", path, node)
        self._stack.append(frame)

    def _contained(self, top: _Frame, namespace: str, local: str) -> None:
        if top.resource or namespace != FHIR_NS:
            self._error("structure", f"{top.path} must hold exactly one resource", top.path)
            self._skip = 1
            return
        top.resource = True
        parent = self._stack[-2].node if len(self._stack) > 1 else None
        node = self.checker.open_resource(local, top.path, parent)
        self._stack.append(_Frame("node", top.path, node))

    def _child(self, top: _Frame, local: str, attrs: dict[str, str]) -> None:
        node = top.node
        if node is None or node.info is None:
            self._skip = 1
            return
        seen = top.counts.get(local, 0)
        top.counts[local] = seen + 1
        element = node.info.elements.get(local) if seen else self.checker.child(node, local)
        if element is None:
            self._skip = 1
            return
        if seen == 1 and not element.many:
            self.checker.too_many(node, element, 2)
        path = f"{top.path}.{local}" + (f"[{seen}]" if element.many else "")
        if element.primitive:
            frame = _Frame("primitive", path, node)
            self._attributes(attrs, path, ("value", "id"))
            value = attrs.get("value")
            if value is not None:
                self.checker.value(node, element, value, path, json=False)
            if "id" in attrs:
                self._element_id(f"{node.type}.{element.name}", attrs["id"], path)
        elif element.type == "Resource":
            frame = _Frame("container", path, node)
            self._attributes(attrs, path, ())
        else:
            child = self.checker.open_complex(element, path, node)
            carried = ("id", "url") if element.type == "Extension" else ("id",)
            self._attributes(attrs, path, carried)
            for name in carried:  # elements that XML carries as attributes
                if name in attrs:
                    self._carried(child, name, attrs[name], path)
            frame = _Frame("node", path, child)
        self._stack.append(frame)

    def _attributes(self, attrs: dict[str, str], path: str, allowed: tuple[str, ...]) -> None:
        """Only the attributes FHIR defines (namespace declarations never reach here)."""
        for name in attrs:
            if name not in allowed and not name.startswith(XSI_NS + " "):
                local = name.rpartition(" ")[2]
                message = f"Undefined attribute {shown.quoted(local)} on {path}"
                self._error("structure", message, path)

    def _carried(self, node: Node, name: str, value: str, path: str) -> None:
        """``id`` or an extension's ``url``, carried as an attribute of a complex element."""
        element: Element | None = self.checker.child(node, name)
        if element is not None:
            self.checker.value(node, element, value, f"{path}.{name}", json=False)

    def _element_id(self, owner: str, value: str, path: str) -> None:
        problem = primitive_problem("string", value, from_json=False)
        if problem is not None:
            self._error("value", f"{owner}.id {problem}", f"{path}.id")

    def _text(self, data: str) -> None:
        if self._skip or not self._stack or not data.strip(BLANK):
            return
        top = self._stack[-1]
        if not top.text:
            top.text = True
            self._error("structure", f"Text is not allowed inside {top.path}", top.path)

    def _end(self, _name: str) -> None:
        frame = self._stack.pop()
        if frame.kind == "node" and frame.node is not None:
            self.checker.close(frame.node)
        elif frame.kind == "container" and not frame.resource:
            self._error("required", f"{frame.path} must hold a resource", frame.path)

    def feed(self, chunk: bytes) -> None:
        if self._held is not None:
            self._size += len(chunk)
            if self._size <= BUFFER_LIMIT:
                self._held.append(chunk)
                return
            self._stream()
        self._check(chunk)

    def _stream(self) -> None:
        """From now on, check as the body comes (what was held first)."""
        held, self._held = self._held or [], None
        self.checker = checker_for(self.version, self.findings)
        self.checker.locate = self._where
        parser = self._parser = expat.ParserCreate(namespace_separator=" ")
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = _refuse_dtd
        parser.EntityDeclHandler = _refuse_dtd
        parser.ExternalEntityRefHandler = _refuse_dtd
        parser.XmlDeclHandler = self._declaration
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        parser.buffer_text = True
        # At once, not chunk by chunk: expat (before 2.6) rescans an unfinished token (a long
        # attribute value) at every call, so many small chunks took quadratic time.
        self._check(b"".join(held))

    def _check(self, chunk: bytes) -> None:
        if self._lead.found is None:
            head = self._lead.first(chunk)
            if head is None:
                return
            chunk = head
        # expat reads UTF-16, with or without a byte order mark (``xml_decider.decide``
        # leaves such a body to this walker).
        if not self._opening.settled and (problem := self._opening.take(chunk)) is not None:
            self.findings.add(
                "error",
                "invalid",
                f"FHIR XML must be UTF-8 ({problem})",
                location="line 1, column 1",
            )
        self._parse(chunk, final=False)

    def _parse(self, data: bytes, final: bool) -> None:
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as exc:
            reason = expat.ErrorString(exc.code) if exc.code else str(exc)
            self.findings.add(
                "fatal",
                "invalid",
                f"malformed XML: {reason}",
                location=f"line {exc.lineno}, column {exc.offset + 1}",
            )
        except (LookupError, ValueError) as exc:
            # expat asked Python for the codec the declaration names: unknown (LookupError),
            # multi-byte ("multi-byte encodings are not supported"), or one that cannot
            # decode with errors="replace" (idna, punycode, undefined: UnicodeError).
            why = (
                "unknown encoding"
                if isinstance(exc, LookupError)
                else "an encoding the XML parser cannot read"
            )
            self.findings.add(
                "fatal",
                "invalid",
                f"FHIR XML must be UTF-8 ({why})",
                location=self._where(),
            )

    def finish(self) -> dict[str, Any]:
        if self._held is not None:
            meta = self._fast(b"".join(self._held))
            if meta is not None:
                return meta
            self._stream()
        self._parse(self._lead.held(), final=True)
        if not self._root_seen:
            self.findings.add("fatal", "structure", "XML has no root element")
        return self._metadata(self.checker.summary.metadata(), bool(self._lead.found))

    def _fast(self, data: bytes) -> dict[str, Any] | None:
        """The metadata of a body the fast path proves valid, or None."""
        version = canonical_version(self.version)
        if version is None:
            return None
        bom = data.startswith(BOM)
        meta = decide(data[len(BOM) :] if bom else data, version)
        if meta is None:
            return None
        # Proven valid: no findings, so the verdict is the same at every level.
        return self._metadata(meta, bom)

    def _metadata(self, meta: dict[str, Any], bom: bool) -> dict[str, Any]:
        meta["fhir_version"] = canonical_version(self.version) or self.version
        if bom:
            meta["bom"] = True
        return self.findings.record(meta)
