"""The hypercorn configuration the door serves with."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

from mm_bronze.ingest.http.server import hypercorn_config
from mm_bronze.settings import HttpSettings


def date_of(headers: list[tuple[bytes, bytes]]) -> float:
    (value,) = [value for name, value in headers if name == b"date"]
    return parsedate_to_datetime(value.decode()).timestamp()


def test_every_response_gets_the_current_date_and_the_server() -> None:
    config = hypercorn_config(HttpSettings())
    first = config.response_headers("h11")
    assert (b"server", b"hypercorn-h11") in first
    assert abs(date_of(first) - time.time()) <= 1.5
    first.append((b"x-extra", b"1"))  # a caller may extend what it is given
    assert (b"x-extra", b"1") not in config.response_headers("h11")
    time.sleep(1.1)
    assert date_of(config.response_headers("h11")) > date_of(first)
