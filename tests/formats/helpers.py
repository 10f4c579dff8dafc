"""Run a validator the way the doors do: chunk by chunk."""

from __future__ import annotations

from typing import Any

from mm_bronze import formats


def validate(
    body: bytes,
    fmt: str = "fhir",
    content_type: str = "json",
    *,
    version: str | None = "R4",
    level: str = "strict",
    chunk: int = 4096,
) -> dict[str, Any]:
    validator = formats.validator_for(fmt, content_type, version=version, level=level)
    for start in range(0, len(body), chunk):
        validator.feed(body[start : start + chunk])
    return validator.finish()
