"""The metadata of a FHIR XML payload the fast path accepts, from the values it noted, and
the Bundle rules of the walker (``structure.StructureChecker``) checked on them.

Notes come in document order: ``resourceType`` first, the root's ``id``, its meta's
``profile`` and ``lastUpdated``; in a root Bundle its ``type`` and, per entry, ``entry``
(with what the entry has seen) followed by that entry's ``fullUrl``, ``entryType`` (its
resource's type) and ``versionId`` (of that resource's meta).
"""

from __future__ import annotations

from typing import Any

from mm_bronze.formats.fhir.structure import (
    REPEATING_BUNDLES,
    REQUEST_BUNDLES,
    RESPONSE_BUNDLES,
)

# An entry: what it has seen, its resource's type, fullUrl, versionId, the Bundle type
# known when it ended.
Entry = list[Any]


def summary(notes: list[tuple[str, Any]], bundle_types: frozenset[str]) -> dict[str, Any] | None:
    """What the walker's ``Summary.metadata`` says, or None if a Bundle rule fails."""
    out: dict[str, Any] = {}
    profiles: list[str] = []
    last_updated: str | None = None
    bundle_type: str | None = None
    entries: list[Entry] = []
    for name, value in notes:
        if name == "resourceType":
            out["resource_type"] = value
        elif name == "id":
            out["id"] = value
        elif name == "profile":
            profiles.append(value)
        elif name == "lastUpdated":
            last_updated = value
        elif name == "type":
            bundle_type = value
        elif name == "entry":
            entries.append([value, None, None, None, bundle_type])
        elif name == "entryType":
            entries[-1][1] = value
        elif name == "fullUrl":
            entries[-1][2] = value
        else:  # versionId
            entries[-1][3] = value
    if out.get("resource_type") == "Bundle":
        if bundle_type not in bundle_types or not _entries_hold(entries, bundle_type):
            return None
        types: dict[str, int] = {}
        for entry in entries:
            if entry[1] is not None:
                types[entry[1]] = types.get(entry[1], 0) + 1
        out["bundle_type"] = bundle_type
        out["entry_count"] = len(entries)
        out["entry_types"] = dict(sorted(types.items()))
    if profiles:
        out["profiles"] = profiles
    if last_updated is not None:
        out["last_updated"] = last_updated
    return out


def _entries_hold(entries: list[Entry], bundle_type: str | None) -> bool:
    """bdl-7 (a fullUrl repeats only with another meta.versionId, but in a history), and an
    entry without a resource has a request or a response where the Bundle type allows."""
    full_urls: dict[tuple[str, str | None], int] = {}
    for index, (seen, resource_type, full_url, version_id, known_type) in enumerate(entries):
        if full_url is not None:
            first = full_urls.setdefault((full_url, version_id), index)
            if first != index and known_type not in REPEATING_BUNDLES:
                return False
        if resource_type is None and "resource" not in seen:
            request = bundle_type in REQUEST_BUNDLES and "request" in seen
            response = bundle_type in RESPONSE_BUNDLES and "response" in seen
            if not (request or response):
                return False
    return True
