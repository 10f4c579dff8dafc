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
from typing import Any, NamedTuple

from mm_bronze.formats.base import STRICT, Findings
from mm_bronze.formats.encoding import Opening
from mm_bronze.formats.hl7v2 import plain
from mm_bronze.formats.hl7v2.fields import (
    HD_FIELDS,
    HEADER_FIELDS,
    LAST_FIELD,
    NO_MSH,
    NUMBER,
    NUMBER_BYTES,
    REQUIRED,
    SEGMENT_ID,
    SN_CHARS,
    SN_COMPARATORS,
    SN_SEPARATORS,
    SN_VALUE,
    body_metadata,
    field_label,
    first_msh,
    sn_pattern,
    type_key,
)

BOM = b"\xef\xbb\xbf"
HEADERS = (b"MSH", b"FHS", b"BHS")
# An unfinished segment longer than this (e.g. a document embedded in OBX-5) keeps only
# the first FIELD_KEEP bytes of each long field: the checks only read short fields.
SEGMENT_HOLD = 1024 * 1024
FIELD_KEEP = 1024
# A first chunk up to this size is held, and read the short way if it is the whole body.
PLAIN_HOLD = 64 * 1024


class Checks(NamedTuple):
    """What is checked in a body segment: the fields it must fill, and (``OBX``) its value."""

    name: str
    required: tuple[int, ...]
    # What the short way looks at: nothing (0: no required field), the one required field
    # (its number; for OBX one at or after OBX-5, the value also looked at), or more than
    # that (-1: such a segment always goes the long way).
    field: int
    splits: int  # splits at the field separator that reach ``field``
    observation: bool


def _checks(name: str) -> Checks:
    required = REQUIRED.get(name, ())
    observation = name == "OBX"
    if not required:
        field = 0
    elif len(required) == 1 and required[0] >= (5 if observation else 1):
        field = required[0]
    else:
        field = -1
    return Checks(name, required, field, field + 1, observation)


# Body segments found valid, by field separator then by ID and separator (``b"OBX|"``):
# what is checked in them. At most 26 * 36 * 36 IDs for each of a few separators.
BODY_IDS: dict[bytes, dict[bytes, Checks]] = {}
SEPARATORS_KEPT = 8
NONE_KNOWN: dict[bytes, Checks] = {}


class Hl7v2Validator:
    def __init__(self, version: str | None = None, level: str = STRICT) -> None:
        self.findings = Findings(level)
        self.declared_version = version
        self._partial = bytearray()
        # ``_partial`` is compacted once it holds more than this: SEGMENT_HOLD, or twice what
        # the last compaction left (a segment of empty fields compacts to itself, and
        # compacting it again at every chunk would take quadratic time).
        self._hold = SEGMENT_HOLD
        self._first_chunk = True
        self._line = 0  # segment lines, blank ones included
        self._started = False  # a header segment has been seen
        self._field_sep = b"|"
        self._component_sep = "^"
        self._repetition_sep = "~"
        # What a required field may hold and still be empty: the component and repetition
        # characters (as bytes where they are ASCII, so fields need no decoding).
        self._filler: bytes | str = b"^~"
        self._sn_value: re.Pattern[bytes] | None = SN_VALUE
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
        self._opening = Opening()  # kept to say why a body is not HL7 v2 at all
        # The first chunk, held until a second arrives or the body ends: a body of one chunk
        # is read the short way when it is one plain message (``plain``).
        self._held: bytes | None = None
        self._fed = False

    def feed(self, chunk: bytes) -> None:
        if not self._fed:
            self._fed = True
            if len(chunk) <= PLAIN_HOLD:
                self._held = chunk
                return
        elif self._held is not None:
            held, self._held = self._held, None
            self._read(held)
        self._read(chunk)

    def _plain(self, body: bytes) -> dict[str, Any] | None:
        """``body``'s metadata read the short way, or None when it is not plain."""
        return plain.metadata(body, self.declared_version, self.findings.level)

    def _read(self, chunk: bytes) -> None:
        if not self._opening.settled:
            self._opening.take(chunk)
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
        segments = _split_lines(chunk)
        rest = segments.pop()
        if segments:
            if self._partial:
                self._partial += segments[0]
                segments[0] = bytes(self._partial)
                self._partial.clear()
            self._segments(segments)
            self._hold = SEGMENT_HOLD
        self._partial += rest
        if len(self._partial) > self._hold:
            self._compact()

    def _compact(self) -> None:
        fields = bytes(self._partial).split(self._field_sep)
        self._partial = bytearray(self._field_sep.join(f[:FIELD_KEEP] for f in fields))
        self._hold = max(SEGMENT_HOLD, 2 * len(self._partial))

    def _segments(self, segments: list[bytes]) -> None:
        """``_segment`` of each, the common case the short way: a body segment inside a
        message, with an ID already seen valid there, needs no more than counting and a look
        at the fields it must fill (and at an ``OBX`` value said to be numeric). Only a
        segment where that look finds something possibly wrong goes through ``_fields``,
        which checks it again in full and reports what is wrong."""
        known = self._known()
        sep = self._field_sep
        filler = self._filler
        sn_value = self._sn_value
        counted = 0  # segments taken the short way, not yet added to the counters
        for segment in segments:
            checks = known.get(segment[:4])
            if checks is None:
                if counted:
                    self._line += counted
                    self._segment_in_message += counted
                    counted = 0
                self._segment(segment)
                known = self._known()
                sep = self._field_sep
                filler = self._filler
                sn_value = self._sn_value
                continue
            counted += 1
            _, _, field, splits, observation = checks
            if not field:
                continue
            if field > 0:
                fields = segment.split(sep, splits)
                if len(fields) > field and fields[field].strip(filler):  # type: ignore[arg-type]
                    if not observation:
                        continue  # nothing to report
                    value_type = fields[2]
                    if value_type == b"NM":
                        if NUMBER_BYTES.fullmatch(fields[5]) is not None:
                            continue  # a plain ASCII number, the usual NM value
                    elif value_type != b"SN" or (
                        sn_value is not None and sn_value.fullmatch(fields[5]) is not None
                    ):
                        continue
            self._line += counted
            self._segment_in_message += counted
            counted = 0
            self._fields(segment, checks)
        self._line += counted
        self._segment_in_message += counted

    def _known(self) -> dict[bytes, Checks]:
        """The body segments that may take the short way: none before the first message
        or while the component or repetition character is not ASCII."""
        if not self._messages or not isinstance(self._filler, bytes):
            return NONE_KNOWN
        return BODY_IDS.get(self._field_sep, NONE_KNOWN)

    def _segment(self, segment: bytes) -> None:
        if not segment or segment.isspace():
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
        hd_fields = HD_FIELDS.get(name, ())
        if name != "MSH" and not hd_fields:
            self._fields_past_the_last(segment, name)
            return  # no other field of this header is read
        # Decoded whole, then split: an ASCII separator never falls inside a UTF-8 sequence.
        # Only the fields read here are split off (up to MSH-18), the list padded to them.
        sep = self._field_sep
        fields = (
            _text(segment).split(sep.decode(), HEADER_FIELDS)
            if sep.isascii()
            else [_text(f) for f in segment.split(sep, HEADER_FIELDS)]
        )
        if len(fields) < HEADER_FIELDS:
            fields += [""] * (HEADER_FIELDS - len(fields))
        # fields[0] is the segment id and MSH-1 the separator itself, so MSH-n is fields[n-1].
        component = self._component_sep
        for n in hd_fields:
            # Neither HD.1 nor HD.2: the value starts with an empty first and second component.
            value = fields[n - 1]
            if value[:1] == component and value[1:2] in ("", component):
                self._error(name, n, "has neither a namespace ID (HD.1) nor a universal ID (HD.2)")
        if name != "MSH":
            return
        for n in REQUIRED["MSH"]:
            if not fields[n - 1].strip(component):
                self._error("MSH", n, "is required but empty")
        if len(fields) > HEADER_FIELDS:  # MSH-19 or later is there
            self._fields_past_the_last(segment, name)
        kind = type_key(fields[8], component)
        if kind:
            self._types[kind] = self._types.get(kind, 0) + 1
        if self._messages == 1:
            self._first = first_msh(fields, component)

    def _fields_past_the_last(self, header: bytes, name: str) -> None:
        """An error if the ``header`` segment fills a field past the last one HL7 v2 defines:
        what follows is the rest of the message, its segment separators removed (``curl -d``
        removes them). Accepted, such a message would read as one long header."""
        sep = header[3:4]
        if sep != self._field_sep:
            return  # not a valid field separator: an error already
        last = header.rstrip(sep).count(sep) + 1  # the number of its last filled field
        defined = LAST_FIELD[name]
        if last > defined:
            self._error(
                name,
                None,
                f"fills {last} fields where HL7 v2 defines {defined}: the segments after it"
                " seem to run into it (were the carriage returns that end segments removed?"
                " `curl -d` removes them, `curl --data-binary` keeps them)",
            )

    def _delimiters(self, segment: bytes, name: str) -> None:
        sep = segment[3:4]
        if not sep or sep.isalnum() or sep in (b" ", b"\t"):
            self._error(name, 1, "is not a valid field separator", code="invalid")
            return
        self._field_sep = sep
        end = segment.find(sep, 4)
        delimiters = _delimiters(sep, segment[4:end] if end >= 0 else segment[4:])
        chars, verdict = delimiters.chars, delimiters.verdict
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
            self._filler = delimiters.filler
            self._sn_value = delimiters.sn_value
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
        if count and not (count.isascii() and count.isdigit()):
            self._batch_error(name, f"is not a count of {what.split(',')[0]}", 1)
        # Not int() first: it refuses (ValueError) more than 4,300 digits.
        elif count and (len(count) > 18 or int(count) != found):
            declared = int(count) if len(count) <= 18 else f"a {len(count)}-digit number of"
            self._batch_error(name, f"declares {declared} {what} {found}", 1)

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
        checks = _checks(name)
        sep = segment[3:4]
        if sep and (sep in BODY_IDS or len(BODY_IDS) < SEPARATORS_KEPT):
            BODY_IDS.setdefault(sep, {})[seg_id + sep] = checks
        if checks.required:
            self._fields(segment, checks)

    def _fields(self, segment: bytes, checks: Checks) -> None:
        """The required fields of a body segment, and the value of an NM or SN ``OBX``."""
        name, required = checks.name, checks.required
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
        if self._held is not None:
            held, self._held = self._held, None
            found = self._plain(held)
            if found is not None:
                return found
            self._read(held)
        if self._first_chunk and self._partial:
            self._first_chunk = False
            data = bytes(self._partial).removeprefix(BOM)
            self._partial = bytearray(data)
        if self._partial:
            segment = bytes(self._partial)
            self._partial.clear()
            self._segments([segment])  # the last segment, unended: the short way too
        if not self._started:
            problem = self._opening.problem
            why = "" if problem is None else f" (the body is not UTF-8: {problem})"
            self.findings.add(
                "fatal", "structure", f"not HL7 v2: no MSH (or FHS/BHS) segment found{why}"
            )
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
        field_sep, encoding = self._first_delimiters
        first = dict(self._first or NO_MSH)
        return body_metadata(first, field_sep, encoding, self._messages, self._types, self._batch)


def _split_lines(chunk: bytes) -> list[bytes]:
    """``chunk`` split at every CR and at every LF, in C: where both occur, every LF is
    first made a CR (a copy, for splitting only), as a regex split is several times slower."""
    if b"\n" not in chunk:
        return chunk.split(b"\r")
    if b"\r" not in chunk:
        return chunk.split(b"\n")
    return chunk.replace(b"\n", b"\r").split(b"\r")


class Delimiters(NamedTuple):
    """What a header's MSH-2 (or FHS-2, BHS-2) means for the segments after it."""

    chars: str  # as text
    verdict: str  # ``ok``, ``unusual`` or ``invalid``
    filler: bytes | str  # what a required field may hold and still be empty
    sn_value: re.Pattern[bytes] | None  # an OBX-5 found valid at once when OBX-2 is SN


@functools.lru_cache(maxsize=64)
def _delimiters(sep: bytes, encoding: bytes) -> Delimiters:
    """The ``Delimiters`` of a field separator and MSH-2; senders use few: cached."""
    chars, verdict = _encoding_verdict(sep, encoding)
    if len(chars) < 2:
        return Delimiters(chars, verdict, b"", None)  # not used: too few to split with
    return Delimiters(chars, verdict, _filler(chars[0] + chars[1]), _sn_value(chars[0], chars[1]))


def _sn_value(component: str, repetition: str) -> re.Pattern[bytes] | None:
    """One structured numeric value, ``[comparator]^[number][^[separator][^[number]]]``,
    in plain ASCII; None where a component or repetition character could be read as part of
    a comparator, number or separator (such a value is then checked the long way)."""
    if component == repetition or repetition in SN_CHARS:
        return None
    return sn_pattern(component)


def _encoding_verdict(sep: bytes, encoding: bytes) -> tuple[str, str]:
    """MSH-2 as text, and ``ok``, ``unusual`` or ``invalid``.

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
