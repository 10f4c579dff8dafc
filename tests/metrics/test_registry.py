"""Each Metrics has a registry of its own, and labels stay bounded whatever a sender writes."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest

from mm_bronze.metrics import Metrics, format_label
from mm_bronze.metrics.door import FORMATS, OTHER
from tests.metrics.scrape import parse, value


def test_two_processes_worth_of_metrics_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    second.door("http")  # its label children bound, at 0
    first.door("http").answered("fhir/json", "accepted", time.perf_counter(), 10)
    one, two = (
        parse(generate_latest(first.registry).decode()),
        parse(generate_latest(second.registry).decode()),
    )
    labels = {"door": "http", "format": "fhir/json", "outcome": "accepted"}
    assert value(one, "mm_bronze_submissions_total", **labels) == 1
    assert value(two, "mm_bronze_submissions_total", **labels) == 0
    assert value(one, "mm_bronze_submission_bytes_total", door="http") == 10
    assert value(one, "process_cpu_seconds_total") is not None


@given(st.text(max_size=70), st.text(max_size=70))
def test_format_labels_are_bounded(fmt: str, content_type: str) -> None:
    assert format_label(fmt, content_type) in {*FORMATS, OTHER}


def test_known_formats_keep_their_names() -> None:
    assert format_label("fhir", "ndjson") == "fhir/ndjson"
    assert format_label("hl7", "text") == "hl7/text"
    assert format_label("file", "binary") == "file"
    assert format_label("fhir", "yaml") == OTHER
