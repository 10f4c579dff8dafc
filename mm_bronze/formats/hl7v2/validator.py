"""HL7 v2 (ER7 text): messages, FHS/BHS batches and multi-message files, read as a stream.

Segments end with CR, LF or CRLF (any mix); a UTF-8 byte order mark and blank lines are
tolerated; the bytes themselves are never changed. Every ``MSH`` starts a message; its
delimiters, type, control id and version are read from the message, not from the route.
Batches follow ``[FHS] {[BHS] {MSH ...} [BTS]} [FTS]``: one ``FHS``, first; a ``BHS`` before
its messages and closed (by ``BTS``) before the next; ``BTS-1`` and ``FTS-1``, when given,
count the messages of their batch and the batches of the file.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from mm_bronze.formats.base import STRICT, Findings
from mm_bronze.formats.hl7v2.fields import (
    HD_FIELDS,
    NUMBER,
    REQUIRED,
    SEGMENT_ID,
    SN_COMPARATORS,
    SN_SEPARATORS,
    field_label,
)

BOM = b"\xef\xbb\xbf"
NUMBER_BYTES = re.compile(rb"[+-]?(\d+(\.\d*)?|\.\d+)")
HEADERS = (b"MSH", b"FHS", b"BHS")
# An unfinished segment longer than this (e.g. a document embedded in OBX-5) keeps only
# the first FIELD_KEEP bytes of each long field: the checks only read short fields.
SEGMENT_HOLD = 1024 * 1024
FIELD_KEEP = 1024
# Body segment IDs found valid (at most 26 * 36 * 36 of them): name and required fields.
BODY_IDS: dict[bytes, tuple[str, tuple[int, ...]]] = {}


class Hl7v2Validator:
    def __init__(self, version: str | None = None, level: str = STRICT) -> None:
        self.findings = Findings(level)
        self.declared_version = version
        self._partial = bytearray()
        self._first_chunk = True
        self._line = 0  # segment lines, blank ones included
        self._started = False  # a header segment has been seen
        self._field_sep = b"|"
        self._component_sep = "^"
        self._repetition_sep = "~"
        # What a required field may hold and still be empty: the component and repetition
        # characters (as bytes where they are ASCII, so fields need no decoding).
        self._filler: bytes | str = b"^~"
        self._messages = 0
        self._segment_in_message = 0
        self._types: dict[str, int] = {}
        self._first: dict[str, Any] = {}
        self._batch = False
        self._file_header = False  # FHS seen
        self._batch_open = False  # BHS seen, its BTS not yet
        self._batches = 0  # BHS segments
        self._batch_messages = 0  # messages since the last BHS or BTS
        self._in_message = False  # an MSH started, no batch segment since
        self._first_delimiters: tuple[str | None, str | None] = (None, None)

    def feed(self, chunk: bytes) -> None:
        if self._first_chunk and chunk:
            if len(self._partial) + len(chunk) < len(BOM) and BOM.startswith(
                bytes(self._partial) + chunk
            ):
                self._partial += chunk
                return
            self._first_chunk = False
            data = bytes(self._partial) + chunk
            self._partial.clear()
            chunk = data.removeprefix(BOM)
        # Split at every CR or LF at once (in C); a CRLF, or a CR and LF in two chunks,
        # leave an empty segment, which is skipped like a blank line.
        *segments, rest = _split_lines(chunk)
        if segments:
            if self._partial:
                self._partial += segments[0]
                segments[0] = bytes(self._partial)
                self._partial.clear()
            self._segments(segments)
        self._partial += rest
        if len(self._partial) > SEGMENT_HOLD:
            self._compact()

    def _compact(self) -> None:
        fields = bytes(self._partial).split(self._field_sep)
        self._partial = bytearray(self._field_sep.join(f[:FIELD_KEEP] for f in fields))

    def _segments(self, segments: list[bytes]) -> None:
        """``_segment`` of each, the common case the short way: a body segment inside a
        message, with an ID already seen valid there, needs no more than counting and its
        required fields checked (``_fields``)."""
        known = BODY_IDS
        for segment in segments:
            checks = known.get(segment[:3])
            if checks is not None and segment[3:4] == self._field_sep and self._messages:
                self._line += 1
                self._segment_in_message += 1
                if checks[1]:
                    self._fields(segment, checks)
            else:
                self._segment(segment)

    def _segment(self, segment: bytes) -> None:
        if not segment.strip():
            return  # the LF of a CRLF, or a blank line: not a segment
        self._line += 1
        seg_id = segment[:3]
        if not self._started:
            if seg_id in HEADERS and len(segment) > 3:
                self._started = True
            else:
                self.findings.add(
                    "error",
                    "structure",
                    f"segment {self._line}: data before the first MSH segment",
                    location=f"segment {self._line}",
                )
                return
        if seg_id in HEADERS:
            if seg_id != b"MSH" and not self._envelope(seg_id.decode()):
                return
            self._header(segment, seg_id.decode())
        elif seg_id in (b"BTS", b"FTS"):
            self._trailer(segment, seg_id.decode())
        else:
            self._body_segment(segment)

    def _where(self, name: str) -> str:
        if self._messages:
            return f"message {self._messages}, segment {self._segment_in_message} ({name})"
        return f"segment {self._line} ({name})"

    def _error(self, name: str, field: int | None, problem: str, code: str = "structure") -> None:
        label = field_label(name, field) if field is not None else name
        self.findings.add(
            "error",
            code,
            f"{label} {problem}",
            expression=f"{name}-{field}" if field is not None else name,
            location=self._where(name),
        )

    def _batch_error(self, name: str, problem: str, field: int | None = None) -> None:
        self.findings.add(
            "error",
            "structure",
            f"{field_label(name, field) if field else name} {problem}",
            expression=f"{name}-{field}" if field else name,
            location=f"segment {self._line} ({name})",
        )

    def _envelope(self, name: str) -> bool:
        """An FHS or BHS in its place; False (with an error) when it is out of place."""
        if name == "FHS":
            if self._file_header:
                self._batch_error(name, "repeats: a file has one file header")
                return False
            self._file_header = True
            if self._line > 1:
                self._batch_error(name, "must be the first segment of the file")
            return True
        if self._batch_open:
            self._batch_error(name, "starts a batch before the BTS that ends the previous one")
        elif self._in_message:
            self._batch_error(name, "appears inside a message: a batch header comes first")
        self._batch_open = True
        self._in_message = False
        self._batches += 1
        self._batch_messages = 0
        return True

    def _header(self, segment: bytes, name: str) -> None:
        if name == "MSH":
            self._messages += 1
            self._segment_in_message = 1
            self._batch_messages += 1
            self._in_message = True
        else:
            self._batch = True
        self._delimiters(segment, name)
        # Decoded whole, then split: an ASCII separator never falls inside a UTF-8 sequence.
        sep = self._field_sep
        fields = (
            _text(segment).split(sep.decode())
            if sep.isascii()
            else [_text(f) for f in segment.split(sep)]
        )

        # fields[0] is the segment id and MSH-1 the separator itself, so MSH-n is fields[n-1].
        def field(n: int) -> str:
            return fields[n - 1] if len(fields) >= n else ""

        for n in HD_FIELDS.get(name, ()):
            value = field(n)
            parts = value.split(self._component_sep)
            if value and not parts[0] and not (len(parts) > 1 and parts[1]):
                self._error(name, n, "has neither a namespace ID (HD.1) nor a universal ID (HD.2)")
        if name != "MSH":
            return
        for n in REQUIRED["MSH"]:
            if not field(n).strip(self._component_sep):
                self._error("MSH", n, "is required but empty")
        message_type = field(9).split(self._component_sep)
        type_key = "^".join(p for p in message_type[:2] if p)
        if type_key:
            self._types[type_key] = self._types.get(type_key, 0) + 1
        if self._messages == 1:
            self._first = {
                "message_type": _part(message_type, 0),
                "trigger_event": _part(message_type, 1),
                "message_structure": _part(message_type, 2),
                "control_id": field(10) or None,
                "processing_id": field(11) or None,
                "hl7_version": field(12).split(self._component_sep)[0] or None,
                "sending_application": field(3) or None,
                "sending_facility": field(4) or None,
                "receiving_application": field(5) or None,
                "receiving_facility": field(6) or None,
                "accept_ack_type": field(15) or None,
                "application_ack_type": field(16) or None,
                "character_set": field(18) or None,
            }

    def _delimiters(self, segment: bytes, name: str) -> None:
        sep = segment[3:4]
        if not sep or sep.isalnum() or sep in (b" ", b"\t"):
            self._error(name, 1, "is not a valid field separator", code="invalid")
            return
        self._field_sep = sep
        encoding = segment[4:].split(sep, 1)[0]
        chars, verdict = _encoding_verdict(sep, encoding)
        if verdict == "invalid":
            self._error(
                name,
                2,
                "are not valid: the component, repetition and escape characters must be "
                "distinct, non-alphanumeric, and differ from the field separator",
                code="invalid",
            )
        elif verdict == "unusual":
            self.findings.add(
                "warning",
                "invalid",
                f"{field_label(name, 2)} are not the usual 4 distinct characters",
                expression=f"{name}-2",
                location=self._where(name),
            )
        if len(chars) >= 2:
            self._component_sep, self._repetition_sep = chars[0], chars[1]
            self._filler = _filler(chars[0] + chars[1])
        if self._messages == 1 and name == "MSH":
            self._first_delimiters = (sep.decode("latin-1"), chars)

    def _trailer(self, segment: bytes, name: str) -> None:
        fields = segment.split(self._field_sep)
        count = _text(fields[1]).strip() if len(fields) > 1 else ""
        self._in_message = False
        if name == "BTS":
            found, what = self._batch_messages, "messages, the batch holds"
            self._batch_open = False
            self._batch_messages = 0
        else:
            found, what = self._batches, "batches, the file holds"
        if count.isascii() and count.isdigit() and int(count) != found:
            self._batch_error(name, f"declares {int(count)} {what} {found}", 1)

    def _body_segment(self, segment: bytes) -> None:
        seg_id = segment[:3]
        name = seg_id.decode("latin-1")
        if SEGMENT_ID.fullmatch(seg_id) is None or segment[3:4] not in (b"", self._field_sep):
            self.findings.add(
                "error",
                "structure",
                f"segment {self._line} does not start with a segment ID and a field separator",
                location=f"segment {self._line}",
            )
            return
        if self._messages == 0:
            self._error(name, None, "appears outside a message (before any MSH)")
            return
        self._segment_in_message += 1
        checks = BODY_IDS[seg_id] = (name, REQUIRED.get(name, ()))
        if checks[1]:
            self._fields(segment, checks)

    def _fields(self, segment: bytes, checks: tuple[str, tuple[int, ...]]) -> None:
        """The required fields of a body segment, and the value of an NM or SN ``OBX``."""
        name, required = checks
        fields = segment.split(self._field_sep)
        count = len(fields)
        filler = self._filler
        for n in required:
            if count <= n or not (
                fields[n].strip(filler)
                if isinstance(filler, bytes)
                else fields[n].decode("utf-8", "replace").strip(filler)
            ):
                self._error(name, n, "is required but empty")
        if name == "OBX" and count > 5 and fields[2] in (b"NM", b"SN"):
            # A plain ASCII number (the usual NM value) is valid as it stands.
            if fields[2] != b"NM" or NUMBER_BYTES.fullmatch(fields[5]) is None:
                self._observation_value(_text(fields[2]), _text(fields[5]))

    def _observation_value(self, value_type: str, value: str) -> None:
        for repetition in value.split(self._repetition_sep) if value else ():
            if value_type == "NM" and repetition and not NUMBER.fullmatch(repetition):
                self._error("OBX", 5, "is not a number although OBX-2 says NM", code="value")
                return
            if value_type == "SN" and repetition:
                parts = [*repetition.split(self._component_sep), "", "", ""]
                if (
                    parts[0] not in SN_COMPARATORS
                    or (parts[1] and not NUMBER.fullmatch(parts[1]))
                    or parts[2] not in SN_SEPARATORS
                    or (parts[3] and not NUMBER.fullmatch(parts[3]))
                ):
                    self._error(
                        "OBX",
                        5,
                        "is not a structured numeric (SN) value although OBX-2 says SN",
                        code="value",
                    )
                    return

    def finish(self) -> dict[str, Any]:
        if self._first_chunk and self._partial:
            self._first_chunk = False
            data = bytes(self._partial).removeprefix(BOM)
            self._partial = bytearray(data)
        if self._partial:
            segment = bytes(self._partial)
            self._partial.clear()
            self._segments([segment])  # the last segment, unended: the short way too
        if not self._started:
            self.findings.add("fatal", "structure", "not HL7 v2: no MSH (or FHS/BHS) segment found")
        meta = self._metadata()
        if (
            self.declared_version
            and meta["hl7_version"]
            and self.declared_version != meta["hl7_version"]
        ):
            self.findings.add(
                "information",
                "informational",
                f"the route declares version {self.declared_version}, MSH-12 says "
                f"{meta['hl7_version']}",
                expression="MSH-12",
            )
        return self.findings.record(meta)

    def _metadata(self) -> dict[str, Any]:
        keys = (
            "message_type",
            "trigger_event",
            "message_structure",
            "control_id",
            "processing_id",
            "hl7_version",
            "sending_application",
            "sending_facility",
            "receiving_application",
            "receiving_facility",
            "accept_ack_type",
            "application_ack_type",
            "character_set",
        )
        meta: dict[str, Any] = {key: self._first.get(key) for key in keys}
        field_sep, encoding = self._first_delimiters
        meta["field_separator"] = field_sep
        meta["encoding_characters"] = encoding
        meta["message_count"] = self._messages
        meta["message_types"] = dict(sorted(self._types.items()))
        meta["batch"] = self._batch
        return meta


def _split_lines(chunk: bytes) -> list[bytes]:
    """``chunk`` split at every CR and at every LF, in C: where both occur, every LF is
    first made a CR (a copy, for splitting only), as a regex split is several times slower."""
    if b"\n" not in chunk:
        return chunk.split(b"\r")
    if b"\r" not in chunk:
        return chunk.split(b"\n")
    return chunk.replace(b"\n", b"\r").split(b"\r")


@functools.lru_cache(maxsize=64)
def _encoding_verdict(sep: bytes, encoding: bytes) -> tuple[str, str]:
    """MSH-2 as text, and ``ok``, ``unusual`` or ``invalid``; senders use few: cached.

    The component, repetition and escape characters must differ from each other and from
    the field separator, or fields cannot be split; a doubled subcomponent character
    (``^~\\\\&``, a common escaping slip) is only noted (``unusual``).
    """
    chars = _text(encoding)
    splitting = chars[:3]
    if (
        len(chars) < 2
        or len(set(splitting)) != len(splitting)
        or any(c.isalnum() or c.isspace() for c in chars)
        or sep.decode("latin-1") in chars
    ):
        return chars, "invalid"
    if len(set(chars)) != len(chars) or len(chars) not in (4, 5):
        return chars, "unusual"
    return chars, "ok"


def _filler(chars: str) -> bytes | str:
    return chars.encode() if chars.isascii() else chars


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _part(parts: list[str], index: int) -> str | None:
    return parts[index] if len(parts) > index and parts[index] else None
