"""Primitive formats of the fast path, checked in batches rather than value by value.

While msgspec decodes a document, the generated ``__post_init__`` methods only append each
formatted value (code, uri, id, date, ...) to its format's list (``APPEND``, ``EXTEND``);
``valid()`` then checks each list with one C call or one compiled regex pass over the values
joined by ``SEPARATOR``, and empties it. The lists are shared: hold ``lock`` from before the
decode (``start``) until ``valid()``. When a batch fails, ``invalid()`` re-checks value by
value to name the format and the value that fails (the walker then explains it).

Each batch check accepts exactly the values its per-value check (``BAD``) accepts; each
per-value check rejects at least what the walker's pattern rejects (``isprintable`` is false
for every whitespace but " ").
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

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


def _batch_pattern(
    pattern: re.Pattern[str], common: re.Pattern[str] | None = None
) -> Callable[[list[str]], bool]:
    """One ``fullmatch`` of the values joined by ``SEPARATOR``; each value is first tried
    against ``common``, a form of the format that matches nothing the pattern refuses."""
    source = f"(?:{pattern.pattern})"
    if common is not None:
        # Atomic: a value that matches ``common`` also matches ``pattern``; were both tried
        # again on backtracking, a batch that fails would cost 2 ** n (n values before it).
        source = f"(?>{common.pattern}|{pattern.pattern})"
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


# A dateTime is most often a full instant (date, time and zone): sre matches the flat
# instant pattern in about 60 % of the time it takes over the dateTime pattern's nested
# optional groups (Synthea NDJSON's dateTimes: 185 µs against 296).
COMMON: dict[str, Callable[[str], object]] = {"dateTime": _p.instant}

# Decimals are checked as bytes (``msgspec.Raw``), every other format as str.
BATCH: dict[str, Callable[[list[Any]], bool]] = {
    "code": _batch_code,
    "uri": _batch_uri,
    "id": _batch_id,
    **{
        name: _batch_pattern(
            match.__self__,  # type: ignore[attr-defined]
            getattr(COMMON.get(name), "__self__", None),
        )
        for name, match in MATCHERS.items()
    },
    "decimal": _batch_raw(_decimal),
    "decimals": _batch_raw(_decimal_item),
}

FORMATS = tuple(BAD)
# Formats checked value by value in one C pass, cheaper than hashing the values to drop
# repeats (ids seldom repeat). Uris repeat (the same system in every Coding): hashing them
# to check each once costs a third of checking them all (measured on bulk NDJSON).
WHOLE = frozenset({"id", "decimal", "decimals"})  # decimals: ``msgspec.Raw`` is not hashable
_VALUES: dict[str, list[str | None]] = {name: [] for name in FORMATS}
# What the generated code calls: ``APPEND[format](value)``, ``EXTEND[format](values)`` (a
# repeating element: its items, ``None`` among them).
APPEND = {name: values.append for name, values in _VALUES.items()}
EXTEND = {name: values.extend for name, values in _VALUES.items()}
_CHECKS = tuple((_VALUES[name], BATCH[name], name in WHOLE) for name in FORMATS)
lock = threading.Lock()


def start() -> None:
    """Empty the lists (a decode that raised may have left values in them)."""
    for values in _VALUES.values():
        values.clear()


def valid() -> bool:
    """Every value collected since ``start`` is valid; the lists are left empty."""
    ok = True
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
            ok = not checked or batch(checked)
        values.clear()
    return ok


def invalid() -> tuple[str, int, str] | None:
    """The first value collected since ``start`` that is not valid: its format, its index
    among that format's values, and the value; None if all are. The lists are left as they
    are (``start`` or ``valid`` empties them)."""
    for name, values in _VALUES.items():
        bad = BAD[name]
        for index, value in enumerate(values):
            if value is not None and bad(value):
                return name, index, value
    return None
