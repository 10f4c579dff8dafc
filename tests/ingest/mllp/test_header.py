"""Header parsing: a message that starts with MSH reads the same as one found by search."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_bronze.ingest.mllp.header import Hl7Header, parse_header

MSH = b"MSH|^~\\&|SND|SFAC|RCV|RFAC|20250101||ORU^R01^ORU_R01|CTRL-7|P|2.5.1|||AL|NE||UNICODE\r"


def fields(header: Hl7Header) -> tuple[object, ...]:
    return (
        header.field_separator,
        header.encoding,
        header.msh,
        header.batch,
        header.batch_segment,
        header.batch_control_id,
        header.problem,
        header.describe(),
        header.subtype,
        header.version_label,
    )


def assert_same_as_searched(message: bytes) -> None:
    # A leading segment break sends the parser through its search for header segments.
    assert fields(parse_header(message)) == fields(parse_header(b"\r" + message))
    assert fields(parse_header(b"\xef\xbb\xbf" + message)) == fields(parse_header(message))


def test_corpus_headers_read_the_same_at_the_start_and_by_search(corpus: Path) -> None:
    messages = [p.read_bytes() for p in sorted((corpus / "hl7v2").iterdir()) if p.is_file()]
    starting = [m for m in messages if m.startswith(b"MSH")]
    assert len(starting) >= 20
    for message in starting:
        assert_same_as_searched(message)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(MSH) - 4),
            st.sampled_from(list(b"|^~\\&\r\n\x0b\x1c #aZ9\xff")),
            st.booleans(),
        ),
        max_size=5,
    )
)
def test_mutated_headers_read_the_same_at_the_start_and_by_search(
    edits: list[tuple[int, int, bool]],
) -> None:
    message = bytearray(MSH + b"PID|1\r")
    for position, byte, insert in edits:
        position = min(position + 3, len(message))  # keep the leading MSH
        if insert:
            message.insert(position, byte)
        else:
            message[min(position, len(message) - 1)] = byte
    assert_same_as_searched(bytes(message))


def test_a_header_with_unusable_delimiters_is_reported_with_what_was_read() -> None:
    header = parse_header(b"MSH|&&&&|SND|SFAC\rPID|1\r")
    assert header.problem is not None and header.problem.field == 2
    assert header.sending_application == b"SND"


def described_in_full(header: Hl7Header) -> dict[str, str | None]:
    """What ``describe`` returns, read field by field (no cache)."""

    def text(value: bytes) -> str | None:
        return value.decode("utf-8", "replace") or None

    return {
        "control_id": text(header.control_id),
        "message_type": text(header.msh_field(9)),
        "sending_application": text(header.sending_application),
        "sending_facility": text(header.sending_facility),
        "receiving_application": text(header.receiving_application),
        "receiving_facility": text(header.receiving_facility),
        "processing_id": text(header.processing_id),
        "hl7_version": text(header.version),
        "accept_ack_type": header.accept_ack_type or None,
        "application_ack_type": header.application_ack_type or None,
    }


@pytest.mark.parametrize(
    "message",
    [
        b"MSH|^~\\&|S^1|F|R|RF|2025||ORU^R01|C-1|P|2.5.1^X|||al |ne|USA|UNICODE UTF-8\r",
        b"MSH|^~\\&|S^1|F|R|RF|2025||ORU^R01|C-2|P|2.5.1^X|||AL|NE|USA|UNICODE UTF-8\r",
        b"MSH|#~\\&|S#1|F|R|RF|2025||ORU#R01|C-3|T|2.4#Y|||SU|ER\r",
        b"MSH|^~\\&|S|F\r",
        b"FHS|^~\\&|FS|FF|FR|FRF|||||F-1\rBHS|^~\\&|||||||||B-1\r",
        b"PID|1\r",
    ],
)
def test_the_described_header_is_the_same_cached(message: bytes) -> None:
    header = parse_header(message)
    assert header.describe() == described_in_full(header)
    assert header.describe() == described_in_full(header)  # from the cache, the same


def test_large_header_fields_are_described_without_entering_the_cache() -> None:
    from mm_bronze.ingest.mllp import header as header_module

    message = b"MSH|^~\\&|" + b"S" * 4096 + b"|F|R|RF|2025||ORU^R01|C-1|P|2.5.1\r"
    parsed = parse_header(message)
    before = header_module._described.cache_info()
    assert parsed.describe() == described_in_full(parsed)
    after = header_module._described.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


@pytest.mark.parametrize("lead", [b"", b"\xef\xbb\xbf", b"\r\n" * 600_000, b" \t\n" * 10])
def test_blank_lines_before_the_header_are_skipped_however_many(lead: bytes) -> None:
    """HL7 v2 allows blank lines before the first segment; more than the header search
    looks at (1 MiB) no longer hides the MSH."""
    assert fields(parse_header(lead + MSH + b"PID|1\r")) == fields(parse_header(MSH))
