"""Decides, at C speed, that a FHIR JSON payload is valid, or leaves it to the walker.

``decide(data, version)`` decodes the payload into the generated Structs of its version
(unknown elements, cardinality, required elements, ``[x]`` choices, primitive formats are all
checked while msgspec decodes), then makes the checks msgspec cannot: no JSON object repeats a
key, and the Bundle rules of the walker. It returns the metadata the walker's ``Summary``
would produce, or None: None never means "invalid", only "let the walker decide" (the walker
explains every rejection and has the final word). The fast path never accepts a payload the
walker rejects; it may send the walker a payload the walker then accepts (a number such as
``1.0`` for an integer, a required primitive given only by its ``_element``, a ``_element`` on
a ``[x]`` choice, a code with a character that is neither printable nor a space).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from types import FrameType, ModuleType
from typing import Any, TypeVar

import msgspec

from mm_bronze.formats import byte_count
from mm_bronze.formats.built_once import built_once
from mm_bronze.formats.fhir.fast import formats
from mm_bronze.formats.fhir.fast.primitives import FormatError
from mm_bronze.formats.fhir.model import BUNDLE_TYPES
from mm_bronze.formats.fhir.structure import (
    MAX_DEPTH,
    REPEATING_BUNDLES,
    REQUEST_BUNDLES,
    RESPONSE_BUNDLES,
)

UNSET = msgspec.UNSET
T = TypeVar("T")
# Recursion levels the descent of ``within_depth`` spends itself on CPython 3.11 (measured:
# with these, msgspec decodes arrays nested MAX_DEPTH deep and refuses one more). Levels
# spent above the caller without a Python frame only leave msgspec fewer: more refusals, never
# fewer; ``test_nesting_bound_is_the_walkers`` checks the boundary.
DESCENT_LEVELS = 3
# A payload this small has its brackets counted before deciding how to bound its nesting
# (the size of a streamed piece: ``json_stream.PIECE_LIMIT``).
SMALL = 64 * 1024
_ERRORS = (msgspec.DecodeError, RecursionError, UnicodeDecodeError, ValueError)


class Types:
    """The generated Structs of one FHIR version (its lean types if ``lean``) and a decoder
    for any of its resources."""

    def __init__(self, version: str, lean: bool = False) -> None:
        name = f"{version.lower()}_lean" if lean else version.lower()
        self.module: ModuleType = importlib.import_module(f"mm_bronze.formats.fhir.fast.{name}")
        self.decoder = msgspec.json.Decoder(self.module.AnyResource)
        self.entry_decoder = msgspec.json.Decoder(self.module.BundleEntry)
        self.bundle = self.module.Bundle
        self.bundle_types = BUNDLE_TYPES[version]
        union = self.module.AnyResource.__args__
        self.tags: dict[type, str] = {cls: cls.__struct_config__.tag for cls in union}


@built_once
def types(version: str) -> Types:
    """The types of a canonical version (built on first use: about half a second)."""
    return Types(version)


@built_once
def lean_types(version: str) -> Types:
    """The lean types of a canonical version (built on first use: a third of a second).

    They leave out the elements bulk data seldom holds (``_name`` siblings, element ids,
    ``modifierExtension``, ...: ``tools/generate_fhir_structs.py``). A payload that holds none
    decodes to them as to ``types``, with the same checks, to the same values (what they leave
    out stays unset), in less time; one that holds any does not decode."""
    return Types(version, lean=True)


class LeanFirst:
    """Whether to decode to the lean types first, and then to the full ones if need be.

    Yes until a payload decodes to the full types but not to the lean ones (it holds what
    they leave out; a payload that decodes to neither changes nothing). Then no: for
    good if ``pause`` is None (the blocks of one NDJSON file: a file that holds such elements
    most likely holds them throughout, so one block at most is decoded twice), else for the
    next ``pause`` payloads (single payloads, whose senders may differ), after which the lean
    types are tried again: a sender whose payloads all hold such elements has one in
    ``pause`` of them decoded twice."""

    def __init__(self, pause: int | None = None) -> None:
        self.on = True
        self._pause = pause
        self._skipped = 0

    def first(self) -> bool:
        """Whether the lean types go first for the next payload."""
        if not self.on and self._pause is not None:
            self._skipped += 1
            if self._skipped > self._pause:
                self.on = True
                return True
        return self.on

    def missed(self) -> None:
        """A payload decoded to the full types only."""
        self.on = False
        self._skipped = 0


# Single payloads (``decide``): pausing for this many after a miss costs a sender whose
# payloads all hold what the lean types leave out about 1 % more time to decode. Threads
# share it: an update lost in a race only changes which types go first for a payload.
PAUSE = 50
_payloads = LeanFirst(pause=PAUSE)

# What an attempt of ``_lean_then_full`` returns when the payload does not decode to its types.
_UNDECODED: Any = object()


def _lean_then_full(
    first: LeanFirst | None, version: str, attempt: Callable[[Types], Any]
) -> tuple[Types, Any] | None:
    """``attempt`` with the lean types of ``version`` when ``first`` says so (always if it is
    None), and with the full types if the lean ones did not decode the payload (``attempt``
    returns ``_UNDECODED``): the types that did and what ``attempt`` returned, or None if
    neither did. ``first`` learns when only the full types decoded it. Each set of types is
    looked up (and built, on first use) only when it is tried: a process whose payloads all
    decode to the lean types never builds the full ones."""
    lean_tried = first is None or first.first()
    if lean_tried:
        lean = lean_types(version)
        found = attempt(lean)
        if found is not _UNDECODED:
            return lean, found
    full = types(version)
    found = attempt(full)
    if found is _UNDECODED:
        return None
    if lean_tried and first is not None:
        first.missed()
    return full, found


_encoder = msgspec.json.Encoder()
_local = threading.local()

try:  # C (repeated_keys.c): where it could not be built, the documents are re-encoded
    from mm_bronze.formats.fhir.fast.repeated_keys import documents as _scanned
except ImportError:
    _scanned = None  # type: ignore[assignment]


def decode(data: bytes, version: str) -> Any | None:
    """``data`` as the Struct of its resource type, or None if it does not decode (or is
    nested deeper than the walker allows)."""
    return decode_lines([data], version)[0]


def decode_lines(lines: list[bytes], version: str) -> list[Any | None]:
    """``decode`` of each line of an NDJSON block."""
    return checked(types(version).decoder, lines)


def checked(
    decoder: msgspec.json.Decoder, lines: list[bytes], depth: int = MAX_DEPTH
) -> list[Any | None]:
    """``decoder.decode`` of each line, None where it fails or a primitive format does not
    hold (the formats of all lines are checked in one batch: ``batched``)."""
    return batched(lambda some: _decode_within(decoder, some, depth), lines)


def batched(each: Callable[[list[bytes]], list[T | None]], lines: list[bytes]) -> list[T | None]:
    """``each(lines)`` (one result per line, None where a line fails), its primitive formats
    checked in one batch; if the batch fails, each line is taken again alone, its formats
    checked alone, to find the lines at fault (None for them)."""
    with formats.lock:
        # The batches are empty here: ``valid`` empties them, and whatever a decode that
        # raised left in them can only make the batch fail, which sends each line back here.
        out = each(lines)
        if formats.valid():
            return out
        out.clear()
        for line in lines:
            formats.start()
            alone = each([line])[0]
            out.append(alone if formats.valid() else None)
        return out


def _decode_within(
    decoder: msgspec.json.Decoder, lines: list[bytes], depth: int
) -> list[Any | None]:
    """``_decode_each`` refusing what nests deeper than ``depth``."""
    if len(lines) == 1 and len(line := lines[0]) <= SMALL:
        if line.count(b"{") + line.count(b"[") < depth:
            # Nested no deeper than it has brackets: within bounds without ``within_depth``
            # (most Bundle entries); too little recursion left only sends it to the walker.
            return _decode_each(decoder, lines)
    return within_depth(_decode_each, decoder, lines, depth=depth)


def _decode_each(decoder: msgspec.json.Decoder, lines: list[bytes]) -> list[Any | None]:
    out: list[Any | None] = []
    for line in lines:
        try:
            out.append(decoder.decode(line))
        except _ERRORS:
            out.append(None)
    return out


def decode_strict(data: bytes, version: str) -> Any:
    """``data`` as the Struct of its resource type; raises ``msgspec.DecodeError`` (a
    ``ValidationError`` names the element) or ``FormatError`` (names the format and the
    value's place among that format's values) where the fast path does not accept it."""
    with formats.lock:
        formats.start()
        try:
            document = types(version).decoder.decode(data)
            problem = formats.invalid()
        finally:
            formats.start()
    if problem is not None:
        name, index, _value = problem
        raise FormatError(f"{name} value {index + 1} is not a valid {name}")
    return document


def within_depth(call: Callable[..., T], *args: Any, depth: int = MAX_DEPTH) -> T:
    """``call(*args)`` with at most ``depth`` (``MAX_DEPTH``) levels of recursion left to it.

    msgspec refuses (``RecursionError``) what nests deeper than the recursion it has left;
    the walker refuses JSON nested deeper than ``MAX_DEPTH``. To spend the levels in between
    at C speed, the call runs from the ``__instancecheck__`` at the bottom of nested tuples,
    which ``isinstance`` descends one recursion level each (about 2 µs for 900 levels).
    """
    spare = sys.getrecursionlimit() - _stack_depth() - depth - DESCENT_LEVELS
    if spare <= 0:
        return call(*args)
    _bottom.task = (call, args)
    try:
        isinstance(None, _nested(spare))
        result: T = _bottom.result
    finally:
        _bottom.task = _bottom.result = None
    return result


class _Bottom(type):
    """Runs the pending call of ``within_depth`` when ``isinstance`` reaches it."""

    def __instancecheck__(cls, instance: object) -> bool:
        call, args = _bottom.task
        _bottom.result = call(*args)
        return False


class _BottomState(threading.local):
    task: Any = None
    result: Any = None


_bottom = _BottomState()
_BOTTOM = _Bottom("_BOTTOM", (), {})


def _stack_depth() -> int:
    depth = 0
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


@functools.lru_cache(maxsize=64)
def _nested(depth: int) -> tuple[Any, ...]:
    nested: tuple[Any, ...] = (_BOTTOM,)
    for _ in range(depth - 1):
        nested = (nested,)
    return nested


def decide(data: bytes, version: str) -> dict[str, Any] | None:
    """The metadata of a payload proven valid at the strict level, or None (ask the walker).

    The payload is decoded to the lean types first (``LeanFirst``): if it decodes to them,
    the full types would decode it to the same values."""
    with collection_paused():
        kinds, document = _decoded(data, version)
        meta = None
        if document is not None and keys_unique(data, (document,)):
            meta = summary(document, kinds)
        del document
    return meta


def _decoded(data: bytes, version: str) -> tuple[Types, Any | None]:
    """``data`` decoded (``checked``), lean first as ``_payloads`` says, and its types."""

    def attempt(kinds: Types) -> Any:
        document = checked(kinds.decoder, [data])[0]
        return _UNDECODED if document is None else document

    found = _lean_then_full(_payloads, version, attempt)
    return (types(version), None) if found is None else found


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No garbage collection while decoded Structs live (they hold no cycles), and none
    right after: freeing them before collection resumes lowers the count that triggers it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def entries_facts(pieces: list[bytes], version: str, depth: int) -> list[EntryFacts | None]:
    """For each of ``pieces``, consecutive entries of one Bundle nested at most ``depth``
    levels deep: what the Bundle rules need of it if it is valid, or None ("let the walker
    decide"). The rules that involve other entries are the caller's
    (``StructureChecker.entry``). The pieces are decoded and checked together, as the lines
    of an NDJSON block: one format check and one duplicate-key count for all of them, unless
    one fails."""
    kinds = types(version)
    with collection_paused():
        entries = without_repeated_keys(pieces, checked(kinds.entry_decoder, pieces, depth))
        return [None if entry is None else _facts(entry, kinds) for entry in entries]


def _facts(entry: Any, kinds: Types) -> EntryFacts:
    resource = entry.resource
    resource_type = version_id = None
    if resource is not UNSET and resource is not None:
        resource_type = kinds.tags[type(resource)]
        meta = resource.meta
        if meta is not UNSET and meta is not None and meta.versionId is not UNSET:
            version_id = meta.versionId
    return (
        resource_type,
        resource is not UNSET,
        entry.request is not UNSET,
        entry.response is not UNSET,
        None if entry.fullUrl is UNSET else entry.fullUrl,
        version_id,
    )


# ``StructureChecker.entry``'s arguments: resource type, has a resource, a request, a
# response; fullUrl; meta.versionId of the resource.
EntryFacts = tuple[str | None, bool, bool, bool, str | None, str | None]


def without_repeated_keys(pieces: list[bytes], documents: list[Any | None]) -> list[Any | None]:
    """``documents``, what ``pieces`` decoded to (None where they did not), with None in
    place of each whose piece repeats a key: one count for them all (``keys_unique``), and
    only if it fails one per piece, to find those at fault."""
    if None not in documents and keys_unique(pieces, documents):
        return documents
    return [
        None if document is None or not keys_unique(piece, (document,)) else document
        for piece, document in zip(pieces, documents, strict=True)
    ]


def keys_unique(data: bytes | list[bytes], documents: Iterable[Any]) -> bool:
    """No object in ``data`` repeats a key (``documents`` are what it decoded to: one
    document, or the lines of ``data`` one by one, ``data`` holding one newline between each;
    or ``data`` is the list of those lines, joined only if the lengths do not settle it).

    First, one pass over the bytes in C (``repeated_keys``) finds every key of every object
    and compares them; it settles the common case (no repeat, no key written with an escape,
    objects of up to 64 keys). Otherwise, or where that module was not built, the documents
    are re-encoded: msgspec keeps the last of repeated keys (and drops its value), so the re-encoded
    documents lack at least ``"k":v,`` (6 bytes) of ``data`` for each repeat. Nothing else
    makes them longer than ``data``: strings are written with the shortest escapes, whitespace
    is dropped, numbers other than decimals are as short as JSON allows, and decimals are
    re-encoded as they were read (``msgspec.Raw``). So when the lengths match, no key repeats
    (the common case: compact JSON, as bulk exports are).

    Otherwise the colons are counted: ``data`` then holds more colons than the re-encoded
    documents (a colon separates each object member, and the colons inside strings are the
    same on both sides, unless ``data`` escapes one (``\\u003a``), which msgspec writes as a
    colon). Counted at memory speed (``byte_count``); only when ``data`` holds such an escape
    are the colons outside strings counted instead.
    """
    documents = list(documents)
    if _scanned is not None and _all_unique(data, len(documents)):
        return True
    encoded = _buffer()
    try:
        _encoder.encode_into(documents, encoded)
    except (RecursionError, ValueError, TypeError):
        return False
    if isinstance(data, list):
        size = sum(map(len, data)) + len(data) - 1
        if len(encoded) - 2 == size:  # less ``[`` and ``]``; a comma for each newline
            return True
        data = b"\n".join(data)
    elif len(encoded) - 2 == len(data):
        return True
    if _escaped_colon(data):
        return _outside_strings(data) == _outside_strings(bytes(encoded))
    return byte_count.count(data, _COLON) == byte_count.count(encoded, _COLON)


def _all_unique(data: bytes | list[bytes], documents: int) -> bool:
    """``repeated_keys`` finds no repeated key in ``data``, ``documents`` top-level values."""
    assert _scanned is not None
    if isinstance(data, bytes):
        return _scanned(data, False) == documents
    return len(data) == documents and all(_scanned(piece, False) == 1 for piece in data)


_COLON = ord(":")
# Backslashes visited one by one (each found with memchr) before one regex search instead.
_JUMPS = 64
_ESCAPED_COLON = re.compile(rb"\\u003[aA]")


def _escaped_colon(data: bytes) -> bool:
    """``data`` may escape a colon (``\\u003a``). Escapes are rare: jumping from one
    backslash to the next costs far less than searching every byte for the escape (the
    search, past ``_JUMPS`` backslashes, may take an escaped backslash before ``u003a`` for
    one: that only costs the exact count)."""
    find = data.find
    at = find(b"\\")
    for _ in range(_JUMPS):
        if at == -1:
            return False
        if data[at + 1 : at + 5] == b"u003" and data[at + 5 : at + 6] in (b"a", b"A"):
            return True
        at = find(b"\\", at + 2)  # the escaped character is never a backslash that escapes
    return at != -1 and _ESCAPED_COLON.search(data, at) is not None


def _buffer() -> bytearray:
    """This thread's encoding buffer (reused: allocating a fresh one costs as much again)."""
    buffer: bytearray | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = bytearray()
    return buffer


def _outside_strings(blob: bytes) -> int:
    cleaned = blob.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(cleaned.split(b'"')[0::2]).count(b":")


def block_kinds(
    blocks: list[bytes], version: str, lean: LeanFirst | None = None
) -> dict[str, int] | None:
    """How many resources of each type NDJSON ``blocks`` hold, when every line is one
    resource the fast path accepts (as bulk exports write them); None otherwise, and
    ``line_kinds`` then takes the lines one by one. Each block is complete
    lines with one newline between each.

    The blocks are first decoded to the lean types (``lean_types``), while ``lean`` says so:
    if they decode, the full types would decode them to the same values; if not, the full
    types decide (and ``lean`` learns of it if they decode the blocks).

    Each block is decoded in one call (``decode_lines``); the formats of all blocks are
    checked in one batch. ``decode_lines`` also takes blank lines, a document spread over
    lines, two on one line, even two with nothing between them, so a block is taken only if
    one pass over its bytes in C (``repeated_keys``) finds as many lines as documents, each
    alone on its line, and no key repeated in any object. Where that module cannot tell (or
    was not built), the documents are re-encoded in one call, and the block is taken only if
    ``}``, a newline, ``{`` occur once less than it holds
    documents (counted first as ``_NEXT_LINE``, as most bulk exports write them) and its
    re-encoding (``[``, ``]`` and a comma for each newline) is exactly as long. ``}`` then a
    newline then ``{`` can only be where one document ends and the next begins, so each of
    those places is a single newline; as in ``keys_unique``, nothing makes a document's
    re-encoding longer than its bytes, so the lengths leave no other byte between or around
    documents, and no whitespace or repeated key within one: each line is one compact
    document. Lines that end with CRLF are taken the same way: ``}``, CR, LF, ``{`` once less
    than the documents, and the block as long as the re-encoding and a CR for each line."""
    found = _lean_then_full(lean, version, lambda kinds: _block_kinds(kinds, blocks))
    return None if found is None else found[1]


def _block_kinds(kinds: Types, blocks: list[bytes]) -> dict[str, int] | None:
    """``block_kinds`` with ``kinds``; ``_UNDECODED`` if a block does not decode to them."""
    with formats.lock:
        try:
            counted = within_depth(_count_each, kinds, blocks)
        except (*_ERRORS, TypeError):
            formats.start()  # what the decoding collected is not checked
            return _UNDECODED
        if counted is None or kinds.bundle in counted:  # a Bundle's rules: line by line
            formats.start()
            return None
        if not formats.valid():
            return None
    return {kinds.tags[kind]: count for kind, count in counted.items()}


# What is between two lines ``block_kinds`` takes: the end of one resource, a newline, the
# start of the next as most bulk exports write it. Counted 2.5 times as fast as ``}\n{``
# alone (bytes.count skips ahead on the needle's last byte; ``{`` is frequent in JSON),
# which is counted only where the next resource does not start with its type.
_NEXT_LINE = b'}\n{"resourceType":"'
_BETWEEN = b"}\n{"
_BETWEEN_CRLF = b"}\r\n{"  # lines that end with CRLF (Windows)


def _count_each(kinds: Types, blocks: list[bytes]) -> Counter[type] | None:
    decode_lines = kinds.decoder.decode_lines
    encode_into = _encoder.encode_into
    encoded = _buffer()
    counted: Counter[type] = Counter()
    for block in blocks:
        documents = decode_lines(block)
        if _scanned is None or _scanned(block, True) != len(documents):
            between = len(documents) - 1
            carriage_returns = 0
            if block.count(_NEXT_LINE) != between and block.count(_BETWEEN) != between:
                if block.count(_BETWEEN_CRLF) != between:
                    return None
                carriage_returns = between + block.endswith(b"\r")  # before each newline
            encode_into(documents, encoded)
            if len(encoded) - 2 + carriage_returns != len(block):
                return None
        counted.update(map(type, documents))
        del documents  # freed before the next block is decoded
    return counted


def line_kinds(lines: list[bytes], version: str, lean: LeanFirst | None = None) -> list[str | None]:
    """The resource type of each line of an NDJSON block, None where the line does not decode,
    repeats a key or is a Bundle that breaks a rule (what NDJSON lines need of ``decide``).

    Each line is decoded (to the lean types first while ``lean`` says so, as in
    ``block_kinds``), checked for repeated keys (``repeated_keys``, else re-encoded:
    ``keys_unique``) and dropped
    before the next: a block's documents are never held together, which costs the cache more
    than the work. The formats of all lines are checked in one batch; only if it fails is each
    line checked again alone, to find those at fault. (What a decode that raised collected
    stays in the batch: values of the same line, which the full types collect again.)"""
    first = LeanFirst() if lean is None else lean
    return batched(
        lambda some: within_depth(_kinds_each, lean_types(version), version, first, some), lines
    )


def _kinds_each(
    lean: Types, version: str, first: LeanFirst, lines: list[bytes]
) -> list[str | None]:
    scanned = _scanned
    found: list[str | None] = []
    append = found.append
    for line in lines:
        decoded = _decode_line(line, lean, version, first)
        if decoded is None:
            append(None)
            continue
        kinds, document = decoded
        # The common line is settled by one call here (a CR may end it); any other goes
        # through the whole check.
        if (scanned is None or scanned(line, True) != 1) and not keys_unique(line, (document,)):
            append(None)
        elif type(document) is kinds.bundle and _bundle(document, kinds) is None:
            append(None)
        else:
            append(kinds.tags[type(document)])
    return found


def _decode_line(
    line: bytes, lean: Types, version: str, first: LeanFirst
) -> tuple[Types, Any] | None:
    """``_lean_then_full`` for one line, written out, the lean types looked up once for all
    lines: called once per line, it and the attempt it takes would add about 0.3 µs to a
    line's decode of about 3 µs (the NDJSON corpus with spaced lines), some 3 % of the
    line-by-line path. The full types are looked up (and built) only for a line the lean
    ones refuse."""
    lean_tried = first.first()
    if lean_tried:
        try:
            return lean, lean.decoder.decode(line)
        except (*_ERRORS, TypeError):
            pass
    full = types(version)
    try:
        document = full.decoder.decode(line)
    except (*_ERRORS, TypeError):
        return None
    if lean_tried:
        first.missed()
    return full, document


def summary(document: Any, kinds: Types) -> dict[str, Any] | None:
    """``structure.Summary.metadata()`` of a resource decoded to ``kinds``; None if a Bundle
    rule may fail."""
    meta: dict[str, Any] = {"resource_type": kinds.tags[type(document)]}
    if document.id is not UNSET:
        meta["id"] = document.id
    if type(document) is kinds.bundle:
        bundle = _bundle(document, kinds)
        if bundle is None:
            return None
        meta.update(bundle)
    resource_meta = document.meta
    if resource_meta is not UNSET:
        if resource_meta.profile is not UNSET:
            profiles = [p for p in resource_meta.profile if p is not None]
            if profiles:
                meta["profiles"] = profiles
        if resource_meta.lastUpdated is not UNSET:
            meta["last_updated"] = resource_meta.lastUpdated
    return meta


def _bundle(bundle: Any, kinds: Types) -> dict[str, Any] | None:
    """The Bundle part of the metadata, or None where the walker would find an error (the
    same rules as ``StructureChecker._entry`` and ``_bundle``)."""
    bundle_type = bundle.type
    if bundle_type not in kinds.bundle_types:
        return None
    takes_request = bundle_type in REQUEST_BUNDLES
    takes_response = bundle_type in RESPONSE_BUNDLES
    repeats = bundle_type in REPEATING_BUNDLES
    entry_types: dict[str, int] = {}
    full_urls: set[tuple[str, str | None]] = set()
    count = 0
    if bundle.entry is not UNSET:
        for entry in bundle.entry:
            if entry is None:
                continue
            count += 1
            resource = entry.resource
            version_id = None
            if resource is UNSET:
                if not (
                    (takes_request and entry.request is not UNSET)
                    or (takes_response and entry.response is not UNSET)
                ):
                    return None
            else:
                tag = kinds.tags[type(resource)]
                entry_types[tag] = entry_types.get(tag, 0) + 1
                meta = resource.meta
                if meta is not UNSET and meta.versionId is not UNSET:
                    version_id = meta.versionId
            if entry.fullUrl is not UNSET:
                key = (entry.fullUrl, version_id)  # bdl-7: versions may share a fullUrl
                if key in full_urls and not repeats:
                    return None
                full_urls.add(key)
    return {
        "bundle_type": bundle_type,
        "entry_count": count,
        "entry_types": dict(sorted(entry_types.items())),
    }
