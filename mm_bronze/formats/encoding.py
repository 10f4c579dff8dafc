"""The first bytes of a text body, which tell UTF-16 and UTF-32 from the UTF-8 every format
here is sent in (a UTF-16 file is what some Windows tools write by default), and the names
a declaration may give UTF-8."""

from __future__ import annotations

# Bytes at the start of a body that tell.
OPENING = 4
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")


def names_utf8(encoding: str) -> bool:
    """An XML declaration's encoding name is UTF-8 (as Python's codecs spell it, too)."""
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def wide_encoding(opening: bytes) -> str | None:
    """Why text whose first bytes are ``opening`` is not UTF-8, when they say so: a UTF-16 or
    UTF-32 byte order mark, or a NUL among them (the formats here have none; UTF-16 and
    UTF-32 have one beside every ASCII character). None when they do not say (yet)."""
    if opening.startswith(_UTF32_BOMS):
        return "found a UTF-32 byte order mark"
    if len(opening) < OPENING and any(bom.startswith(opening) for bom in _UTF32_BOMS):
        return None  # the start of a UTF-32 BOM, maybe: more bytes tell
    if opening.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "found a UTF-16 byte order mark"
    if b"\x00" in opening[:OPENING]:
        return "it starts like UTF-16 or UTF-32: NUL bytes between its first characters"
    return None


class Opening:
    """A body's first ``OPENING`` bytes, taken as its chunks arrive, and what they tell."""

    def __init__(self) -> None:
        self.head = b""
        self.settled = False  # the first bytes have told (a problem, or OPENING of them)
        self.problem: str | None = None  # ``wide_encoding`` of the bytes taken so far

    def take(self, chunk: bytes) -> str | None:
        """Take the start of ``chunk`` while unsettled: the problem the first bytes tell the
        moment they tell one, else None."""
        if self.settled:
            return None
        self.head += chunk[: OPENING - len(self.head)]
        self.problem = wide_encoding(self.head)
        self.settled = self.problem is not None or len(self.head) >= OPENING
        return self.problem
