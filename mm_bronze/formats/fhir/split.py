"""Split FHIR JSON Bundles into one file per resource (``mm-bronze fhir split``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

from mm_bronze.errors import InvalidPayload

_ID = re.compile(r"[A-Za-z0-9\-\.]{1,64}")


def split_bundle(path: Path, out_dir: Path) -> list[Path]:
    """Write each entry's resource to ``out_dir/<ResourceType>/<id>.json``; return the files.

    The file name is the resource's id, else the UUID of an ``urn:uuid:`` fullUrl, else the
    bundle's name and the entry's index. Raises ``InvalidPayload`` if ``path`` is not a
    FHIR JSON Bundle.
    """
    try:
        bundle = msgspec.json.decode(path.read_bytes())
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidPayload(f"{path.name}: malformed JSON: {exc}") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidPayload(f"{path.name}: not a FHIR Bundle")
    written = []
    for index, entry in enumerate(bundle.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            continue
        target = out_dir / _safe(resource["resourceType"]) / f"{_name(path, index, entry)}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        data = msgspec.json.format(msgspec.json.encode(resource), indent=2) + b"\n"
        if target.exists() and target.read_bytes() != data:
            target = target.with_name(f"{target.stem}-{path.stem}-{index}.json")
        target.write_bytes(data)
        written.append(target)
    return written


def _name(path: Path, index: int, entry: dict[str, Any]) -> str:
    resource_id = entry["resource"].get("id")
    if isinstance(resource_id, str) and _ID.fullmatch(resource_id):
        return resource_id
    full_url = entry.get("fullUrl")
    if isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
        candidate = full_url.removeprefix("urn:uuid:")
        if _ID.fullmatch(candidate):
            return candidate
    return f"{_safe(path.stem)}-{index}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "_"
