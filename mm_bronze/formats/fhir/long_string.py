"""A JSON string too long to hold (e.g. ``Binary.data``): read in slices, kept as a summary.

Each slice is decoded by msgspec (escapes, control characters, UTF-8) after a cut that
never splits an escape or a character; what the checks need is kept (length, whitespace,
whether it is base64, the first and last characters, what a ``code``, an ``oid`` or an
``integer64`` of any length must hold, a digest to compare it with others), the text itself
is dropped. ``problem`` checks a format on that summary and agrees with the check of the
whole string (``model.primitive_problem``).
"""

from __future__ import annotations

import hashlib
import re

import msgspec

from mm_bronze.formats.fhir.model import primitive_problem

_DECODE = msgspec.json.Decoder(str)
_SPACE = re.compile(r"\s")
_WHITESPACE = re.compile(r"\s+")
_BASE64 = re.compile(r"[0-9a-zA-Z+/]*(=*)")
PREFIX = 64
# Not in a code (``\S+( \S+)*``): whitespace other than a space, or two spaces in a row.
_ODD_SPACE = re.compile(r"[^\S ]|  ")
# Not in an oid past ``urn:oid:N`` (``(\.(0|[1-9][0-9]*))+``): anything but digits and dots,
# an empty arc, an arc with a leading zero.
_NOT_ARCS = re.compile(r"[^0-9.]|\.\.|\.0[0-9]")
_OID_START = re.compile(r"urn:oid:[0-2]\.")
_ARCS_FROM = 9  # where the arcs after ``urn:oid:N`` start: its first dot
_NOT_DIGIT = re.compile(r"[^0-9]")
_INTEGER_START = re.compile(r"-?[1-9][0-9]*")  # a long integer has no leading zero
CONTEXT = 2  # characters of the last slice that a check across the cut needs


class LongString:
    """The summary of one long JSON string, built slice by slice."""

    def __init__(self) -> None:
        self.length = 0
        self.prefix = ""
        self.blank = False  # holds whitespace
        self.base64 = True  # so far, base64 (whitespace aside)
        self.base64_length = 0
        self.padding = 0
        self.resume = 0  # where the next slice starts, when ``read`` waits for more
        self.tail = ""  # its last characters (``CONTEXT``)
        self.odd_space = False  # holds whitespace a code does not allow
        self.arcs = True  # so far, what an oid allows past ``urn:oid:N``
        self.digits = True  # so far, digits only (past a leading ``-``)
        self._digest = hashlib.sha256()

    def read(self, buf: bytes, pos: int, final: bool) -> int | None:
        """Take the string's bytes from ``pos`` (just after the opening quote, or where the
        last call stopped); the position after the closing quote, or None to wait for more
        bytes (``resume`` says from where). Raises ``msgspec.DecodeError`` for an invalid
        string and ``ValueError`` when the body ends inside it."""
        find = pos
        while (quote := buf.find(b'"', find)) != -1:
            start = quote
            while start > pos and buf[start - 1] == 0x5C:  # backslashes before the quote
                start -= 1
            if (quote - start) % 2 == 0:
                self._take(buf[pos:quote])
                return quote + 1
            find = quote + 1
        if final:
            raise ValueError("the body ends inside a string")
        cut = _safe_cut(buf, pos, len(buf))
        self._take(buf[pos:cut])
        self.resume = cut
        return None

    def _take(self, raw: bytes) -> None:
        if not raw:
            return
        text = _DECODE.decode(b'"' + raw + b'"')
        before, tail = self.length, self.tail
        self.length += len(text)
        if len(self.prefix) < PREFIX:
            self.prefix += text[: PREFIX - len(self.prefix)]
        self._digest.update(text.encode("utf-8", "surrogatepass"))
        blank = _SPACE.search(text) is not None
        self.blank = self.blank or blank
        joined = tail + text  # what crosses the cut is checked too
        self.tail = joined[-CONTEXT:]
        if blank and not self.odd_space:  # (a slice with no whitespace adds none)
            self.odd_space = _ODD_SPACE.search(joined) is not None
        if self.arcs:
            arcs = max(0, _ARCS_FROM - (before - len(tail)))
            self.arcs = _NOT_ARCS.search(joined, arcs) is None
        if self.digits:
            sign = 1 if before == 0 and text.startswith("-") else 0
            self.digits = _NOT_DIGIT.search(text, sign) is None
        if self.base64:
            compact = _WHITESPACE.sub("", text) if blank else text
            match = _BASE64.fullmatch(compact)
            if match is None or (self.padding and compact):
                self.base64 = False
            else:
                self.padding += len(match.group(1))
                self.base64_length += len(compact)

    def key(self) -> str:
        """Stands for the string where it is compared with others (a Bundle's fullUrls): equal
        for equal strings, and unlike any string short enough to be held."""
        return f"\x00{self.length}:{self._digest.hexdigest()}"

    def problem(self, type_name: str) -> str | None:
        """Why the string is not a valid ``type_name`` (``model.primitive_problem``'s
        phrase), or None if it is."""
        if type_name == "base64Binary":
            return None if self.is_base64() else "is not valid base64"
        if type_name in ("uri", "url", "canonical"):  # ``\S*``
            return f"is not a valid {type_name}" if self.blank else None
        if type_name == "code":
            ends = self.prefix[0] + self.tail[-1]
            fits = not self.odd_space and _SPACE.search(ends) is None
        elif type_name == "oid":
            fits = self.arcs and bool(_OID_START.match(self.prefix)) and self.tail[-1] != "."
        elif type_name == "integer64":
            fits = self.digits and bool(_INTEGER_START.fullmatch(self.prefix))
        else:  # the other patterns bound the length: the first characters and a line end
            # fail them as the whole string does (or the string is no JSON number, boolean)
            return primitive_problem(type_name, self.prefix + "\n", from_json=True)
        return None if fits else f"is not a valid {type_name}"

    def is_base64(self) -> bool:
        return (
            self.base64
            and self.padding <= 2
            and self.base64_length > 0
            and self.base64_length % 4 == 0
        )


def _safe_cut(buf: bytes, start: int, end: int) -> int:
    """The last position at most ``end`` that splits neither an escape nor a UTF-8 character."""
    cut = end
    backslash = buf.rfind(b"\\", max(start, cut - 6), cut)
    if backslash != -1:
        run = backslash
        while run > start and buf[run - 1] == 0x5C:
            run -= 1
        if (backslash - run) % 2 == 0:  # it starts an escape: \x or \uXXXX
            unicode = backslash + 1 < end and buf[backslash + 1] == 0x75
            if backslash + (6 if unicode else 2) > cut:
                cut = backslash
    high = cut - 6  # a high surrogate (\uD800 to \uDBFF) decodes only with the low one after it
    if high >= start and buf[high : high + 2] == b"\\u" and buf[high + 2] in b"dD":
        if buf[high + 3] in b"89abAB":
            run = high
            while run > start and buf[run - 1] == 0x5C:
                run -= 1
            if (high - run) % 2 == 0:  # it starts an escape
                cut = high
    for back in range(1, 4):
        if cut - back < start:
            break
        byte = buf[cut - back]
        if byte < 0x80:
            break
        if byte >= 0xC0:  # the lead byte of a character: is it complete?
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if needed > back:
                cut -= back
            break
    return cut
