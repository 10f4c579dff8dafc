"""One plain HL7 v2 message held whole, read the short way.

Most bodies are one message (an MLLP frame, an HTTP body) in ASCII, with the standard
delimiters and nothing wrong with it. ``metadata`` reads such a message in one pass over its
segments, without the streaming validator's machinery (measured on the corpus sample the
MLLP benchmark sends: about half the time), and returns what the validator's ``finish`` would.
It returns None as soon as the message is not plain (other delimiters, a byte outside ASCII,
segments ended by a mix of CR, LF and CRLF, a blank line, a byte order mark, a second MSH, a
batch segment) or something in it could
be a finding (an empty required field, an HD field without namespace or universal ID, a field
past MSH-28, a segment ID that is not one, an OBX value that is not a plain number, a version
other than the one declared): the validator then reads the message as always, and reports
what it finds where it finds it.
"""

from __future__ import annotations

from typing import Any

from mm_bronze.formats.base import Findings
from mm_bronze.formats.hl7v2.fields import (
    HD_FIELDS,
    HEADER_FIELDS,
    LAST_FIELD,
    NUMBER_BYTES,
    REQUIRED,
    SEGMENT_ID,
    SN_VALUE,
    body_metadata,
    first_msh,
    type_key,
)

# The header's ID and the standard field separator, then the standard encoding characters,
# with or without the truncation character of v2.7 and later.
START = b"MSH|^~\\&"
ENCODINGS = {b"|": "^~\\&", b"#": "^~\\&#"}
_NOT_BODY = frozenset((b"MSH", b"FHS", b"BHS", b"BTS", b"FTS"))
_MSH_HD = tuple(n - 1 for n in HD_FIELDS["MSH"])
_MSH_REQUIRED = tuple(n - 1 for n in REQUIRED["MSH"])
# Body segment IDs (with the separator after them) found valid: their required fields, and
# whether they are an OBX (its value is looked at). At most 26 * 36 * 36 IDs.
_BODY: dict[bytes, tuple[tuple[int, ...], bool]] = {}


def metadata(message: bytes, version: str | None, level: str) -> dict[str, Any] | None:
    """The validator's metadata of ``message`` (the route declaring ``version``, read at
    ``level``), or None when the validator must read it itself."""
    if not message.startswith(START) or not message.isascii():
        return None
    encoding = ENCODINGS.get(message[8:9])
    if encoding is None or (len(encoding) == 5 and message[9:10] != b"|"):
        return None
    end = _line_end(message)
    if end is None:
        return None
    segments = message.split(end)
    if not segments[-1]:
        segments.pop()  # the CR that ends the last segment
    for segment in segments[1:]:
        body = _BODY.get(segment[:4])
        if body is None:
            body = _body(segment)
            if body is None:
                return None
        required, observation = body
        if not required:
            continue
        fields = segment.split(b"|")
        count = len(fields)
        for n in required:
            if count <= n or not fields[n].strip(b"^~"):
                return None
        if observation and count > 5:
            value_type = fields[2]
            if value_type == b"NM":
                if NUMBER_BYTES.fullmatch(fields[5]) is None:
                    return None
            elif value_type == b"SN" and (SN_VALUE is None or not SN_VALUE.fullmatch(fields[5])):
                return None
    header = segments[0]
    msh = header.decode("ascii").split("|", HEADER_FIELDS)
    if len(msh) < HEADER_FIELDS:
        msh += [""] * (HEADER_FIELDS - len(msh))
    elif len(msh) > HEADER_FIELDS and header.rstrip(b"|").count(b"|") >= LAST_FIELD["MSH"]:
        return None  # a field past MSH-28: the segments after it may have run into it
    for n in _MSH_HD:
        value = msh[n]
        if value[:1] == "^" and value[1:2] in ("", "^"):
            return None
    for n in _MSH_REQUIRED:
        if not msh[n].strip("^"):
            return None
    first = first_msh(msh, "^")
    if version and first["hl7_version"] and version != first["hl7_version"]:
        return None  # the validator notes the difference
    kind = type_key(msh[8], "^")
    found = body_metadata(first, "|", encoding, 1, {kind: 1} if kind else {}, False)
    return Findings(level).record(found)


def _line_end(message: bytes) -> bytes | None:
    """What ends ``message``'s segments: CR, LF, or CRLF throughout; None for a mix."""
    if b"\n" not in message:
        return b"\r"
    if b"\r" not in message:
        return b"\n"
    crlf = message.count(b"\r\n")
    if crlf == message.count(b"\r") == message.count(b"\n"):
        return b"\r\n"
    return None


def _body(segment: bytes) -> tuple[tuple[int, ...], bool] | None:
    """What is checked in a body segment whose ID is new here; None when the segment is not
    a plain body segment (no valid ID and separator, a header or trailer, a blank line)."""
    seg_id = segment[:3]
    if (
        SEGMENT_ID.fullmatch(seg_id) is None
        or segment[3:4] not in (b"", b"|")
        or seg_id in _NOT_BODY
    ):
        return None
    name = seg_id.decode("ascii")
    body = (REQUIRED.get(name, ()), name == "OBX")
    if len(segment) > 3 and len(_BODY) < 26 * 36 * 36:
        _BODY[segment[:4]] = body
    return body
