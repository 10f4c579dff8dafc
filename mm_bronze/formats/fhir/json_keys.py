"""Repeated keys in a JSON object, which a decoded dict hides (it keeps the last one).

``written_keys`` counts the keys written in the bytes with one C-level regex scan; when that
differs from the keys a walk met, ``shape`` counts the decoded document's keys (and measures
its nesting) without recursion, and only when those differ too does ``duplicate_keys`` read
the bytes again as parser events to name each repeated key and where it is.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import Any

import ijson

from mm_bronze.formats.fhir import shown

# Every JSON string, and whether a colon follows it (then it is a key). Matching every
# string keeps the scan in step with the quotes; the bytes are already known to be JSON.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(?:[ \t\r\n]*(:))?', re.DOTALL)


def shape(document: Any) -> tuple[int, int]:
    """``(keys, depth)``: how many object keys ``document`` holds, and its deepest nesting
    of objects and arrays (1 for a flat object)."""
    keys = 0
    deepest = 0
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children: Iterable[Any]
        if isinstance(value, dict):
            keys += len(value)
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return keys, deepest


def written_keys(data: bytes) -> int:
    """How many object keys the JSON ``data`` spells out, repeated ones included."""
    return _STRING.findall(data).count(b":")


def duplicate_keys(data: bytes, root: str) -> list[tuple[str, str]]:
    """``(key, path)`` for every key that repeats within one object of the JSON ``data``.

    ``root`` is the path of the top-level value (e.g. its resourceType), as the walkers
    write paths.
    """
    found: list[tuple[str, str]] = []
    # Frames: [path, keys of an object (None for an array), current key, next array index].
    stack: list[list[Any]] = []
    try:
        # Numbers as floats: only keys matter here, and a Decimal refuses exponents msgspec
        # reads (``1e-9999999999999999999999`` is 0.0 to msgspec, InvalidOperation to ijson).
        for kind, value in ijson.basic_parse(io.BytesIO(data), use_float=True):
            if kind == "map_key":
                frame = stack[-1]
                if value in frame[1]:
                    found.append((value, _join(frame[0], value)))
                frame[1].add(value)
                frame[2] = value
            elif kind in ("start_map", "start_array"):
                path = _child(stack[-1]) if stack else root
                stack.append([path, set() if kind == "start_map" else None, None, 0])
            elif kind in ("end_map", "end_array"):
                stack.pop()
            elif stack and stack[-1][1] is None:
                stack[-1][3] += 1
    # Bytes msgspec decoded but yajl does not (or whose numbers Python refuses): stop naming keys.
    except (ijson.JSONError, ArithmeticError, ValueError):
        pass
    return found


def _child(frame: list[Any]) -> str:
    if frame[1] is None:
        frame[3] += 1
        return f"{frame[0]}[{frame[3] - 1}]"
    return _join(frame[0], frame[2])


def _join(path: str, key: str) -> str:
    key = shown.name(key)
    return f"{path}.{key}" if path else key
