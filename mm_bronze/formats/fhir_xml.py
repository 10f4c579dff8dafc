"""FHIR XML: well-formed UTF-8 XML, no DTD or entity declarations, root in the FHIR namespace."""

from __future__ import annotations

from typing import Any, NoReturn
from xml.parsers import expat

from mm_bronze.errors import InvalidPayload

FHIR_NS = "http://hl7.org/fhir"


def _refuse_dtd(*_: Any) -> NoReturn:
    raise InvalidPayload("XML with a DTD or entity declarations is refused")


class FhirXmlValidator:
    def __init__(self) -> None:
        self._parser = expat.ParserCreate(namespace_separator=" ")
        self._parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self._parser.StartDoctypeDeclHandler = _refuse_dtd
        self._parser.EntityDeclHandler = _refuse_dtd
        self._parser.ExternalEntityRefHandler = _refuse_dtd
        self._parser.StartElementHandler = self._start
        self._root: str | None = None
        self._first = True

    def _start(self, name: str, _attrs: Any) -> None:
        if self._root is None:
            self._root = name

    def feed(self, chunk: bytes) -> None:
        if self._first and chunk:
            self._first = False
            if chunk.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise InvalidPayload("FHIR XML must be UTF-8 (found a UTF-16 byte order mark)")
        self._parse(chunk, final=False)

    def _parse(self, data: bytes, final: bool) -> None:
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as exc:
            reason = expat.ErrorString(exc.code) if exc.code else str(exc)
            raise InvalidPayload(
                f"malformed XML: {reason}", location=f"line {exc.lineno}, column {exc.offset}"
            ) from None

    def finish(self) -> dict[str, Any]:
        self._parse(b"", final=True)
        if self._root is None:
            raise InvalidPayload("XML has no root element")
        namespace, _, local = self._root.rpartition(" ")
        if namespace != FHIR_NS:
            raise InvalidPayload(f"root element is not in the FHIR namespace {FHIR_NS}")
        return {"resource_type": local}
