"""Primitive formats and ``[x]`` choices of the fast path, checked in batches after decoding.

While msgspec decodes a document, each Struct whose type has rules (formatted elements: code,
uri, id, date, ...; choice groups) is appended, by its ``__post_init__`` (``collector``: a
list's ``append``, so no Python frame per Struct), to the list of its type. ``valid()`` then
takes, type by type, the formatted values of those Structs (``map`` of an attribute getter:
C loops), checks each format's values with one C call or one compiled regex pass over the
values joined by ``SEPARATOR``, checks the choice groups (one tuple slice per Struct), and
empties the lists. The lists are shared: hold ``lock`` from before the decode (``start``)
until ``valid()``. When a batch fails, ``invalid()`` re-checks value by value to name the
choice group or the format and the value that fails (the walker then explains it).

Each batch check accepts exactly the values its per-value check (``BAD``) accepts; each
per-value check rejects at least what the walker's pattern rejects (``isprintable`` is false
for every whitespace but " ").
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from itertools import compress, repeat
from operator import itemgetter
from typing import Any

import msgspec

from mm_bronze.formats.fhir.fast import primitives as _p

# No valid value of any format holds it (it is not printable and no pattern matches it), so a
# batch joined with it splits back into its values.
SEPARATOR = "\x00"


def _code(v: str) -> bool:
    return v[0] == " " or v[-1] == " " or "  " in v or not v.isprintable()


def _uri(v: str) -> bool:
    return " " in v or not v.isprintable()


def _id(v: str) -> bool:
    return len(v) > 64 or not v.isascii() or not v.replace("-", "a").replace(".", "a").isalnum()


# The walker's own patterns (``primitives``), matched with ``fullmatch``.
MATCHERS: dict[str, Callable[[str], object]] = {
    "date": _p.date,
    "dateTime": _p.date_time,
    "instant": _p.instant,
    "time": _p.time,
    "oid": _p.oid,
    "uuid": _p.uuid,
    "integer64": _p.integer64,
    "base64Binary": _p.base64,
}


def _mismatch(match: Callable[[str], object]) -> Callable[[str], bool]:
    return lambda v: match(v) is None


# A decimal's JSON text (``msgspec.Raw``), which msgspec has already read as a valid JSON value:
# a number if and only if it starts with a minus or a digit (the rest of the number's grammar
# is msgspec's, the walker's pattern). An item of a list of decimals may also be ``null``.
_DECIMAL = rb"[-0-9][^\x00]*"
_decimal = re.compile(_DECIMAL).fullmatch
_decimal_item = re.compile(rb"null|" + _DECIMAL).fullmatch


def _raw_mismatch(match: Callable[[bytes], object]) -> Callable[[bytes], bool]:
    return lambda v: match(bytes(v)) is None


# Per value: true when ``v`` is NOT valid. uri, url and canonical share the ``uri`` list.
BAD: dict[str, Callable[[str], bool]] = {
    "code": _code,
    "uri": _uri,
    "id": _id,
    **{name: _mismatch(match) for name, match in MATCHERS.items()},
    "decimal": _raw_mismatch(_decimal),  # type: ignore[dict-item]
    "decimals": _raw_mismatch(_decimal_item),  # type: ignore[dict-item]
}


# ASCII strings (nearly all values) are checked by deleting the allowed bytes: what is left
# is what fails (``bytes.translate`` costs a fraction of ``str.isprintable``).
_PRINTABLE = bytes(range(0x20, 0x7F))  # for ASCII, exactly what ``isprintable`` accepts
_VISIBLE = bytes(range(0x21, 0x7F))
_ID = b"-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _batch_code(values: list[str]) -> bool:
    joined = SEPARATOR.join(values)
    if joined.isascii():
        # Only the separators may be left: any other byte is not printable.
        if len(joined.encode("ascii").translate(None, _PRINTABLE)) != len(values) - 1:
            return False
    elif not "".join(values).isprintable():
        return False
    return not (
        joined[0] == " "
        or joined[-1] == " "
        or "  " in joined
        or " " + SEPARATOR in joined
        or SEPARATOR + " " in joined
    )


def _batch_uri(values: list[str]) -> bool:
    joined = "".join(values)
    if joined.isascii():
        return not joined.encode("ascii").translate(None, _VISIBLE)
    return " " not in joined and joined.isprintable()


def _batch_id(values: list[str]) -> bool:
    joined = "".join(values)
    return (
        joined.isascii()
        and not joined.encode("ascii").translate(None, _ID)
        and max(map(len, values)) <= 64
    )


def _batch_pattern(pattern: re.Pattern[str]) -> Callable[[list[str]], bool]:
    source = f"(?:{pattern.pattern})"
    batch = re.compile(f"{source}(?:{re.escape(SEPARATOR)}{source})*").fullmatch

    def check(values: list[str]) -> bool:
        joined = SEPARATOR.join(values)
        # A separator inside a value would split it into values that may each match.
        return joined.count(SEPARATOR) == len(values) - 1 and batch(joined) is not None

    return check


def _batch_raw(match: Callable[[bytes], object]) -> Callable[[list[bytes]], bool]:
    pattern: re.Pattern[bytes] = match.__self__  # type: ignore[attr-defined]
    source = b"(?:" + pattern.pattern + b")"
    batch = re.compile(source + b"(?:\x00" + source + b")*").fullmatch

    def check(values: list[bytes]) -> bool:
        joined = b"\x00".join(values)
        return joined.count(b"\x00") == len(values) - 1 and batch(joined) is not None

    return check


BATCH: dict[str, Callable[[list[str]], bool]] = {
    "code": _batch_code,
    "uri": _batch_uri,
    "id": _batch_id,
    **{
        name: _batch_pattern(match.__self__)  # type: ignore[attr-defined]
        for name, match in MATCHERS.items()
    },
    "decimal": _batch_raw(_decimal),  # type: ignore[dict-item]
    "decimals": _batch_raw(_decimal_item),  # type: ignore[dict-item]
}


def _first(
    common: Callable[[list[str]], bool], whole: Callable[[list[str]], bool]
) -> Callable[[list[str]], bool]:
    """``whole``, tried only when the batch is not all of the narrower, faster ``common``."""
    return lambda values: common(values) or whole(values)


# A digit's value as the tens (``_TENS``) or the units (``_UNITS``) of a number; any other
# byte a value that puts their sum at 100 or more (and below 256: no carry between bytes).
_TENS = bytes(10 * (b - 48) if 48 <= b <= 57 else 150 for b in range(256))
_UNITS = bytes(b - 48 if 48 <= b <= 57 else 100 for b in range(256))
_STRIDE = 26  # ``YYYY-MM-DDThh:mm:ss+hh:mm`` and a separator
# (position of the two digits, the numbers they may write)
_NUMBERS = (
    (0, range(100)),
    (2, range(100)),
    (5, range(1, 13)),  # month
    (8, range(1, 32)),  # day
    (11, range(24)),  # hour
    (14, range(60)),  # minute
    (17, range(61)),  # second
    (20, range(14)),  # zone hours (14:00 is left to the pattern)
    (23, range(60)),  # zone minutes
)
_PUNCTUATION = ((4, b"-"), (7, b"-"), (10, b"T"), (13, b":"), (16, b":"), (22, b":"))


def _numbers(joined: bytes, at: int, count: int) -> bytes:
    """The two-digit number at ``at`` of each of ``count`` values ``_STRIDE`` apart, one byte
    each (100 or more where one of the two is not a digit)."""
    tens = joined[at::_STRIDE].translate(_TENS)
    units = joined[at + 1 :: _STRIDE].translate(_UNITS)
    return (int.from_bytes(tens, "big") + int.from_bytes(units, "big")).to_bytes(count, "big")


def _complete_times(values: list[str]) -> bool:
    """Each value is ``YYYY-MM-DDThh:mm:ss+hh:mm`` (or ``-hh:mm``) with every number in its
    range and a year other than 0000: an instant, so a dateTime. Checked column by column in
    C (slices of the joined values, one big-integer sum per number); False only means "not
    all of that form" (the pattern then decides)."""
    joined_text = SEPARATOR.join(values)
    count = len(values)
    if len(joined_text) != _STRIDE * count - 1 or not joined_text.isascii():
        return False
    joined = joined_text.encode("ascii")
    if joined[25::_STRIDE] != b"\x00" * (count - 1):
        return False  # then some value is not 25 characters long
    for at, mark in _PUNCTUATION:
        if joined[at::_STRIDE] != mark * count:
            return False
    if joined[19::_STRIDE].translate(None, b"+-"):
        return False
    for at, numbers in _NUMBERS:
        if _numbers(joined, at, count).translate(None, bytes(numbers)):  # what is left fails
            return False
    years = int.from_bytes(_numbers(joined, 0, count), "big") + int.from_bytes(
        _numbers(joined, 2, count), "big"
    )
    return b"\x00" not in years.to_bytes(count, "big")  # 00 + 00: the year 0000


# Nearly every instant and dateTime is complete, with a zone and no fraction of a second;
# when a batch is not all of that form, dateTime's batch is first tried as instant's (the
# same parts, none optional: two thirds of the time of dateTime's regex).
BATCH["dateTime"] = _first(_complete_times, _first(BATCH["instant"], BATCH["dateTime"]))
BATCH["instant"] = _first(_complete_times, BATCH["instant"])

FORMATS = tuple(BAD)
# Formats checked value by value in one C pass, cheaper than hashing the values to drop
# repeats (ids seldom repeat). Uris repeat (the same system in every Coding): hashing them
# to check each once costs a third of checking them all (measured on bulk NDJSON).
WHOLE = frozenset({"id", "decimal", "decimals"})  # decimals: ``msgspec.Raw`` is not hashable
_VALUES: dict[str, list[str | None]] = {name: [] for name in FORMATS}
EXTEND = {name: values.extend for name, values in _VALUES.items()}
_CHECKS = tuple((_VALUES[name], BATCH[name], name in WHOLE) for name in FORMATS)
lock = threading.Lock()

# Per registered type: the list its ``__post_init__`` fills, and the generated function that
# gives the formatted values of its Structs to ``_VALUES`` and checks their choice groups
# (None when they pass, else the group that fails).
Check = Callable[[list[Any]], str | None]
_GATHERED: list[list[Any]] = []
_TYPES: list[tuple[list[Any], Check]] = []
astuple = msgspec.structs.astuple
UNSETS = repeat(msgspec.UNSET)  # ``map(tuple.count, tuples, UNSETS)``: UNSET in each tuple


def collector() -> Callable[[Any], None]:
    """A generated type's ``__post_init__``: the ``append`` of a new list (see ``register``)."""
    gathered: list[Any] = []
    return gathered.append


def register(checks: Iterable[tuple[type, Check]]) -> None:
    """The checks of generated types whose ``__post_init__`` is a ``collector``."""
    for struct, check in checks:
        gathered = struct.__post_init__.__self__  # type: ignore[attr-defined]
        _GATHERED.append(gathered)
        _TYPES.append((gathered, check))


def span(struct: type, first: str, last: str, size: int) -> Callable[[tuple[Any, ...]], Any]:
    """The slice, from ``first`` to ``last``, of a tuple of ``struct``'s fields, which holds
    ``size`` fields (the members of a choice group, written next to each other)."""
    fields: tuple[str, ...] = struct.__struct_fields__  # type: ignore[attr-defined]
    start, end = fields.index(first), fields.index(last) + 1
    if end - start != size:
        raise ValueError(f"{struct.__name__}: {first}..{last} is not a choice group")
    return itemgetter(slice(start, end))


def _gather() -> str | None:
    """Move the formatted values of the gathered Structs to their formats' lists, empty the
    Structs' lists; the first choice group that fails, if one does."""
    problem = None
    for gathered, check in compress(_TYPES, _GATHERED):
        if problem is None:
            problem = check(gathered)
        gathered.clear()
    return problem


def start() -> None:
    """Empty the lists (a decode that raised may have left Structs or values in them)."""
    for gathered in compress(_GATHERED, _GATHERED):
        gathered.clear()
    for values in _VALUES.values():
        values.clear()


def valid() -> bool:
    """Every Struct decoded since ``start`` passes; the lists are left empty."""
    ok = _gather() is None
    for values, batch, whole in _CHECKS:
        if not values:
            continue
        if ok:
            if whole:
                checked = [v for v in values if v is not None] if None in values else values
            else:
                # Codes and dates repeat (the same code in many Codings, a date in every
                # entry): each distinct value is checked once.
                distinct = set(values)
                distinct.discard(None)
                checked = list(distinct)
            ok = not checked or batch(checked)  # type: ignore[arg-type]
        values.clear()
    return ok


def invalid() -> _p.FormatError | None:
    """What fails among the Structs decoded since ``start``: the first choice group, or the
    first value of a format (named by its index among that format's values); None if all
    pass. The Structs' lists are left empty, the values where they are (``start`` or
    ``valid`` empties them)."""
    problem = _gather()
    if problem is not None:
        return _p.ChoiceError(problem)
    for name, values in _VALUES.items():
        bad = BAD[name]
        for index, value in enumerate(values):
            if value is not None and bad(value):
                return _p.FormatError(f"{name} value {index + 1} is not a valid {name}")
    return None
