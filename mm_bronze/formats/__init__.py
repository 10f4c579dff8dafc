"""Validation and metadata extraction per format, chosen from the ingest route."""

from __future__ import annotations

from collections.abc import Callable

from mm_bronze.errors import UnsupportedFormat
from mm_bronze.formats.base import PayloadValidator
from mm_bronze.formats.fhir_json import FhirJsonValidator
from mm_bronze.formats.fhir_xml import FhirXmlValidator
from mm_bronze.formats.hl7v2 import Hl7v2Validator

VALIDATORS: dict[str, dict[str, Callable[[], PayloadValidator]]] = {
    "fhir": {"json": FhirJsonValidator, "xml": FhirXmlValidator},
    "hl7": {"text": Hl7v2Validator},
}


def supported() -> list[str]:
    """Every supported ``format/content_type`` pair."""
    return [f"{fmt}/{ct}" for fmt, types in VALIDATORS.items() for ct in types]


def validator_for(format: str, content_type: str) -> PayloadValidator:
    """A fresh validator for the declared format; raises ``UnsupportedFormat``."""
    types = VALIDATORS.get(format)
    if types is None:
        raise UnsupportedFormat(f"unsupported format {format!r}", supported())
    factory = types.get(content_type)
    if factory is None:
        raise UnsupportedFormat(
            f"unsupported content type {content_type!r} for format {format!r}",
            [f"{format}/{ct}" for ct in types],
        )
    return factory()


__all__ = ["PayloadValidator", "supported", "validator_for"]
