"""The header fields the MLLP door needs, read from the raw message (MSH, or FHS/BHS batches).

Enough to route, label and acknowledge a message: delimiters, sender and receiver, message
type, control id, processing id, version, acknowledgment types and character set. Fields
are kept as the raw bytes the sender wrote, so the acknowledgement can echo them untouched.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

DEFAULT_FIELD_SEPARATOR = b"|"
DEFAULT_ENCODING = b"^~\\&"
BOM = b"\xef\xbb\xbf"
HEAD_LIMIT = 1024 * 1024  # header segments are searched for in this much of the message
_HEADER = re.compile(rb"(?:\A|[\r\n])(MSH|FHS|BHS)([^\r\n])")
_BLANK = re.compile(rb"[ \t\r\n]*")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class HeaderProblem:
    """Why the header cannot be used, and where (segment id and field number)."""

    reason: str
    segment: str
    field: int | None = None


@dataclass(frozen=True)
class Hl7Header:
    """The first header segments of a message or batch; empty fields are ``b""``."""

    field_separator: bytes = DEFAULT_FIELD_SEPARATOR
    encoding: bytes = DEFAULT_ENCODING
    msh: list[bytes] = field(default_factory=list)  # msh[n] is MSH-n (msh[1] the separator)
    batch: list[bytes] = field(default_factory=list)  # the first FHS or BHS, same numbering
    batch_segment: str = ""  # "FHS", "BHS" or ""
    batch_control_id: bytes = b""  # BHS-11, else FHS-11
    problem: HeaderProblem | None = None

    def msh_field(self, n: int) -> bytes:
        return self.msh[n] if n < len(self.msh) else b""

    def _origin(self, n: int) -> bytes:
        # Sender and receiver come from MSH; a batch without messages has only FHS/BHS.
        if self.msh:
            return self.msh_field(n)
        return self.batch[n] if n < len(self.batch) else b""

    def component(self, value: bytes, index: int) -> bytes:
        parts = value.split(self.encoding[:1]) if self.encoding else [value]
        return parts[index] if index < len(parts) else b""

    @property
    def sending_application(self) -> bytes:
        return self._origin(3)

    @property
    def sending_facility(self) -> bytes:
        return self._origin(4)

    @property
    def receiving_application(self) -> bytes:
        return self._origin(5)

    @property
    def receiving_facility(self) -> bytes:
        return self._origin(6)

    @property
    def control_id(self) -> bytes:
        """What MSA-2 echoes: the batch control id (BHS-11/FHS-11) if any, else MSH-10."""
        return self.batch_control_id or self.msh_field(10)

    @property
    def message_type(self) -> bytes:
        return self.component(self.msh_field(9), 0)

    @property
    def trigger_event(self) -> bytes:
        return self.component(self.msh_field(9), 1)

    @property
    def processing_id(self) -> bytes:
        return self.msh_field(11)

    @property
    def version(self) -> bytes:
        return self.component(self.msh_field(12), 0)

    @property
    def accept_ack_type(self) -> str:
        return _text(self.msh_field(15)).strip().upper()

    @property
    def application_ack_type(self) -> str:
        return _text(self.msh_field(16)).strip().upper()

    @property
    def charset(self) -> bytes:
        return self.msh_field(18)

    @property
    def subtype(self) -> str:
        """The message type for storage paths, e.g. ``oru_r01``; ``batch`` for an empty batch."""
        return _subtype(self.message_type, self.trigger_event, bool(self.batch_segment))

    @property
    def version_label(self) -> str:
        return _version_label(self.version)

    def describe(self) -> dict[str, str | None]:
        """The header as JSON-friendly text (identifiers only, never patient data)."""
        # All but the control id repeats from message to message of a sender: cached.
        msh = self.msh
        if len(msh) > 16:  # the common case, read straight from the fields
            fields = (
                msh[3],
                msh[4],
                msh[5],
                msh[6],
                msh[9],
                msh[11],
                self.version,
                msh[15],
                msh[16],
            )
        else:
            fields = (
                self.sending_application,
                self.sending_facility,
                self.receiving_application,
                self.receiving_facility,
                self.msh_field(9),
                self.processing_id,
                self.version,
                self.msh_field(15),
                self.msh_field(16),
            )
        # Large header fields are described without the cache (a hostile sender could
        # otherwise pin up to 256 large headers in memory).
        describe = _described if sum(map(len, fields)) <= CACHED_BYTES else _described.__wrapped__
        described = describe(*fields)
        return {"control_id": _text(self.control_id) or None, **described}


def parse_header(message: bytes) -> Hl7Header:
    """Read the first FHS/BHS and MSH segments of ``message``; never raises.

    A header that cannot be used (none found, unusable delimiters) is reported in
    ``problem``; whatever could be read is still there, so a reject can echo it.
    """
    at = len(BOM) if message[:3] == BOM else 0
    if message[at : at + 3] != b"MSH":  # blank lines may come first, as many as the sender likes
        at = _BLANK.match(message, at).end()  # type: ignore[union-attr]
    head = message[at : at + HEAD_LIMIT]
    if head[:3] == b"MSH" and len(head) > 3 and head[3] not in b"\r\n":
        # The common case, a message that starts with its MSH: no search needed.
        return _header(_fields(head, 0, head[3:4]), [], "", b"")
    msh: list[bytes] = []
    batch: list[bytes] = []
    batch_segment = ""
    batch_ids: dict[str, bytes] = {}
    for match in _HEADER.finditer(head):
        name = match.group(1).decode()
        fields = _fields(head, match.start(1), match.group(2))
        if name == "MSH":
            msh = fields
            break
        batch_ids.setdefault(name, fields[11] if len(fields) > 11 else b"")
        if not batch:
            batch, batch_segment = fields, name
    batch_control_id = batch_ids.get("BHS") or batch_ids.get("FHS") or b""
    return _header(msh, batch, batch_segment, batch_control_id)


def _header(
    msh: list[bytes], batch: list[bytes], batch_segment: str, batch_control_id: bytes
) -> Hl7Header:
    first = msh if not batch else batch
    if not first:
        return Hl7Header(problem=HeaderProblem("no MSH segment found", "MSH"))
    separator, encoding = first[1], first[2] if len(first) > 2 else b""
    problem, encoding = _delimiters(separator, encoding, batch_segment or "MSH")
    if problem is not None:
        return Hl7Header(
            msh=msh,
            batch=batch,
            batch_segment=batch_segment,
            batch_control_id=batch_control_id,
            problem=problem,
        )
    return Hl7Header(separator, encoding, msh, batch, batch_segment, batch_control_id)


def _fields(head: bytes, start: int, separator: bytes) -> list[bytes]:
    """The fields of the segment at ``start``: its id, the separator as field 1, then 2..n."""
    end = head.find(b"\r", start)
    if end < 0:
        end = len(head)
    newline = head.find(b"\n", start, end)
    if newline >= 0:
        end = newline
    segment = head[start:end]
    return [segment[:3], separator, *segment[4:].split(separator)]


@functools.lru_cache(maxsize=64)
def _delimiters(
    separator: bytes, encoding: bytes, segment: str
) -> tuple[HeaderProblem | None, bytes]:
    """Why the delimiters cannot be used (or None), and the encoding characters for the ACK.

    Senders use few distinct delimiter sets: the answer is cached.
    """
    problem = _delimiter_problem(separator, encoding, segment)
    return problem, encoding if problem is not None else _ack_encoding(separator, encoding)


def _delimiter_problem(separator: bytes, encoding: bytes, segment: str) -> HeaderProblem | None:
    if not _is_delimiter(separator[0]):
        return HeaderProblem(f"{segment}-1 field separator {separator!r} is not usable", segment, 1)
    component_and_repetition = encoding[:2]
    if (
        len(set(component_and_repetition)) != 2
        or separator[0] in component_and_repetition
        or not all(_is_delimiter(c) for c in component_and_repetition)
    ):
        return HeaderProblem(
            f"{segment}-2 encoding characters need distinct component and repetition separators",
            segment,
            2,
        )
    return None


def _ack_encoding(separator: bytes, encoding: bytes) -> bytes:
    """The sender's encoding characters when all four are distinct delimiters, else ``^~\\&``."""
    chars = encoding[:4]
    if len(set(chars)) == 4 and separator[0] not in chars and all(map(_is_delimiter, chars)):
        return chars
    return DEFAULT_ENCODING


def _is_delimiter(char: int) -> bool:
    return not (chr(char).isalnum() or chr(char).isspace())


# Labels repeat from message to message (a few types and versions): cached.
@functools.lru_cache(maxsize=256)
def _subtype(message_type: bytes, trigger_event: bytes, batch: bool) -> str:
    kind = "_".join(_text(p) for p in (message_type, trigger_event) if p)
    # Nothing usable (an empty MSH-9, or "!!!"): never an empty segment in a storage path.
    return path_safe(kind.lower()) or ("batch" if batch else "unknown")


# A sender's header fields larger than this together are not cached (here and in the ACK's
# cache): a hostile sender could otherwise pin up to 256 large headers in memory.
CACHED_BYTES = 1024


@functools.lru_cache(maxsize=256)
def _described(
    sending_application: bytes,
    sending_facility: bytes,
    receiving_application: bytes,
    receiving_facility: bytes,
    message_type: bytes,
    processing_id: bytes,
    version: bytes,
    accept_ack_type: bytes,
    application_ack_type: bytes,
) -> dict[str, str | None]:
    return {
        "message_type": _text(message_type) or None,
        "sending_application": _text(sending_application) or None,
        "sending_facility": _text(sending_facility) or None,
        "receiving_application": _text(receiving_application) or None,
        "receiving_facility": _text(receiving_facility) or None,
        "processing_id": _text(processing_id) or None,
        "hl7_version": _text(version) or None,
        "accept_ack_type": _text(accept_ack_type).strip().upper() or None,
        "application_ack_type": _text(application_ack_type).strip().upper() or None,
    }


@functools.lru_cache(maxsize=64)
def _version_label(version: bytes) -> str:
    return path_safe(_text(version)) or "unknown"


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def path_safe(value: str) -> str:
    """``value`` reduced to what a storage path segment may hold."""
    return _SAFE.sub("_", value).strip("_.")[:64]
