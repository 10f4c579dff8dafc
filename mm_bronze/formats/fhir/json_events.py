"""Walks FHIR JSON given as parser events (ijson's ``basic_parse`` vocabulary) and pieces.

Bodies too large to decode at once are split by ``json_stream.JsonSplitter``: the containers
too large to decode arrive here as events, and every value inside them that fits in a piece
arrives decoded (``piece``), checked in its place by ``json_tree.TreeWalker``; nothing is
held whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mm_bronze.formats.fhir import shown
from mm_bronze.formats.fhir.json_tree import TreeWalker
from mm_bronze.formats.fhir.long_string import LongString
from mm_bronze.formats.fhir.model import Element
from mm_bronze.formats.fhir.structure import MAX_DEPTH, Node, StructureChecker, too_deep

Event = tuple[str, Any]


class _Object:
    __slots__ = (
        "element",
        "ext",
        "key",
        "keys",
        "node",
        "parent",
        "path",
        "pending",
        "typed",
        "unchecked",
    )

    def __init__(self, node: Node | None, path: str, parent: Node | None, pending: bool) -> None:
        self.node = node
        self.path = path
        self.parent = parent  # for a resource still waiting for its resourceType
        self.pending = pending
        self.unchecked = False
        self.typed = False  # a resource's resourceType has been seen
        self.key: str | None = None
        self.element: Element | None = None
        self.ext = False
        self.keys: set[str] = set()

    def child_path(self) -> str:
        return f"{self.path}.{self.key}" if self.path else str(self.key)

    def shown_child_path(self) -> str:
        """``child_path`` as a finding may show it (``shown.name``)."""
        key = shown.name(str(self.key))
        return f"{self.path}.{key}" if self.path else key


class _Array:
    __slots__ = ("element", "ext", "index", "owner", "path")

    def __init__(self, owner: _Object, element: Element, path: str, ext: bool) -> None:
        self.owner = owner
        self.element = element
        self.path = path
        self.ext = ext
        self.index = 0


class _Skip:
    """A subtree that is not checked (unknown, or already wrong): only its nesting and the
    uniqueness of its keys are followed."""

    __slots__ = ("depth", "keys", "path")

    def __init__(self, path: str, is_map: bool) -> None:
        self.depth = 1
        self.path = path
        self.keys: list[set[str] | None] = [set() if is_map else None]

    def event(self, kind: str, value: Any, checker: StructureChecker) -> None:
        if kind == "map_key":
            keys = self.keys[-1]
            assert keys is not None
            if value in keys:
                message = f"Duplicate property {shown.quoted(value)}"
                checker.error("structure", message, self.path or None)
            keys.add(value)
        elif kind == "start_map":
            self.depth += 1
            self.keys.append(set())
        elif kind == "start_array":
            self.depth += 1
            self.keys.append(None)
        elif kind in ("end_map", "end_array"):
            self.depth -= 1
            self.keys.pop()


class JsonWalker:
    """Feeds one JSON resource's events to a ``StructureChecker``."""

    def __init__(self, checker: StructureChecker) -> None:
        self.checker = checker
        self.tree = TreeWalker(checker)
        # What the Bundle rules need of each of consecutive Bundle entries (their bytes,
        # nested at most so deep) if it is valid, else None, when a compiled fast path
        # exists for the version (``fast.decider.entries_facts``).
        self.entries_facts: Callable[[list[bytes], int], list[Any]] | None = None
        self.stack: list[_Object | _Array | _Skip] = []
        self.started = False
        self.depth = 0  # JSON nesting: objects and arrays

    def root(self, document: Any, data: bytes) -> None:
        """The whole document, decoded from ``data`` at once."""
        self.started = True
        self.tree.check(document, data)

    def piece(self, value: Any, data: bytes) -> None:
        """A complete value, decoded from ``data``, where the events so far expect one."""
        top = self.stack[-1]
        if not isinstance(value, dict | list):
            if not isinstance(top, _Skip):
                self._scalar(top, value)
            return
        if isinstance(top, _Array):
            here = f"{top.path}[{top.index}]"
        else:
            here = top.child_path() if isinstance(top, _Object) else top.path
        tree = self.tree
        tree.depth, tree.keys = self.depth, 0
        self._delegate(top, value)
        tree.repeated_keys(value, data, here, self.depth)

    def takes_entries(self) -> bool:
        """The events so far expect the next entry of the root Bundle, and the fast path may
        take it (``fast_entries``)."""
        top = self.stack[-1] if self.stack else None
        return not (
            self.entries_facts is None
            or not isinstance(top, _Array)
            or top.ext
            or top.element.type != "BundleEntry"
            or top.owner.node is None
            or top.owner.node is not self.checker.root
        )

    def fast_entries(self, pieces: list[bytes]) -> list[tuple[Any, ...] | None]:
        """What the fast path finds of ``pieces``, the next entries of the root Bundle
        (``takes_entries``): for each, its facts for ``take_entry`` if it is valid, else None
        (decode and walk it as any piece, in order, after the entries before it)."""
        assert self.entries_facts is not None
        return self.entries_facts(pieces, MAX_DEPTH - self.depth)

    def take_entry(self, facts: tuple[Any, ...]) -> None:
        """The next entry of the root Bundle, valid, by the facts the fast path found."""
        top = self.stack[-1]
        assert isinstance(top, _Array)
        top.index += 1
        self.checker.entry(*facts)

    def _delegate(self, top: _Object | _Array | _Skip, value: Any) -> None:
        """Check a decoded object or array in the place ``top`` expects a value."""
        tree = self.tree
        if isinstance(top, _Array):
            element, path, ext = self._target(top)
            owner = top.owner
            if owner.node is None or owner.unchecked:
                return
            if ext:
                tree.extension_item(owner.node, path, value)
            elif element is not None:
                tree.value(owner.node, element, value, path, in_array=True)
        elif isinstance(top, _Object):
            if top.element is None or top.node is None or top.unchecked or top.key is None:
                return
            if top.ext:
                tree.extension(top.node, top.key, top.element, value)
            else:
                tree.member(top.node, top.key, top.element, value)

    def long_string(self, value: LongString) -> None:
        """A string too long to hold, where the events so far expect a value."""
        if not self.stack:
            self.checker.findings.add(
                "fatal", "structure", "FHIR JSON must be a JSON object (a resource)"
            )
        top = self.stack[-1]
        if not isinstance(top, _Skip):
            self._scalar(top, value)

    def where(self) -> str | None:
        """The path of the innermost open container."""
        return self._path()

    def send(self, event: Event) -> None:
        kind, value = event
        if not self.started:
            self.started = True
            if kind != "start_map":
                self.checker.findings.add(
                    "fatal", "structure", "FHIR JSON must be a JSON object (a resource)"
                )
        if kind == "start_map" or kind == "start_array":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                too_deep(self.checker.findings, "JSON", self._path())
        elif kind == "end_map" or kind == "end_array":
            self.depth -= 1
        top = self.stack[-1] if self.stack else None
        if isinstance(top, _Skip):
            top.event(kind, value, self.checker)
            if top.depth == 0:
                self.stack.pop()
            return
        if kind == "map_key":
            assert isinstance(top, _Object)
            self._key(top, value)
        elif kind == "start_map":
            self._start_map(top)
        elif kind == "end_map":
            self._end_map()
        elif kind == "start_array":
            self._start_array(top)
        elif kind == "end_array":
            self._end_array()
        else:
            self._scalar(top, value)

    def _path(self) -> str | None:
        return (self.stack[-1].path or None) if self.stack else None

    def _key(self, top: _Object, key: str) -> None:
        top.key = key
        top.element = None
        top.ext = False
        if key in top.keys:
            message = f"Duplicate property {shown.quoted(key)}"
            self.checker.error("structure", message, top.shown_child_path())
        top.keys.add(key)
        if key == "resourceType" and (top.pending or top.unchecked):
            return
        if top.pending:
            # A streamed resource whose resourceType comes later: its type is not known
            # while its other elements pass, so their structure cannot be checked.
            top.pending = False
            top.unchecked = True
            self.checker.findings.add(
                "information",
                "informational",
                "resourceType is not the first property of this streamed resource: "
                "its elements were not checked",
                expression=top.path or None,
            )
            return
        if top.node is None or top.unchecked:
            return
        if key.startswith("_") and len(key) > 1:
            element = self.checker.child(top.node, key[1:])
            if element is not None and not element.primitive:
                message = f"Unrecognized property {shown.quoted(key)}"
                self.checker.error("structure", message, top.shown_child_path())
                element = None
            top.ext = True
        else:
            element = self.checker.child(top.node, key)
        top.element = element

    def _target(self, top: _Object | _Array | None) -> tuple[Element | None, str, bool]:
        if isinstance(top, _Array):
            path = f"{top.path}[{top.index}]"
            top.index += 1
            return top.element, path, top.ext
        assert isinstance(top, _Object)
        return top.element, top.child_path(), top.ext

    def _start_map(self, top: _Object | _Array | _Skip | None) -> None:
        if top is None:
            self.stack.append(_Object(None, "", None, pending=True))
            return
        assert not isinstance(top, _Skip)
        element, path, ext = self._target(top)
        owner = top.owner if isinstance(top, _Array) else top
        if element is None or owner.node is None:
            self.stack.append(_Skip(path, True))
            return
        if isinstance(top, _Object) and element.many and not ext:
            self.checker.error("structure", f"{path} must be an array", path)
        if ext:
            info = self.checker.model.type("Element") if self.checker.model else None
            self.stack.append(_Object(Node(info, path, owner.node), path, None, pending=False))
        elif element.primitive:
            self.checker.error(
                "structure", f"{path} must be a primitive value, not an object", path
            )
            self.stack.append(_Skip(path, True))
        elif element.type == "Resource":
            self.stack.append(_Object(None, path, owner.node, pending=True))
        else:
            node = self.checker.open_complex(element, path, owner.node)
            self.stack.append(_Object(node, path, None, pending=False))

    def _end_map(self) -> None:
        frame = self.stack.pop()
        assert isinstance(frame, _Object)
        if (
            (frame.pending or frame.unchecked)
            and not frame.typed
            and frame.node is None
            and frame.path  # the validator rejects a root without one as not FHIR
        ):
            self.checker.error(
                "required", "a resource must have a resourceType", frame.path or None
            )
        elif frame.node is not None and not frame.unchecked:
            self.checker.close(frame.node)

    def _start_array(self, top: _Object | _Array | _Skip | None) -> None:
        assert top is not None and not isinstance(top, _Skip)  # a root array is fatal
        if isinstance(top, _Array):
            path = f"{top.path}[{top.index}]"
            self.checker.error("structure", f"{path}: arrays must not contain arrays", path)
            self.stack.append(_Skip(path, False))
            return
        element = top.element
        if element is None or top.node is None:
            self.stack.append(_Skip(top.child_path(), False))
            return
        if not element.many:
            self.checker.error(
                "structure",
                f"{top.node.type}.{element.name}: max allowed = 1, but found an array",
                top.child_path(),
            )
            self.stack.append(_Skip(top.child_path(), False))
            return
        self.stack.append(_Array(top, element, top.child_path(), top.ext))

    def _end_array(self) -> None:
        frame = self.stack.pop()
        assert isinstance(frame, _Array)
        if frame.index == 0:
            self.checker.error("structure", f"{frame.path}: arrays must not be empty", frame.path)

    def _scalar(self, top: _Object | _Array | _Skip | None, value: Any) -> None:
        if top is None:
            return
        assert not isinstance(top, _Skip)
        if isinstance(top, _Object) and top.key == "resourceType" and top.node is None:
            if top.pending or top.unchecked:
                top.typed = True
                name = value.prefix if isinstance(value, LongString) else value
                top.node = self.checker.open_resource(name, top.path, top.parent)
                top.unchecked = top.unchecked or top.node is None or top.node.info is None
                if top.node is not None and not top.path:
                    top.path = top.node.path
                top.pending = False
            return
        element, path, ext = self._target(top)
        owner = top.owner if isinstance(top, _Array) else top
        if element is None or owner.node is None or owner.unchecked:
            return
        node = owner.node
        if value is None:
            if not isinstance(top, _Array):
                self.checker.error("structure", f"{path}: null is not allowed", path)
            return
        if ext:
            self.checker.error("structure", f"{path} must be an object", path)
        elif isinstance(top, _Object) and element.many:
            self.checker.error("structure", f"{path} must be an array", path)
        elif not element.primitive:
            self.checker.error("structure", f"{path} must be an object", path)
        elif isinstance(value, LongString):
            self.checker.long_value(node, element, value, path)
        else:
            self.checker.value(node, element, value, path, json=True)
