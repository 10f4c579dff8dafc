"""object_key: the template formatted per event, whatever the fields hold."""

from __future__ import annotations

import datetime as dt

import pytest

from mm_bronze.models import IngestEvent
from mm_bronze.storage.layout import object_key


def event(sha: str, subtype: str = "observation", day: int = 3) -> IngestEvent:
    return IngestEvent(
        uuid="00000000-0000-0000-0000-000000000001", source="api", format="fhir",
        content_type="json", version="R4", subtype=subtype, sha256=sha, size=1,
        received_at=dt.datetime(2026, 12, day, 8, tzinfo=dt.UTC),
    )  # fmt: skip


@pytest.mark.parametrize(
    "template",
    [
        "{source}/{format}/date={date}/{sha256}{ext}",
        "{{literal}}/{year}/{month}/{day}/{subtype}/{sha256}-{sha256}",
    ],
)
@pytest.mark.parametrize("subtype", ["observation", "a\0sha256\0b", "{sha256}"])
def test_keys_match_the_template_for_every_event(template: str, subtype: str) -> None:
    for n, day in ((1, 3), (2, 3), (3, 4)):
        e = event(f"{n:064x}", subtype, day)
        expected = template.format(
            source="api", format="fhir", content_type="json", version="R4", subtype=subtype,
            date=f"2026-12-0{day}", year="2026", month="12", day=f"0{day}",
            sha256=e.sha256, ext=".json",
        )  # fmt: skip
        assert object_key(template, e) == expected
