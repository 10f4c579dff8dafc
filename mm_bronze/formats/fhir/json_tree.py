"""Walks a decoded FHIR JSON resource (a dict from msgspec) through a ``StructureChecker``.

The fast path for bodies small enough to decode at once; ``json_events.JsonWalker``
applies the same checks to ijson's event stream for larger ones. A decoded dict keeps only
the last of repeated keys, so ``json_keys`` compares the bytes with the tree to find them.
"""

from __future__ import annotations

from typing import Any

from mm_bronze.formats.fhir.json_keys import duplicate_keys, shape
from mm_bronze.formats.fhir.model import Element
from mm_bronze.formats.fhir.structure import MAX_DEPTH, Node, StructureChecker, too_deep


class TreeWalker:
    """Checks one decoded resource, element by element."""

    def __init__(self, checker: StructureChecker) -> None:
        self.checker = checker

    def check(self, document: Any, data: bytes) -> None:
        """Check ``document``, decoded from ``data``, as the root resource.

        Nesting is measured first (without recursion): the walk below recurses once or twice
        per level, so it only starts on documents at most ``MAX_DEPTH`` deep.
        """
        findings = self.checker.findings
        keys, depth = shape(document)
        if depth > MAX_DEPTH:
            too_deep(findings, "JSON", None)
        if not isinstance(document, dict):
            findings.add("fatal", "structure", "FHIR JSON must be a JSON object (a resource)")
        self.resource(document)
        root = document.get("resourceType")
        for key, path in duplicate_keys(data, keys, root if isinstance(root, str) else ""):
            self.checker.error("structure", f"Duplicate property '{key}'", path)

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
        for key, value in document.items():
            if key == "resourceType" and resource:
                continue
            if key[:1] == "_" and len(key) > 1:
                self._primitive_extension(node, key, value)
                continue
            element = checker.child(node, key)
            if element is None:
                continue
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
                    for index, item in enumerate(value):
                        self._value(node, element, item, f"{path}[{index}]", in_array=True)
            elif element.many:
                checker.error("structure", f"{path} must be an array", path)
                if isinstance(value, dict):
                    self._value(node, element, value, path, in_array=False)
            else:
                self._value(node, element, value, path, in_array=False)
        checker.close(node)

    def _value(self, node: Node, element: Element, value: Any, path: str, in_array: bool) -> None:
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
        checker = self.checker
        element = checker.child(node, key[1:])
        path = f"{node.path}.{key}"
        if element is None:
            return
        if not element.primitive:
            checker.error("structure", f"Unrecognized property '{key}'", path)
            return
        items = value if isinstance(value, list) and element.many else [value]
        info = checker.model.type("Element") if checker.model is not None else None
        for index, item in enumerate(items):
            where = f"{path}[{index}]" if items is value else path
            if item is None and items is value:
                continue
            if not isinstance(item, dict):
                checker.error("structure", f"{where} must be an object", where)
                continue
            extension = Node(info, where, node)
            self._object(extension, item)
