"""Guess a file's format from its name and first bytes (for offline validation)."""

from __future__ import annotations

from pathlib import Path

# (format, content type) by file extension.
EXTENSIONS = {
    ".json": ("fhir", "json"),
    ".xml": ("fhir", "xml"),
    ".ndjson": ("fhir", "ndjson"),
    ".jsonl": ("fhir", "ndjson"),
    ".hl7": ("hl7", "text"),
}


def detect(path: Path, head: bytes) -> tuple[str, str]:
    """``(format, content_type)`` for a file whose first bytes are ``head``."""
    by_name = EXTENSIONS.get(path.suffix.lower())
    if by_name is not None:
        return by_name
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"{"):
        lines = [line for line in text.splitlines() if line.strip()]
        multi = len(lines) > 1 and all(line.lstrip().startswith(b"{") for line in lines[:2])
        return (
            ("fhir", "ndjson") if multi and lines[0].rstrip().endswith(b"}") else ("fhir", "json")
        )
    if text.startswith(b"<") or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return ("fhir", "xml")
    return ("hl7", "text")
