"""Inputs that once crashed a validator or took it super-linear time, each answered now.

The crashes raised something other than ``InvalidPayload`` (a 500 at the door). The slow
inputs are run in a child process with a generous time limit: each takes well under a second
now and took minutes or forever before (exponential backtracking, quadratic rescans), so
the limit tells a hang from a slow machine; it is not a speed assertion.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from mm_bronze.errors import InvalidPayload
from mm_bronze.formats.fhir import json_validator
from tests.formats.helpers import validate

HANG_LIMIT = 120  # seconds; each body below takes well under one


def issues(body: bytes, fmt: str = "fhir", content_type: str = "json", **kw: object) -> list:
    with pytest.raises(InvalidPayload) as refused:
        validate(body, fmt, content_type, **kw)  # type: ignore[arg-type]
    return [(i.diagnostics, i.expression) for i in refused.value.issues]


@pytest.mark.parametrize(
    ("encoding", "why"),
    [
        ("shift_jis", "an encoding the XML parser cannot read"),  # multi-byte: ValueError
        ("big5", "an encoding the XML parser cannot read"),
        ("idna", "an encoding the XML parser cannot read"),  # UnicodeError
        ("punycode", "an encoding the XML parser cannot read"),
        ("undefined", "an encoding the XML parser cannot read"),
        ("no-such-codec", "unknown encoding"),  # LookupError
    ],
)
@pytest.mark.parametrize("chunk", [1, 4096])
def test_an_xml_declaration_naming_an_unreadable_encoding_is_refused(
    encoding: str, why: str, chunk: int
) -> None:
    body = b'<?xml version="1.0" encoding="%s"?><Patient xmlns="http://hl7.org/fhir"/>' % (
        encoding.encode()
    )
    found = issues(body, "fhir", "xml", chunk=chunk)
    assert found[0] == (f"FHIR XML must be UTF-8 ({why})", None)


@pytest.mark.parametrize("number", [b"1e-9999999999999999999999", b"0e9999999999999999999999"])
def test_a_repeated_key_is_named_beside_a_number_a_decimal_refuses(number: bytes) -> None:
    """msgspec reads these numbers; the key walker (ijson) once raised InvalidOperation."""
    body = b'{"resourceType":"Patient","id":"a","id":"a","multipleBirthInteger":%s}' % number
    assert ("Duplicate property 'id'", "Patient.id") in issues(body)


def test_a_valid_surrogate_pair_split_between_chunks_of_a_streamed_string() -> None:
    """A string over the streaming limit is cut into pieces; a cut between the two escapes of
    a surrogate pair made a valid body "truncated"."""
    text = "\U0001f600" * 100_000  # json.dumps writes each as \\ud83d\\ude00
    body = json.dumps({"resourceType": "Patient", "name": [{"text": text}]}).encode()
    saved = json_validator.BUFFER_LIMIT
    json_validator.BUFFER_LIMIT = 0  # streamed, as a body over 4 MiB is
    try:
        for chunk in (7, 4096):
            assert validate(body, chunk=chunk)["resource_type"] == "Patient"
    finally:
        json_validator.BUFFER_LIMIT = saved


def answered_in_time(script: str) -> str:
    """Run ``script`` (which prints the verdict) in a child; its output."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


VERDICT = """
from mm_bronze.errors import InvalidPayload
from tests.formats.helpers import validate
def verdict(*args, **kw):
    try:
        validate(*args, **kw)
    except InvalidPayload as exc:
        print("rejected:", exc.issues[0].diagnostics)
    else:
        print("accepted")
"""


def test_many_instants_and_one_bad_datetime_do_not_backtrack_exponentially() -> None:
    """Every instant matched both alternatives of the batched dateTime pattern: one bad
    value made the batch try 2 ** n combinations before failing (22 values took 2.5 s)."""
    out = answered_in_time(
        VERDICT
        + """
ext = [{"url": "http://e.org/x", "valueDateTime": f"2020-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z"}
       for i in range(200)]
ext.append({"url": "http://e.org/x", "valueDateTime": "2020-01-01T00:00:00"})
import json
verdict(json.dumps({"resourceType": "Patient", "extension": ext}).encode())
"""
    )
    assert out == "rejected: Extension.valueDateTime has a time but no timezone", out


def test_a_long_hl7_segment_of_empty_fields_in_small_chunks() -> None:
    """Compacting the held segment at every chunk, when it does not shrink, was quadratic
    (3 MB at 4 KiB chunks took 150 s)."""
    out = answered_in_time(
        VERDICT
        + r"""
body = (b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID" + b"|" * 3_000_000 + b"\r")
verdict(body, "hl7", "text", version=None, chunk=4096)
"""
    )
    assert out.startswith(("accepted", "rejected:")), out


def test_a_long_xml_attribute_in_small_chunks() -> None:
    """expat rescans an unfinished token at every call: a body held below 4 MiB was replayed
    to it chunk by chunk (900 KB at 64-byte chunks took 3.6 s, 3.5 MB at 16-byte ones minutes)."""
    out = answered_in_time(
        VERDICT
        + """
body = (b'<Patient xmlns="http://hl7.org/fhir"><id value="' + b"a" * 3_500_000
        + b'"/></Patient>')
verdict(body, "fhir", "xml", chunk=16)
"""
    )
    assert out.startswith("rejected:"), out  # an id of 3.5 MB is not a valid id


def test_a_streamed_number_followed_by_much_whitespace_in_small_chunks() -> None:
    """The splitter waited for a number to end while only whitespace followed it, and looked
    at it again at every chunk (900 KB of spaces at 64-byte chunks took 3.4 s, growing with
    the square)."""
    out = answered_in_time(
        VERDICT
        + """
import json
narrative = json.dumps("x" * 4_500_000)
body = ('{"resourceType": "Patient", "name": [{"text": ' + narrative + '}],'
        ' "multipleBirthInteger": 1' + " " * 3_000_000 + "}").encode()
verdict(body, chunk=16)
"""
    )
    assert out == "accepted", out


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (b'{"resourceType": "Patient", "name": [{"family": "\\ud800"}]}', "line 1, column 50"),
        (b'{"resourceType": "Patient",\n"name": [{"family": "x\\uDBFFy"}]}', "line 2, column 23"),
    ],
)
def test_a_lone_high_surrogate_escape_is_named_and_located(body: bytes, location: str) -> None:
    """msgspec calls it "Input data was truncated", which the body is not. (Decoded whole, as
    bodies up to 4 MiB are; a streamed body still reports it as truncated.)"""
    with pytest.raises(InvalidPayload) as caught:
        validate(body)
    assert str(caught.value) == (
        "malformed JSON: a UTF-16 high surrogate escape (\\uD800 to \\uDBFF) without its low half"
    )
    assert caught.value.location == location


def test_an_escaped_backslash_before_u_d800_is_text_and_a_cut_escape_is_truncation() -> None:
    assert validate(b'{"resourceType": "Patient", "id": "a", "language": "x\\\\ud800"}')
    with pytest.raises(InvalidPayload, match="Input data was truncated"):
        validate(b'{"resourceType": "Patient", "name": [{"family": "\\ud800')
