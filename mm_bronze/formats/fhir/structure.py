"""Structure checks shared by the FHIR JSON and XML walkers, and the metadata they extract.

A walker reports what it meets (a resource, an element, a value, the end of an object) and
``StructureChecker`` checks it against the declared version's model: known resource types,
known elements, cardinality, required elements, one choice per ``[x]`` group, primitive
value formats, and the Bundle rules (valid ``type``; entries with a resource, or a request
in a transaction/batch/history, or a response in a transaction-response/batch-response/history;
``fullUrl`` unique unless ``meta.versionId`` differs, bdl-7). Findings go to a ``Findings``; the
payload's summary to ``Summary``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mm_bronze.formats.base import Findings
from mm_bronze.formats.fhir import shown
from mm_bronze.formats.fhir.long_string import LongString
from mm_bronze.formats.fhir.model import Element, Model, TypeInfo, primitive_problem

# Deepest nesting checked (JSON objects and arrays, XML elements). Real resources stay far
# below it (a Bundle entry's contained resource's nested extension is about 12); deeper input
# is refused, so that no walker's stack or path grows with what a sender chooses.
MAX_DEPTH = 100
# Bundle types whose entries may carry only a request (no resource), e.g. a DELETE.
REQUEST_BUNDLES = frozenset({"transaction", "batch", "history"})
# Bundle types whose entries may carry only a response (no resource), e.g. a 204.
RESPONSE_BUNDLES = frozenset({"transaction-response", "batch-response", "history"})
# Bundle types in which one fullUrl may legitimately appear more than once (versions).
REPEATING_BUNDLES = frozenset({"history"})


def too_deep(findings: Findings, syntax: str, expression: str | None) -> None:
    """Refuse input nested deeper than ``MAX_DEPTH`` (raises ``InvalidPayload``)."""
    findings.add(
        "fatal",
        "too-costly",
        f"{syntax} nested deeper than {MAX_DEPTH} levels",
        expression=expression,
    )


class Node:
    """An object being checked: a resource or a complex datatype value."""

    __slots__ = (
        "entry_resource",
        "full_url",
        "info",
        "parent",
        "path",
        "seen",
        "type",
        "version_id",
    )

    def __init__(self, info: TypeInfo | None, path: str, parent: Node | None) -> None:
        self.info = info
        self.type = info.name if info else None
        self.path = path
        self.parent = parent
        self.seen: set[str] = set()
        self.full_url: str | None = None
        self.entry_resource: str | None = None
        self.version_id: str | None = None  # of an entry's resource (meta.versionId)


class Summary:
    """What a data engineer wants to know about a FHIR payload (no patient data)."""

    def __init__(self) -> None:
        self.resource_type: str | None = None
        self.id: str | None = None
        self.bundle_type: str | None = None
        self.profiles: list[str] = []
        self.last_updated: str | None = None
        self.entry_count = 0
        self.entry_types: dict[str, int] = {}
        self.full_urls: dict[tuple[str, str | None], int] = {}
        self.bare_entries: list[tuple[int, bool, bool]] = []  # (index, request?, response?)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"resource_type": self.resource_type}
        if self.id is not None:
            meta["id"] = self.id
        if self.resource_type == "Bundle":
            meta["bundle_type"] = self.bundle_type
            meta["entry_count"] = self.entry_count
            meta["entry_types"] = dict(sorted(self.entry_types.items()))
        if self.profiles:
            meta["profiles"] = self.profiles
        if self.last_updated is not None:
            meta["last_updated"] = self.last_updated
        return meta


class StructureChecker:
    """Checks one resource tree, reported element by element, against ``model``."""

    def __init__(self, model: Model | None, findings: Findings) -> None:
        self.model = model
        self.findings = findings
        self.summary = Summary()
        self.root: Node | None = None
        # Where the parser is (``line L, column C``), for walkers that know it (XML).
        self.locate: Callable[[], str] | None = None

    def error(self, code: str, message: str, expression: str | None) -> None:
        location = self.locate() if self.locate is not None else None
        self.findings.add("error", code, message, expression=expression, location=location)

    def open_resource(self, resource_type: Any, path: str, parent: Node | None) -> Node | None:
        """A resource starts (the root, a contained one, a Bundle entry's); None if unknown."""
        where = path or None
        if not isinstance(resource_type, str) or not resource_type:
            self.error("structure", "resourceType must be a non-empty string", where)
            return None
        if parent is None and self.root is None:
            self.summary.resource_type = resource_type
        elif parent is not None and self._is_entry(parent):
            parent.entry_resource = resource_type
        info: TypeInfo | None = None
        if self.model is not None:
            info = self.model.type(resource_type) if resource_type in self.model.resources else None
            if info is None:
                self.error(
                    "not-supported", shown.resource_type(resource_type, self.model.version), where
                )
        node = Node(info, path or resource_type, parent)
        if parent is None and self.root is None:
            self.root = node
        return node

    def open_complex(self, element: Element, path: str, parent: Node) -> Node:
        info = self.model.type(element.type) if self.model is not None else None
        return Node(info, path, parent)

    def child(self, node: Node, name: str) -> Element | None:
        """The definition of ``node``'s element ``name``; None (and a finding) if unknown."""
        if node.info is None:
            return None
        element = node.info.elements.get(name)
        if element is None:
            path = f"{node.path}.{shown.name(name)}"
            self.error("structure", f"Unrecognized property {shown.quoted(name)}", path)
            return None
        if element.choice is not None and element.choice in node.seen and name not in node.seen:
            self.error(
                "structure",
                f"only one {element.choice}[x] element is allowed",
                f"{node.path}.{name}",
            )
        node.seen.add(name)
        if element.choice is not None:
            node.seen.add(element.choice)
        return element

    def too_many(self, node: Node, element: Element, found: int) -> None:
        self.error(
            "structure",
            f"{node.type}.{element.name}: max allowed = 1, but found {found}",
            f"{node.path}.{element.name}",
        )

    def value(self, node: Node, element: Element, value: Any, path: str, *, json: bool) -> None:
        """A primitive value; checks its format and notes what the summary needs."""
        type_name = element.type
        if element.name == "id" and self.model and node.type not in self.model.resources:
            type_name = "string"  # Element.id is any string; only a resource id is an ``id``
        problem = primitive_problem(type_name, value, from_json=json)
        if problem is not None:
            self.error("value", f"{node.type}.{element.name} {problem}", path)
            return
        if node is self.root:
            if element.name == "id":
                self.summary.id = value
            elif element.name == "type" and node.type == "Bundle":
                self.summary.bundle_type = value
                assert self.model is not None
                if value not in self.model.bundle_types:
                    self.error("value", "Bundle.type is not a valid bundle type", path)
        elif node.parent is self.root and node.type == "Meta":
            if element.name == "profile":
                self.summary.profiles.append(value)
            elif element.name == "lastUpdated":
                self.summary.last_updated = value
        elif element.name == "fullUrl" and self._is_entry(node):
            node.full_url = value
        elif element.name == "versionId" and node.type == "Meta":
            resource = node.parent
            if resource is not None and resource.parent is not None:
                if self._is_entry(resource.parent):
                    resource.parent.version_id = value

    def long_value(self, node: Node, element: Element, value: LongString, path: str) -> None:
        """A primitive JSON string too long to hold: only its summary is checked, to the
        same verdict as ``value`` gives the whole string."""
        type_name = element.type
        if type_name in ("string", "markdown", "xhtml") or (
            element.name == "id" and self.model and node.type not in self.model.resources
        ):
            return
        problem = value.problem(type_name)
        if problem is not None:
            self.error("value", f"{node.type}.{element.name} {problem}", path)
        elif node is self.root and element.name == "type" and node.type == "Bundle":
            self.error("value", "Bundle.type is not a valid bundle type", path)
        elif element.name == "fullUrl" and self._is_entry(node):
            node.full_url = value.key()  # compared with the other entries' (bdl-7)

    def close(self, node: Node) -> None:
        """An object ends: required elements must have been seen."""
        info = node.info
        if info is not None:
            for name in info.required:
                if name not in node.seen:
                    self.error(
                        "required",
                        f"{info.name}.{name}: minimum required = 1, but only found 0",
                        f"{node.path}.{name}",
                    )
            for group in info.required_choices:
                if group not in node.seen:
                    self.error(
                        "required",
                        f"{info.name}.{group}[x]: minimum required = 1, but only found 0",
                        f"{node.path}.{group}[x]",
                    )
        if self._is_entry(node):
            self._entry(node)
        elif node is self.root and node.type == "Bundle":
            self._bundle(node)

    def _is_entry(self, node: Node) -> bool:
        return node.parent is not None and node.parent is self.root and node.type == "BundleEntry"

    def _entry(self, node: Node) -> None:
        seen = node.seen
        self.entry(
            node.entry_resource,
            "resource" in seen,
            "request" in seen,
            "response" in seen,
            node.full_url,
            node.version_id,
        )

    def entry(
        self,
        resource_type: str | None,
        has_resource: bool,
        has_request: bool,
        has_response: bool,
        full_url: str | None,
        version_id: str | None,
    ) -> None:
        """A Bundle entry ends: count it, and check the Bundle rules that involve it."""
        summary = self.summary
        index = summary.entry_count
        summary.entry_count += 1
        if resource_type is not None:
            counts = summary.entry_types
            counts[resource_type] = counts.get(resource_type, 0) + 1
        elif not has_resource:
            summary.bare_entries.append((index, has_request, has_response))
        if full_url is not None:
            # bdl-7: one fullUrl may repeat only with different meta.versionId values.
            first = summary.full_urls.setdefault((full_url, version_id), index)
            if first != index and summary.bundle_type not in REPEATING_BUNDLES:
                self.error(
                    "duplicate",
                    f"Bundle.entry[{index}].fullUrl repeats the fullUrl of entry[{first}]",
                    f"Bundle.entry[{index}].fullUrl",
                )

    def _bundle(self, node: Node) -> None:
        summary = self.summary
        kind = summary.bundle_type
        takes_request, takes_response = kind in REQUEST_BUNDLES, kind in RESPONSE_BUNDLES
        for index, has_request, has_response in summary.bare_entries:
            if (takes_request and has_request) or (takes_response and has_response):
                continue
            alternatives = [
                name
                for name, allowed in (("request", takes_request), ("response", takes_response))
                if allowed
            ]
            self.error(
                "required",
                f"Bundle.entry[{index}] has no resource"
                + (f" (nor a {' or '.join(alternatives)})" if alternatives else ""),
                f"Bundle.entry[{index}]",
            )
