"""Walks a decoded FHIR JSON resource (a dict from msgspec) through a ``StructureChecker``.

Bodies small enough to decode at once are walked whole; larger ones are split into pieces
that ``json_events.JsonWalker`` hands to the same methods (``member``, ``value``,
``extension``). A decoded dict keeps only the last of repeated keys, so ``json_keys``
compares the bytes with the tree to find them.
"""

from __future__ import annotations

from typing import Any

from mm_bronze.formats.fhir import shown
from mm_bronze.formats.fhir.json_keys import duplicate_keys, shape, written_keys
from mm_bronze.formats.fhir.model import Element
from mm_bronze.formats.fhir.structure import MAX_DEPTH, Node, StructureChecker, too_deep


class TreeWalker:
    """Checks one decoded resource, element by element."""

    def __init__(self, checker: StructureChecker) -> None:
        self.checker = checker
        self.depth = 0  # JSON nesting of the object being walked (objects and arrays)
        self.keys = 0  # keys of the objects walked

    def check(self, document: Any, data: bytes) -> None:
        """Check ``document``, decoded from ``data``, as the root resource."""
        if not isinstance(document, dict):
            self.checker.findings.add(
                "fatal", "structure", "FHIR JSON must be a JSON object (a resource)"
            )
        self.depth = self.keys = 0
        self.resource(document)
        root = document.get("resourceType")
        self.repeated_keys(document, data, root if isinstance(root, str) else "", 0)

    def repeated_keys(self, value: Any, data: bytes, path: str, depth: int) -> None:
        """Report keys repeated in ``value`` (decoded from ``data``, at ``path``, nested
        ``depth`` deep), unless the keys walked since ``self.keys`` was zeroed show none.

        Subtrees the walk skipped (unknown elements) are measured here, so that their
        nesting is bounded as well.
        """
        written = written_keys(data)
        if written == self.keys:
            return
        keys, deepest = shape(value)
        if depth + deepest > MAX_DEPTH:
            too_deep(self.checker.findings, "JSON", path or None)
        if written != keys:
            found = duplicate_keys(data, path)
            for key, where in found:
                message = f"Duplicate property {shown.quoted(key)}"
                self.checker.error("structure", message, where)
            if not found:
                self.checker.error("structure", "Duplicate property in an object", path or None)

    def resource(
        self, document: dict[str, Any], path: str = "", parent: Node | None = None
    ) -> None:
        """Check ``document`` as a resource at ``path`` (the root when ``parent`` is None)."""
        if "resourceType" not in document:
            if parent is not None:  # the validator rejects a root without one as not FHIR
                self.checker.error("required", "a resource must have a resourceType", path)
            return
        node = self.checker.open_resource(document["resourceType"], path, parent)
        if node is not None and node.info is not None:
            self._object(node, document, resource=True)

    def _object(self, node: Node, document: dict[str, Any], resource: bool = False) -> None:
        checker = self.checker
        self.depth += 1
        if self.depth > MAX_DEPTH:
            too_deep(checker.findings, "JSON", node.path)
        self.keys += len(document)
        assert node.info is not None
        elements = node.info.elements
        seen = node.seen
        for key, value in document.items():
            element = elements.get(key)
            if element is not None and element.choice is None:
                seen.add(key)  # what ``checker.child`` does for a plain element, inlined
            elif key == "resourceType" and resource:
                continue
            elif key[:1] == "_" and len(key) > 1:
                self._primitive_extension(node, key, value)
                continue
            else:
                element = checker.child(node, key)
                if element is None:
                    continue
            if element.primitive and not element.many and isinstance(value, str):
                checker.value(node, element, value, f"{node.path}.{key}", json=True)
            else:
                self.member(node, key, element, value)
        self.depth -= 1
        checker.close(node)

    def member(self, node: Node, key: str, element: Element, value: Any) -> None:
        """``value`` of ``node``'s element ``key`` (defined by ``element``)."""
        checker = self.checker
        path = f"{node.path}.{key}"
        if isinstance(value, list):
            if not element.many:
                checker.error(
                    "structure",
                    f"{node.type}.{key}: max allowed = 1, but found an array",
                    path,
                )
            elif not value:
                checker.error("structure", f"{path}: arrays must not be empty", path)
            else:
                self.depth += 1
                for index, item in enumerate(value):
                    self.value(node, element, item, f"{path}[{index}]", in_array=True)
                self.depth -= 1
        elif element.many:
            checker.error("structure", f"{path} must be an array", path)
            if isinstance(value, dict):
                self.value(node, element, value, path, in_array=False)
        else:
            self.value(node, element, value, path, in_array=False)

    def value(self, node: Node, element: Element, value: Any, path: str, in_array: bool) -> None:
        """One value (an array item when ``in_array``) of ``element`` at ``path``."""
        checker = self.checker
        if isinstance(value, dict):
            if element.primitive:
                checker.error("structure", f"{path} must be a primitive value, not an object", path)
            elif element.type == "Resource":
                self.resource(value, path, node)
            else:
                child = checker.open_complex(element, path, node)
                if child.info is not None:
                    self._object(child, value)
        elif isinstance(value, list):
            checker.error("structure", f"{path}: arrays must not contain arrays", path)
        elif value is None:
            if not in_array:
                checker.error("structure", f"{path}: null is not allowed", path)
        elif not element.primitive:
            checker.error("structure", f"{path} must be an object", path)
        else:
            checker.value(node, element, value, path, json=True)

    def _primitive_extension(self, node: Node, key: str, value: Any) -> None:
        """``_name``: the id and extensions of primitive ``name`` (an object, or an array)."""
        element = self.checker.child(node, key[1:])
        if element is None:
            return
        if not element.primitive:
            path = f"{node.path}.{shown.name(key)}"
            self.checker.error("structure", f"Unrecognized property {shown.quoted(key)}", path)
            return
        self.extension(node, key, element, value)

    def extension(self, node: Node, key: str, element: Element, value: Any) -> None:
        """``value`` of ``_name`` for ``node``'s primitive element ``name`` (``element``)."""
        path = f"{node.path}.{key}"
        if isinstance(value, list) and element.many:
            self.depth += 1
            for index, item in enumerate(value):
                if item is not None:
                    self.extension_item(node, f"{path}[{index}]", item)
            self.depth -= 1
        else:
            self.extension_item(node, path, value)

    def extension_item(self, node: Node, path: str, item: Any) -> None:
        """The id and extensions of one primitive value: an object."""
        checker = self.checker
        if not isinstance(item, dict):
            checker.error("structure", f"{path} must be an object", path)
            return
        info = checker.model.type("Element") if checker.model is not None else None
        self._object(Node(info, path, node), item)
