"""Validation and metadata extraction per format, chosen from the ingest route."""

from __future__ import annotations

from collections.abc import Callable

from mm_bronze.errors import UnsupportedFormat
from mm_bronze.formats.base import LENIENT, LEVELS, STRICT, Findings, PayloadValidator
from mm_bronze.formats.fhir.json_validator import FhirJsonValidator
from mm_bronze.formats.fhir.ndjson_validator import FhirNdjsonValidator
from mm_bronze.formats.fhir.xml_validator import FhirXmlValidator
from mm_bronze.formats.hl7v2.validator import Hl7v2Validator

# Each factory takes the route's declared version (None if unknown) and the level.
Factory = Callable[[str | None, str], PayloadValidator]

VALIDATORS: dict[str, dict[str, Factory]] = {
    "fhir": {
        "json": FhirJsonValidator,
        "xml": FhirXmlValidator,
        "ndjson": FhirNdjsonValidator,
    },
    "hl7": {"text": Hl7v2Validator},
}


def supported() -> list[str]:
    """Every supported ``format/content_type`` pair."""
    return [f"{fmt}/{ct}" for fmt, types in VALIDATORS.items() for ct in types]


def validator_for(
    format: str, content_type: str, *, version: str | None = None, level: str = STRICT
) -> PayloadValidator:
    """A fresh validator for the declared format; raises ``UnsupportedFormat``.

    ``version`` is the version the sender declared (FHIR: ``R4``, ``R4B``, ``R5`` or their
    numbers; HL7 v2 reads its version from MSH-12 instead). ``level`` is ``strict``
    (syntax and structure errors reject) or ``lenient`` (they are recorded in the
    metadata under ``findings``); anything else raises ``ValueError``.
    """
    if level not in LEVELS:
        raise ValueError(f"validation level must be one of {', '.join(LEVELS)}")
    types = VALIDATORS.get(format)
    if types is None:
        raise UnsupportedFormat(f"unsupported format {format!r}", supported())
    factory = types.get(content_type)
    if factory is None:
        raise UnsupportedFormat(
            f"unsupported content type {content_type!r} for format {format!r}",
            [f"{format}/{ct}" for ct in types],
        )
    return factory(version, level)


__all__ = [
    "LENIENT",
    "LEVELS",
    "STRICT",
    "Findings",
    "PayloadValidator",
    "supported",
    "validator_for",
]
