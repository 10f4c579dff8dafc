"""What an uploaded file is, found from its content (the file name is only a hint).

FHIR JSON and XML (bundle or single resource), FHIR bulk NDJSON and HL7 v2 (single
messages and FHS/BHS batches) are recognised and validated while the bytes arrive; a file
that is none of these, or fails its validation, is still landed, as format ``file`` with
the reason recorded.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from mm_bronze import formats
from mm_bronze.errors import InvalidPayload
from mm_bronze.formats import PayloadValidator

log = structlog.get_logger(__name__)

HEAD_BYTES = 64 * 1024
# An NDJSON line longer than this is not held to be checked: the file lands as ``file``.
LINE_LIMIT = 16 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_HL7_START = re.compile(rb"(MSH|FHS|BHS)[^\r\n\w]")
_SEGMENT = re.compile(r"[^A-Za-z0-9._-]+")
_BINARY_TYPES = {".json": "json", ".xml": "xml", ".ndjson": "ndjson", ".txt": "plain"}


@dataclass(frozen=True)
class Kind:
    """The four route segments an HTTP sender would have declared, plus extracted metadata."""

    format: str
    content_type: str
    version: str
    subtype: str
    metadata: dict[str, Any] = field(default_factory=dict)


class _Head(msgspec.Struct):
    resourceType: str | None = None


class NdjsonValidator:
    """FHIR bulk NDJSON: every non-empty line is a JSON object with a ``resourceType``.

    A line is held, in the pieces it arrived in, until it ends; one longer than
    ``LINE_LIMIT`` is not held (nor checked), so memory stays bounded and each byte is
    copied once, however long a line is.
    """

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # the pieces of the line not yet ended
        self._partial_size = 0
        self._lines = 0
        self._types: dict[str, int] = {}
        self._bom: bool | None = None  # a UTF-8 BOM before the first line (skipped, recorded)

    def feed(self, chunk: bytes) -> None:
        if self._bom is None:
            data = self._take_partial() + chunk
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._hold(data)
                return
            self._bom = data.startswith(_BOM)
            chunk = data.removeprefix(_BOM)
        end = chunk.find(b"\n")
        if end == -1:
            self._hold(chunk)
            return
        first = chunk[:end]
        if self._partial:
            self._hold(first)
            first = self._take_partial()
        *lines, rest = chunk[end + 1 :].split(b"\n")
        self._line(first)
        for line in lines:
            self._line(line)
        self._hold(rest)

    def _hold(self, piece: bytes) -> None:
        if not piece:
            return
        self._partial_size += len(piece)
        if self._partial_size > LINE_LIMIT:
            self._take_partial()
            raise InvalidPayload(
                f"NDJSON line {self._lines + 1} is longer than {LINE_LIMIT} bytes: not checked"
            )
        self._partial.append(piece)

    def _take_partial(self) -> bytes:
        data = b"".join(self._partial)
        self._partial, self._partial_size = [], 0
        return data

    def _line(self, line: bytes) -> None:
        if not line.strip():
            return
        self._lines += 1
        try:
            head = msgspec.json.decode(line, type=_Head)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidPayload(f"NDJSON line {self._lines} is not a JSON object: {exc}") from None
        if not head.resourceType:
            raise InvalidPayload(f"NDJSON line {self._lines} has no resourceType")
        self._types[head.resourceType] = self._types.get(head.resourceType, 0) + 1

    def finish(self) -> dict[str, Any]:
        self._line(self._take_partial())
        if not self._lines:
            raise InvalidPayload("NDJSON file has no resources")
        meta: dict[str, Any] = {"resources": self._lines, "resource_types": self._types}
        if self._bom:
            meta["bom"] = True
        return meta


def _guess(head: bytes, name: str, complete: bool) -> str:
    """The candidate kind of a file from its first bytes and its name."""
    text = head.removeprefix(_BOM).lstrip(b" \t\r\n")
    ext = posixpath.splitext(name.lower())[1]
    if text.startswith(b"{"):
        if ext == ".ndjson" or _looks_like_ndjson(text, complete):
            return "ndjson"
        return "fhir-json"
    if text.startswith(b"<"):
        return "fhir-xml"
    if _HL7_START.match(text):
        return "hl7v2"
    return "other"


def _looks_like_ndjson(text: bytes, complete: bool) -> bool:
    first, newline, rest = text.partition(b"\n")
    if not newline or not rest.strip():
        return False
    try:
        return isinstance(msgspec.json.decode(first), dict)
    except (msgspec.DecodeError, RecursionError):  # not JSON, or nested too deep for FHIR
        return False


def _validator(candidate: str) -> PayloadValidator | None:
    if candidate == "fhir-json":
        return formats.validator_for("fhir", "json")
    if candidate == "fhir-xml":
        return formats.validator_for("fhir", "xml")
    if candidate == "hl7v2":
        return formats.validator_for("hl7", "text")
    if candidate == "ndjson":
        return NdjsonValidator()
    return None


def _failed(exc: Exception) -> str:
    """The reason recorded for a validator that failed unexpectedly (logged: a defect)."""
    log.error("sftp validation failed", error=type(exc).__name__)  # its text may quote data
    return f"the validator failed unexpectedly ({type(exc).__name__})"


def _segment(value: object, default: str) -> str:
    text = _SEGMENT.sub("-", str(value or "")).strip("-.")[:64]
    return text or default


class KindDetector:
    """Fed a file's bytes in order; ``finish`` says what the file is. Never raises."""

    def __init__(self, name: str, fhir_version: str) -> None:
        self._name = name
        self._fhir_version = fhir_version
        self._head: list[bytes] = []
        self._head_size = 0
        self._candidate: str | None = None
        self._validator: PayloadValidator | None = None
        self._problem: str | None = None

    def feed(self, chunk: bytes) -> None:
        if self._candidate is None:
            self._head.append(chunk)
            self._head_size += len(chunk)
            if self._head_size >= HEAD_BYTES:
                self._decide(complete=False)
            return
        self._feed_validator(chunk)

    def _decide(self, complete: bool) -> None:
        head = b"".join(self._head)
        self._head = []
        try:
            self._candidate = _guess(head, self._name, complete)
            self._validator = _validator(self._candidate)
        except Exception as exc:  # a defect: the file still lands, as what it may be
            self._candidate, self._validator = "other", None
            _failed(exc)
            return
        self._feed_validator(head)

    def _feed_validator(self, chunk: bytes) -> None:
        if self._validator is None or self._problem is not None or not chunk:
            return
        try:
            self._validator.feed(chunk)
        except InvalidPayload as exc:
            self._problem = exc.reason
        except Exception as exc:  # a validator's defect: the file still lands
            self._problem = _failed(exc)

    def finish(self) -> Kind:
        if self._candidate is None:
            self._decide(complete=True)
        candidate = self._candidate
        metadata: dict[str, Any] = {}
        if self._validator is not None and self._problem is None:
            try:
                metadata = self._validator.finish()
            except InvalidPayload as exc:
                self._problem = exc.reason
            except Exception as exc:  # a validator's defect: the file still lands
                self._problem = _failed(exc)
        if self._validator is None or self._problem is not None:
            return self._other(candidate)
        if candidate in ("fhir-json", "fhir-xml"):
            subtype = "bundle" if metadata.get("resource_type") == "Bundle" else "resource"
            ctype = "json" if candidate == "fhir-json" else "xml"
            return Kind("fhir", ctype, self._fhir_version, subtype, metadata)
        if candidate == "ndjson":
            return Kind("fhir", "ndjson", self._fhir_version, "bulk", metadata)
        # Message type and trigger of the first message, as the MLLP door records them
        # (``oru_r01``); ``batch`` for a batch without messages.
        message_type = str(metadata.get("message_type") or "").split("^")[0]
        kind = "_".join(p for p in (message_type, metadata.get("trigger_event")) if p)
        batch = bool(metadata.get("batch"))  # an FHS/BHS envelope
        subtype = _segment(str(kind).lower(), "batch" if batch else "unknown")
        version = _segment(metadata.get("hl7_version"), "unknown")
        return Kind("hl7", "text", version, subtype, metadata)

    def _other(self, candidate: str | None) -> Kind:
        ext = posixpath.splitext(self._name.lower())[1]
        metadata: dict[str, Any] = {}
        if candidate and candidate != "other":
            metadata = {"looked_like": candidate, "validation_error": self._problem}
        ctype = _BINARY_TYPES.get(ext, "octet-stream")
        return Kind("file", ctype, "unknown", _segment(ext.lstrip("."), "none"), metadata)
