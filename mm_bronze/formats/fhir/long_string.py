"""A JSON string too long to hold (e.g. ``Binary.data``): read in slices, kept as a summary.

Each slice is decoded by msgspec (escapes, control characters, UTF-8) after a cut that
never splits an escape or a character; what the checks need is kept (length, whitespace,
whether it is base64, the first characters), the text itself is dropped.
"""

from __future__ import annotations

import re

import msgspec

_DECODE = msgspec.json.Decoder(str)
_SPACE = re.compile(r"\s")
_WHITESPACE = re.compile(r"\s+")
_BASE64 = re.compile(r"[0-9a-zA-Z+/]*(=*)")
PREFIX = 64


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
        self.length += len(text)
        if len(self.prefix) < PREFIX:
            self.prefix += text[: PREFIX - len(self.prefix)]
        blank = _SPACE.search(text) is not None
        self.blank = self.blank or blank
        if self.base64:
            compact = _WHITESPACE.sub("", text) if blank else text
            match = _BASE64.fullmatch(compact)
            if match is None or (self.padding and compact):
                self.base64 = False
            else:
                self.padding += len(match.group(1))
                self.base64_length += len(compact)

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
