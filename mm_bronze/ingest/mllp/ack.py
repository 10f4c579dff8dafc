"""HL7 v2 acknowledgements: the ``ACK`` the MLLP door returns for each message.

Original mode (MSH-15 and MSH-16 empty): ``AA`` accepted, ``AE`` error (retry later),
``AR`` rejected. Enhanced mode (either valued): the commit acknowledgement ``CA``/``CE``/``CR``,
sent only when MSH-15 (accept acknowledgment type) asks for it: ``AL`` always (also when
empty), ``NE`` never, ``ER`` on error or reject only, ``SU`` on success only.
The ACK's MSH swaps sender and receiver, MSA-2 echoes the control id, and an ``ERR``
segment locates the problem (ERR-2/3/4/7 from v2.5 on, ERR-1 before).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import re
import uuid

from mm_bronze.ingest.mllp.header import CACHED_BYTES, Hl7Header

MSA_TEXT_LIMIT = 80  # MSA-3 is an ST of 80 characters


class Outcome(enum.Enum):
    ACCEPTED = ("AA", "CA")
    ERROR = ("AE", "CE")  # could not be accepted now; the sender should resend
    REJECTED = ("AR", "CR")  # will never be accepted as sent

    def code(self, enhanced: bool) -> str:
        return self.value[1] if enhanced else self.value[0]


class ErrorCode(enum.Enum):
    """HL7 table 0357 (message error condition codes) entries the door uses."""

    SEGMENT_SEQUENCE = ("100", "Segment sequence error")
    REQUIRED_FIELD_MISSING = ("101", "Required field missing")
    DATA_TYPE = ("102", "Data type error")
    UNSUPPORTED_MESSAGE_TYPE = ("200", "Unsupported message type")
    UNSUPPORTED_VERSION = ("203", "Unsupported version id")
    INTERNAL = ("207", "Application internal error")


class AckError:
    """What went wrong, for the ERR segment: a reason and, when known, where."""

    def __init__(
        self,
        reason: str,
        *,
        segment: str | None = None,
        sequence: int = 1,
        field: int | None = None,
        code: ErrorCode | None = None,
    ) -> None:
        self.reason = reason
        self.segment = segment
        self.sequence = sequence
        self.field = field
        self.code = code or classify(reason)


_LOCATION = re.compile(r"\b([A-Z][A-Z0-9]{2})[-.](\d{1,3})\b")
# Words a reason may hold that read like a segment and field: character sets (``UTF-8``,
# ``UTF-16``, ``ISO-8859-1``).
_NOT_FIELDS = frozenset({"UTF", "ISO"})
_SEGMENT = re.compile(r"[A-Z][A-Z0-9]{2}")
_POSITION = re.compile(r"(?:message (\d+), )?segment (\d+)")


def locate(reason: str, location: str | None = None) -> tuple[str | None, int | None]:
    """The segment id and field number named in ``location`` or ``reason`` (e.g. ``PID-3``)."""
    for text in (location or "", reason):
        for match in _LOCATION.finditer(text):
            if match.group(1) not in _NOT_FIELDS:
                return match.group(1), int(match.group(2))
    if location and _SEGMENT.fullmatch(location):  # a segment at fault as a whole (``MSH``)
        return location, None
    for text in (location or "", reason):
        named = re.search(r"\b(MSH|FHS|BHS|[A-Z][A-Z0-9]{2})\b segment", text)
        if named:
            return named.group(1), None
    return None, None


def segment_sequence(message: bytes, position: str | None, segment: str) -> int:
    """Which occurrence of ``segment`` the position ``[message M, ]segment S`` points at.

    ``S`` counts non-blank segments (within message ``M``, the M-th MSH, when given);
    the answer is 1 when the position cannot be read.
    """
    match = _POSITION.search(position or "")
    if match is None:
        return 1
    want_message = int(match.group(1)) if match.group(1) else None
    want_segment = int(match.group(2))
    name = segment.encode()
    messages = seen = occurrences = 0
    for line in re.split(rb"[\r\n]+", message.removeprefix(b"\xef\xbb\xbf")):
        if not line.strip():
            continue
        if want_message is not None:
            if line.startswith(b"MSH"):
                messages += 1
                seen = 0
            if messages != want_message:
                continue
        seen += 1
        occurrences += line[:3] == name
        if seen == want_segment:
            return max(occurrences, 1)
    return 1


# Reasons of the HL7 v2 validator that say a segment is out of place or not a segment.
_OUT_OF_PLACE = (
    "must start with",
    "before the first",
    "no msh",
    "appears inside a message",
    "appears outside a message",
    "repeats: a file has one file header",
    "must be the first segment",
    "starts a batch before",
    "does not start with a segment id",
    "seem to run into it",
)


def classify(reason: str) -> ErrorCode:
    text = reason.lower()
    if any(word in text for word in ("missing", "empty", "required")):
        return ErrorCode.REQUIRED_FIELD_MISSING
    if any(words in text for words in _OUT_OF_PLACE):
        return ErrorCode.SEGMENT_SEQUENCE
    if "version" in text:
        return ErrorCode.UNSUPPORTED_VERSION
    if "message type" in text:
        return ErrorCode.UNSUPPORTED_MESSAGE_TYPE
    return ErrorCode.DATA_TYPE


def is_enhanced(header: Hl7Header) -> bool:
    return bool(header.accept_ack_type or header.application_ack_type)


def wanted(header: Hl7Header, outcome: Outcome) -> bool:
    """Whether the sender asked for an acknowledgement of ``outcome`` (MSH-15)."""
    if header.problem is not None or not is_enhanced(header):
        return True
    mode = header.accept_ack_type or "AL"
    if mode == "NE":
        return False
    if mode == "ER":
        return outcome is not Outcome.ACCEPTED
    if mode == "SU":
        return outcome is Outcome.ACCEPTED
    return True


# Bytes never echoed from the sender's header into an ACK: MLLP's start and end blocks and
# segment breaks would break the sender's framing or the ACK's segments.
UNSAFE = b"\x0b\x1c\r\n"
DEFAULT_SEPARATOR, DEFAULT_ENCODING = b"|", b"^~\\&"


def _safe(value: bytes) -> bytes:
    return value.translate(None, UNSAFE)


def build_ack(
    header: Hl7Header,
    outcome: Outcome,
    error: AckError | None = None,
    *,
    now: dt.datetime,
    control_id: bytes | None = None,
) -> bytes:
    """The ACK message (without MLLP framing), in the sender's delimiters, segments ending CR.

    ``control_id`` is the ACK's own MSH-10 (at most 20 characters); a random one when None.
    Fields echoed from the sender's header lose any framing or segment-break byte; delimiters
    that are such bytes are replaced by the standard ones.
    """
    stamp = _stamp(now)
    ack_id = control_id or uuid.uuid4().hex[:20].upper().encode()
    msh = header.msh
    if error is not None or header.problem is not None or not msh:
        return _build(header, outcome, error, stamp, ack_id)
    # The common case (an MSH, no ERR): all but the time, the ACK's control id and the echoed
    # one depends on header fields that repeat from message to message of a sender; the
    # rest comes from a cache.
    fields: tuple[bytes, ...]
    if len(msh) > 18:
        fields = (msh[9], msh[11], msh[12], msh[15], msh[16], msh[18])
    else:
        fields = tuple(header.msh_field(n) for n in ACK_FIELDS)
    origin = tuple(msh[3:7])
    if sum(map(len, origin)) + sum(map(len, fields)) > CACHED_BYTES:
        return _build(header, outcome, error, stamp, ack_id)  # not worth holding in the cache
    head, middle, tail = _ack_parts(
        header.field_separator, header.encoding, origin, fields, outcome
    )
    return b"".join([head, stamp, middle, ack_id, tail, _safe(header.control_id), b"\r"])


ACK_FIELDS = (9, 11, 12, 15, 16, 18)  # the MSH fields an ACK without ERR depends on, and 3-6
# Marks for the time and the control id in a cached ACK: no echoed field can hold them (CR
# and VT are removed from every echoed field), so each is found exactly once.
_STAMP_MARK, _ID_MARK = b"\r\x0bT\r", b"\r\x0bI\r"


@functools.lru_cache(maxsize=256)
def _ack_parts(
    separator: bytes,
    encoding: bytes,
    origin: tuple[bytes, ...],
    fields: tuple[bytes, ...],
    outcome: Outcome,
) -> tuple[bytes, bytes, bytes]:
    """An ACK without ERR, cut around its time and control id, and before the control id
    it echoes: for a header of ``origin`` (MSH-3..6) and ``fields`` (``ACK_FIELDS``)."""
    msh = [b"MSH", separator, encoding, *origin]
    msh += [b""] * (19 - len(msh))
    for n, value in zip(ACK_FIELDS, fields, strict=True):
        msh[n] = value
    msh[10] = b""  # the echoed control id, appended at the very end
    ack = _build(Hl7Header(separator, encoding, msh), outcome, None, _STAMP_MARK, _ID_MARK)
    head, _, rest = ack.partition(_STAMP_MARK)
    middle, _, rest = rest.partition(_ID_MARK)
    return head, middle, rest[:-1]  # ``rest`` ends with the (empty) echoed id and CR


def _stamp(now: dt.datetime) -> bytes:
    return b"%04d%02d%02d%02d%02d%02d+0000" % (
        now.year,
        now.month,
        now.day,
        now.hour,
        now.minute,
        now.second,
    )


def _build(
    header: Hl7Header, outcome: Outcome, error: AckError | None, stamp: bytes, ack_id: bytes
) -> bytes:
    delimiters = header.field_separator + header.encoding
    # The sender's fields were split at its own field separator. When the ACK cannot use the
    # sender's delimiters (unusable, or bytes that would break the framing), they may hold
    # the ACK's: its field separator is then escaped in each echoed value (``_escaped``).
    unsafe = _safe(delimiters) != delimiters
    foreign = header.problem is not None or unsafe
    if unsafe:
        header = dataclasses.replace(
            header, field_separator=DEFAULT_SEPARATOR, encoding=DEFAULT_ENCODING
        )
    sep = header.field_separator
    enc = header.encoding
    echo = functools.partial(_escaped, separator=sep, encoding=enc) if foreign else _safe
    component = enc[:1]
    enhanced = header.problem is None and is_enhanced(header)
    trigger = echo(header.trigger_event)
    message_type = b"ACK" + (component + trigger + component + b"ACK" if trigger else b"")
    version = header.version or b"2.5.1"
    # Sender and receiver come from MSH; a batch without messages has only FHS/BHS.
    origin = header.msh or header.batch
    echoed = origin[3:7] + [b""] * (7 - max(len(origin), 3))  # MSH-3..6, padded
    swapped = sep.join(map(echo, [echoed[2], echoed[3], echoed[0], echoed[1]]))
    msh = sep.join(
        [
            b"MSH",
            enc,
            swapped,
            stamp,
            b"",
            _safe(message_type),
            ack_id,
            echo(header.processing_id) or b"P",
            echo(version),
        ]
    )
    if header.charset:
        msh += sep * 6 + echo(header.charset)
    msa = sep.join([b"MSA", outcome.code(enhanced).encode(), echo(header.control_id)])
    if error is None:
        return msh + b"\r" + msa + b"\r"
    msa += sep + escape(error.reason[:MSA_TEXT_LIMIT], header)
    subcomponent = enc[3:4]
    return b"\r".join([msh, msa, _err(header, error, version, component, subcomponent), b""])


def _escaped(value: bytes, *, separator: bytes, encoding: bytes) -> bytes:
    """``value`` without unsafe bytes, the ACK's field separator as its escape sequence
    (``\\F\\``): the ACK's fields stay in their places. Component and other delimiters are
    left as they are: they do not move fields, and a sender whose encoding characters are
    unusable most often meant them as the usual ones."""
    escape_char = encoding[2:3] or DEFAULT_ENCODING[2:3]
    return _safe(value).replace(separator, escape_char + b"F" + escape_char)


def _err(
    header: Hl7Header, error: AckError, version: bytes, component: bytes, subcomponent: bytes
) -> bytes:
    sep = header.field_separator
    code, text = (part.encode() for part in error.code.value)
    where = [error.segment.encode() if error.segment else b""]
    if error.segment:
        where += [str(error.sequence).encode(), str(error.field).encode() if error.field else b""]
    if _version_tuple(version) >= (2, 5):
        location = component.join(where).rstrip(component)
        condition = component.join([code, text, b"HL70357"])
        diagnostic = escape(error.reason, header)
        return sep.join([b"ERR", b"", location, condition, b"E", b"", b"", diagnostic])
    # Before v2.5: ERR-1 is an ELD, segment^sequence^field^code (a CE in subcomponents).
    where += [b""] * (3 - len(where))
    eld = component.join([*where, subcomponent.join([code, text, b"HL70357"])])
    return sep.join([b"ERR", eld])


def escape(text: str, header: Hl7Header) -> bytes:
    """``text`` with delimiters replaced by HL7 escape sequences and line breaks removed."""
    enc = header.encoding.decode("latin-1")
    sep = header.field_separator.decode("latin-1")
    esc = enc[2]
    replacements = {
        esc: f"{esc}E{esc}",
        sep: f"{esc}F{esc}",
        enc[0]: f"{esc}S{esc}",
        enc[3]: f"{esc}T{esc}",
        enc[1]: f"{esc}R{esc}",
    }
    out = "".join(replacements.get(ch, ch) for ch in " ".join(text.split()))
    return out.encode("utf-8", "replace")


def _version_tuple(version: bytes) -> tuple[int, ...]:
    numbers = re.findall(rb"\d+", version)[:3]
    return tuple(int(n) for n in numbers) or (2, 5)
