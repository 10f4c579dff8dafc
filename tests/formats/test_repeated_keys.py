"""``repeated_keys`` (C) finds every repeated key that Python's own JSON parser sees, and says
how many documents (or lines) it read, or -1 when it cannot tell: never a wrong count."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_bronze.formats.fhir.fast import decider
from tests.formats.mutations import EXAMPLES

# None where repeated_keys.c could not be built (no C compiler): then these tests fail.
documents: Any = decider._scanned


class Repeated(Exception):
    pass


def strict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise Repeated
    return dict(pairs)


def repeats(text: bytes) -> bool:
    """Python's json module: does an object of ``text`` (one document) repeat a key?"""
    try:
        json.loads(text, object_pairs_hook=strict)
    except Repeated:
        return True
    return False


def test_the_compiled_module_is_used() -> None:
    assert documents is not None


@pytest.mark.parametrize(
    ("data", "lines", "expected"),
    [
        (b'{"a":1,"b":[{"a":1,"c":2}]}', False, 1),
        (b'{"a":1,"b":[{"a":1,"a":2}]}', False, -1),  # repeated in a nested object
        (b' {"a" : 1, "b" : {"a" : "a"}}\n', False, 1),  # pretty: whitespace anywhere
        (b'{"a":"x\\"y","b":1}', False, 1),  # an escaped quote inside a value
        (b'{"a":"x\\\\","a":1}', False, -1),  # an escaped backslash ends its string
        (b'{"a\\u0062":1,"ab":2}', False, -1),  # an escaped key: cannot tell (it repeats)
        (b'{"k":[1,2,{"k":3}],"l":"k"}', False, 1),  # the same name in other objects
        (b'"scalar"', False, -1),
        (b'{"a":1}\n{"a":2}', True, 2),
        (b'{"a":1}\r\n{"a":2}\r', True, 2),  # CRLF, the last line keeping its CR
        (b'{"a":1}\n\n{"a":2}', True, -1),  # a blank line
        (b'{"a":1} \n{"a":2}', True, -1),  # a space at the top level
        (b'{"a":1}{"a":2}', True, -1),  # two on one line
        (b'{"a":\n1}', True, -1),  # one over two lines
        (b'{"a":1}\n', True, -1),  # a newline at the end: the caller's blocks have none
        (b"{" + b",".join(b'"k%d":1' % i for i in range(64)) + b"}", False, 1),
        (b"{" + b",".join(b'"k%d":1' % i for i in range(65)) + b"}", False, -1),  # many keys
        (b"[" * 128 + b"]" * 128, False, 1),
        (b"[" * 129 + b"]" * 129, False, -1),  # deeper than it keeps track of
    ],
)
def test_counts(data: bytes, lines: bool, expected: int) -> None:
    assert documents(data, lines) == expected


def test_an_object_with_many_keys_is_still_checked() -> None:
    """Past 64 keys the count is left to the re-encoding, which still finds the repeat."""
    many = {f"k{i}": i for i in range(100)}
    body = json.dumps({"resourceType": "Patient", "extension": [many]}).encode()
    assert decider.keys_unique(body, (json.loads(body),))
    repeated = body.replace(b'"k99"', b'"k98"')
    assert not decider.keys_unique(repeated, (json.loads(repeated),))


KEYS = st.sampled_from(["a", "b", "c", "resourceType", "é", 'q"', "x\\y", "\u2028"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)
)


def containing(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=4),
        st.lists(st.tuples(KEYS, inner), max_size=5),  # an object, maybe repeating a key
    )


VALUES = st.recursive(SCALARS, containing, max_leaves=20)


def written(value: Any, draw: st.DrawFn, top: bool = True) -> str:
    """``value`` as JSON text, objects given as lists of pairs, with random whitespace and
    escapes; the top level is always an object."""
    space = draw(st.sampled_from(["", "", " ", "\n  ", "\t"]))
    ascii_only = draw(st.booleans())
    if top and not (isinstance(value, list) and all(isinstance(v, tuple) for v in value)):
        value = [("v", value)]
    if isinstance(value, list) and all(isinstance(v, tuple) for v in value):
        members = [
            f"{json.dumps(k, ensure_ascii=ascii_only)}{space}:{space}{written(v, draw, False)}"
            for k, v in value
        ]
        return "{" + space + f",{space}".join(members) + space + "}"
    if isinstance(value, list):
        return "[" + f",{space}".join(written(v, draw, False) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def bodies(draw: st.DrawFn) -> list[bytes]:
    return [written(draw(VALUES), draw).encode() for _ in range(draw(st.integers(1, 4)))]


@settings(max_examples=max(1000, EXAMPLES), deadline=None)
@given(bodies(), st.sampled_from([b"\n", b"\r\n", b"\n\n", b" \n"]))
def test_never_a_wrong_count(texts: list[bytes], separator: bytes) -> None:
    any_repeat = any(repeats(text) for text in texts)
    for text in texts:
        found = documents(text, False)
        assert found in (-1, 1)
        assert not (found == 1 and repeats(text)), text
    joined = separator.join(texts)
    found = documents(joined, True)
    if found != -1:
        assert found == len(texts) and not any_repeat, joined
        assert len(texts) == 1 or separator in (b"\n", b"\r\n")
        assert all(b"\n" not in text and b"\r" not in text for text in texts)
    compact = [json.dumps(json.loads(text), separators=(",", ":")).encode() for text in texts]
    if not any_repeat and all(b"\\" not in t for t in compact):
        # What bulk exports write, once no key repeats: counted, never left to Python.
        assert documents(b"\n".join(compact), True) == len(texts)
