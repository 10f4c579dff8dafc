"""Large FHIR JSON bodies read in bounded pieces: msgspec decodes, Python only splits.

A body too large to decode at once is cut, as it streams in, into pieces of at most
``PIECE_LIMIT`` bytes: each complete value that fits (a Bundle entry, an element) is found
and decoded by msgspec in C and checked as a tree; only the containers too large to be one
piece (the root, ``Bundle.entry``, a very large entry) are followed token by token, and a
string too large to be one piece (``Binary.data``) is read through in bounded slices. So
memory stays bounded by the piece size and time is linear in the body, whatever its shape.
The entries of the root Bundle are first offered, as bytes, to the compiled fast path,
the consecutive ones of a chunk together (``JsonWalker.fast_entries``); only what it does not
accept is decoded and walked, in its place.
"""

from __future__ import annotations

import re

import msgspec

from mm_bronze.formats.base import Findings
from mm_bronze.formats.fhir.json_events import JsonWalker
from mm_bronze.formats.fhir.long_string import LongString
from mm_bronze.formats.fhir.structure import MAX_DEPTH, too_deep

PIECE_LIMIT = 64 * 1024
# Consecutive entries of the root Bundle are offered to the fast path together, up to this
# many and this size (or to the end of the chunk at hand, or to the next thing that is not
# such an entry): their decoded Structs are held at once.
ENTRIES_COUNT = 64
ENTRIES_LIMIT = 16 * PIECE_LIMIT
# Property names and numbers are tokens, never cut: longer ones are refused.
TOKEN_LIMIT = 64 * 1024

_BLANK = re.compile(rb"[ \t\r\n]*")
_KEY = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")
_AT_BYTE = re.compile(r"^(?:JSON is malformed: )?(.*?) \(byte (\d+)\)$")

# What the splitter expects next.
VALUE, MEMBER_OR_END, MEMBER, COLON, ITEM_OR_END, AFTER = range(6)
_RAW = msgspec.json.Decoder(msgspec.Raw)
_ANY = msgspec.json.Decoder()


class JsonSplitter:
    """Feeds one JSON document, chunk by chunk, to a ``JsonWalker`` as pieces and tokens.

    Raises ``InvalidPayload`` (through ``findings``) for malformed JSON, located by line
    and column as for a body decoded at once.
    """

    def __init__(self, walker: JsonWalker, findings: Findings) -> None:
        self.walker = walker
        self.findings = findings
        self.buf = b""
        self.pos = 0
        self.lines = 0  # line breaks before buf[0]
        self.column = 0  # bytes between the last of them and buf[0]
        self.open: list[bool] = []  # the containers being followed: True for an object
        self.state = VALUE
        self.wait_for = 0  # a pending piece is retried once this many bytes are there
        self.string: LongString | None = None
        self.root_seen = False
        self.entries: list[tuple[bytes, int]] = []  # pending entries and their positions
        self.entries_size = 0

    def feed(self, chunk: bytes) -> None:
        pos = self.pos
        if pos:
            self._count_lines(pos)
            self.buf = self.buf[pos:] + chunk
            self.pos = 0
        else:
            self.buf += chunk
        self._run(final=False)

    def _count_lines(self, end: int) -> None:
        breaks = self.buf.count(b"\n", 0, end)
        if breaks:
            self.lines += breaks
            self.column = end - self.buf.rfind(b"\n", 0, end) - 1
        else:
            self.column += end

    def finish(self) -> None:
        self._run(final=True)
        if self.string is not None or self.open or not self.root_seen:
            self._malformed("Input data was truncated", len(self.buf))

    def _malformed(self, detail: str, at: int) -> None:
        self._flush_entries()  # what the entries before it hold is found first, as it was
        self.findings.add("fatal", "invalid", f"malformed JSON: {detail}", location=self._at(at))

    def _at(self, at: int) -> str:
        """Position ``at`` of the buffer as ``line L, column C`` in the body (from 1)."""
        at = min(at, len(self.buf))
        breaks = self.buf.count(b"\n", 0, at)
        if breaks:
            column = at - self.buf.rfind(b"\n", 0, at)
        else:
            column = self.column + at + 1
        return f"line {self.lines + breaks + 1}, column {column}"

    def _run(self, final: bool) -> None:
        buf = self.buf
        size = len(buf)
        pos = self.pos
        walker = self.walker
        while True:
            if self.string is not None:
                pos = self._long_string(pos, final)
                if self.string is not None:
                    break
                continue
            pos = _BLANK.match(buf, pos).end()  # type: ignore[union-attr]
            if pos >= size:
                break
            char = buf[pos]
            state = self.state
            if state == AFTER:
                if not self.open:
                    self._malformed("trailing characters", pos)
                is_object = self.open[-1]
                if char == 0x2C:  # ,
                    self.state = MEMBER if is_object else VALUE
                    pos += 1
                elif char == (0x7D if is_object else 0x5D):  # } or ]
                    self._close()
                    pos += 1
                else:
                    closing = "}" if is_object else "]"
                    self._malformed(f"expected ',' or '{closing}'", pos)
            elif state == MEMBER_OR_END or state == MEMBER:
                if char == 0x7D and state == MEMBER_OR_END:
                    self._close()
                    pos += 1
                elif char == 0x22:  # "
                    match = _KEY.match(buf, pos)
                    if match is None:
                        if final:
                            self._malformed("Input data was truncated", size)
                        if size - pos > TOKEN_LIMIT:
                            self._too_long("property name", pos)
                        break
                    try:
                        key = _ANY.decode(match.group())
                    except msgspec.DecodeError as exc:
                        self._decode_error(exc, pos)
                    walker.send(("map_key", key))
                    pos = match.end()
                    self.state = COLON
                else:
                    self._malformed("expected a property name", pos)
            elif state == COLON:
                if char != 0x3A:  # :
                    self._malformed("expected ':'", pos)
                pos += 1
                self.state = VALUE
            else:  # VALUE or ITEM_OR_END
                if char == 0x5D and state == ITEM_OR_END:
                    self._close()
                    pos += 1
                    continue
                end = self._value(buf, pos, final)
                if end is None:
                    break
                pos = end
        self._flush_entries()  # before the buffer moves on: their positions are in it
        self.pos = pos

    def _close(self) -> None:
        self._flush_entries()
        is_object = self.open.pop()
        self.walker.send(("end_map" if is_object else "end_array", None))
        self.state = AFTER

    def _value(self, buf: bytes, pos: int, final: bool) -> int | None:
        """Take the value at ``pos`` whole, or open it; the position after what was taken,
        or None to wait for more bytes."""
        size = len(buf)
        pending = size - pos
        if pending < self.wait_for and not final:
            return None
        view = memoryview(buf)[pos:]
        try:
            _RAW.decode(view)
            end = size
            # A number may go on in the next chunk, unless whitespace (all that follows it
            # here) ends it: waiting for that whitespace to end took quadratic time.
            if buf[pos] in b"-0123456789" and not final and buf[-1] not in b" \t\r\n":
                self.wait_for = pending + 1  # a number may go on in the next chunk
                return None
        except msgspec.DecodeError as exc:
            message = str(exc)
            trailing = _TRAILING.search(message)
            if trailing is None:
                if "truncated" not in message:
                    at = _AT_BYTE.match(message)
                    if not final and at is not None and int(at.group(2)) >= pending:
                        # An error at the very end: a token (a number) cut by the chunk.
                        self.wait_for = pending + 1
                        return None
                    self._decode_error(exc, pos)
                if final:
                    self._malformed("Input data was truncated", size)
                if pending <= PIECE_LIMIT:
                    self.wait_for = 2 * pending  # retry once twice as much is there
                    return None
                self.wait_for = 0
                return self._open(buf, pos)
            end = pos + int(trailing.group(1)) - 1
        except RecursionError:
            self._too_deep()
        self.wait_for = 0
        piece = buf[pos:end]
        self.state = AFTER
        if self.root_seen and self.walker.takes_entries():
            self.entries.append((piece, pos))
            self.entries_size += len(piece)
            if self.entries_size >= ENTRIES_LIMIT or len(self.entries) >= ENTRIES_COUNT:
                self._flush_entries()
            return end
        self._flush_entries()
        self._walk(piece, pos)
        return end

    def _walk(self, piece: bytes, pos: int) -> None:
        """Decode the value ``piece`` (at ``pos``) and walk it in its place."""
        try:
            value = _ANY.decode(piece)
        except msgspec.DecodeError as exc:
            self._decode_error(exc, pos)
        except RecursionError:
            self._too_deep()
        if not self.root_seen:
            self.root_seen = True
            self.walker.root(value, piece)
        else:
            self.walker.piece(value, piece)

    def _flush_entries(self) -> None:
        """Offer the pending entries to the fast path; walk, each in its place, those it
        does not take. Called before anything else reaches the walker, so that it sees
        every event in the body's order."""
        if not self.entries:
            return
        pending, self.entries, self.entries_size = self.entries, [], 0
        found = self.walker.fast_entries([piece for piece, _ in pending])
        for (piece, pos), facts in zip(pending, found, strict=True):
            if facts is not None:
                self.walker.take_entry(facts)
            else:
                self._walk(piece, pos)

    def _too_deep(self) -> None:
        self._flush_entries()
        too_deep(self.findings, "JSON", self.walker.where())

    def _open(self, buf: bytes, pos: int) -> int | None:
        """Follow a value too large to be one piece: a container's tokens, or a string;
        None to wait for the rest of a long number."""
        self._flush_entries()
        char = buf[pos]
        if char == 0x7B:  # {
            self.walker.send(("start_map", None))
            self.open.append(True)
            self.state = MEMBER_OR_END
        elif char == 0x5B:  # [
            self.walker.send(("start_array", None))
            self.open.append(False)
            self.state = ITEM_OR_END
        elif char == 0x22:  # "
            self.string = LongString()
        elif len(buf) - pos > TOKEN_LIMIT:
            self._too_long("number", pos)
        else:
            return None
        self.root_seen = True
        if len(self.open) > MAX_DEPTH:
            self._too_deep()
        return pos + 1

    def _long_string(self, pos: int, final: bool) -> int:
        """Read a long string's bytes from ``pos``; hand it to the walker when it ends."""
        string = self.string
        assert string is not None
        buf = self.buf
        try:
            end = string.read(buf, pos, final)
        except msgspec.DecodeError as exc:
            self._decode_error(exc, pos)
        except ValueError:
            self._malformed("Input data was truncated", len(buf))
        if end is None:
            return string.resume
        self.string = None
        self.walker.long_string(string)
        self.state = AFTER
        return end

    def _too_long(self, what: str, pos: int) -> None:
        self._flush_entries()
        self.findings.add(
            "fatal",
            "too-costly",
            f"a JSON {what} longer than {TOKEN_LIMIT} bytes",
            location=self._at(pos),
        )

    def _decode_error(self, exc: msgspec.DecodeError, pos: int) -> None:
        message = str(exc)
        if "UTF-8" in message:
            try:
                self.buf[pos:].decode("utf-8")
            except UnicodeDecodeError as error:
                pos += error.start
            self._malformed("not valid UTF-8", pos)
        found = _AT_BYTE.match(message)
        if found is None:
            self._malformed(message.removeprefix("JSON is malformed: "), pos)
        assert found is not None
        self._malformed(found.group(1), pos + int(found.group(2)))
