"""HL7 v2 (ER7) validation and metadata."""

from mm_bronze.formats.hl7v2.validator import Hl7v2Validator

__all__ = ["Hl7v2Validator"]
