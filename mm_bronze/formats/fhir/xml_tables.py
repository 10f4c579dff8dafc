"""Per-type element tables for the FHIR XML fast path, built once per version from the model.

A table maps an element's expat name (``namespace local``, as the parser reports it) to a
``Spec``: what the element is (primitive, complex, resource container, narrative ``div``),
whether it repeats, its ``[x]`` choice group, and how to check its value. Resource containers
map resource names to ``Spec``s of kind ``RESOURCE``. A root resource has its own table, in
which the primitives the summary notes (its ``id``, its ``meta``'s ``profile`` and
``lastUpdated``) are of kind ``NOTED``. Specs are plain tuples (unpacked once per element).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mm_bronze.formats.built_once import built_once
from mm_bronze.formats.fhir.model import PATTERNS, Model, TypeInfo, base64_problem, model

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"

PRIMITIVE, COMPLEX, CONTAINER, RESOURCE, NARRATIVE, NOTED, ENTRY, ENTRY_RESOURCE, TEXT = range(9)

Check = Callable[[str], object]
# kind; the name to note as seen in the parent (its ``[x]`` choice group for a choice, so
# that one member only may appear, once; None when nothing needs it: a repeating element
# that is not required); repeats (never for a choice); ``[x]`` choice group; a
# primitive's value check (truthy when valid) or the table of the element's children; what
# must have been seen when it closes; the attributes it may carry; its local name.
Spec = tuple[int, str | None, bool, str | None, Any, frozenset[str], frozenset[str], str]
Table = dict[str, Spec]
# The elements of a root resource and of its meta that the summary notes.
_NOTED = {"Resource": ("id",), "Meta": ("profile", "lastUpdated")}


# Patterns of the model that would accept an empty string (never valid in FHIR XML).
_NON_EMPTY = {name: re.compile(r"\S+") for name in ("uri", "url", "canonical")}


def _base64(value: str) -> bool:
    return base64_problem(value) is None


def check_for(type_name: str) -> Check:
    """A C-speed test of a primitive's XML value: truthy exactly when ``string_problem`` of
    the model finds nothing (non-empty, and the type's pattern)."""
    if type_name == "base64Binary":
        return _base64
    pattern = _NON_EMPTY.get(type_name) or PATTERNS.get(type_name)
    if pattern is None:
        return bool  # any non-empty string
    return pattern.fullmatch


def _need(info: TypeInfo) -> frozenset[str]:
    return frozenset(info.required) | frozenset(info.required_choices)


class Tables:
    """The tables of one FHIR version."""

    def __init__(self, fhir: Model) -> None:
        self.types: dict[str, Table] = {name: {} for name in fhir._types}
        self.needs = {name: _need(info) for name, info in fhir._types.items()}
        self.resources: Table = {}
        self.primitive: Table = {}
        nothing: frozenset[str] = frozenset()
        for name in fhir.resources:
            if name in self.types:
                self.resources[f"{FHIR_NS} {name}"] = (
                    RESOURCE,
                    name,
                    False,
                    None,
                    self.types[name],
                    self.needs[name],
                    nothing,
                    name,
                )
        for name, info in fhir._types.items():
            table = self.types[name]
            for element in info.elements.values():
                spec = self._spec(fhir, info, element.name)
                if spec is not None:
                    key = XHTML_NS if spec[0] == NARRATIVE else FHIR_NS
                    table[f"{key} {element.name}"] = spec
        extension = fhir.type("Extension")
        if extension is not None:
            self.primitive[f"{FHIR_NS} extension"] = (
                COMPLEX,
                None,
                True,
                None,
                self.types["Extension"],
                self.needs["Extension"],
                _carried(extension),
                "extension",
            )
        meta = _noted(self.types.get("Meta", {}), _NOTED["Meta"])
        self.roots: Table = {}
        for key, spec in self.resources.items():
            table = _noted(spec[4], _NOTED["Resource"])
            _replace(table, "meta", 4, meta)
            self.roots[key] = _with(spec, 4, table)
        self._bundle_entries()

    def _bundle_entries(self) -> None:
        """A root Bundle notes its ``type``, and each entry (kind ``ENTRY``) its ``fullUrl``,
        its resource's type (kind ``ENTRY_RESOURCE``) and that resource's ``meta.versionId``."""
        key = f"{FHIR_NS} Bundle"
        if key not in self.roots or "BundleEntry" not in self.types:
            return
        meta = _noted(self.types.get("Meta", {}), ("versionId",))
        resources: Table = {}
        for name, spec in self.resources.items():
            table = dict(spec[4])
            _replace(table, "meta", 4, meta)
            resources[name] = (ENTRY_RESOURCE, *spec[1:4], table, *spec[5:])
        entry = _noted(self.types["BundleEntry"], ("fullUrl",))
        _replace(entry, "resource", 4, resources)
        bundle = _noted(self.roots[key][4], ("type",))
        _replace(bundle, "entry", 4, entry)
        _replace(bundle, "entry", 0, ENTRY)
        self.roots[key] = _with(self.roots[key], 4, bundle)

    def _spec(self, fhir: Model, info: TypeInfo, name: str) -> Spec | None:
        element = info.elements[name]
        many, group = element.many, element.choice
        needed = self.needs[info.name]
        if group is not None:
            track: str | None = group
            many = False
        else:
            track = name if not many or name in needed else None
        nothing: frozenset[str] = frozenset()
        if element.type == "xhtml":
            if name != "div":
                return None
            return (NARRATIVE, track, many, group, None, nothing, nothing, name)
        if element.primitive:
            type_name = element.type
            if name == "id" and info.name not in fhir.resources:
                type_name = "string"  # Element.id is any string; only a resource id is an id
            check = check_for(type_name)
            # Any non-empty value (a string, markdown, ...) is checked in line, not called.
            kind = TEXT if check is bool else PRIMITIVE
            return (kind, track, many, group, check, nothing, nothing, name)
        if element.type == "Resource":
            return (CONTAINER, track, many, group, self.resources, nothing, nothing, name)
        child = fhir.type(element.type)
        if child is None:
            return None
        return (
            COMPLEX,
            track,
            many,
            group,
            self.types[element.type],
            self.needs[element.type],
            _carried(child),
            name,
        )


def _with(spec: Spec, index: int, value: object) -> Spec:
    return (*spec[:index], value, *spec[index + 1 :])  # type: ignore[return-value]


def _replace(table: Table, name: str, index: int, value: object) -> None:
    key = f"{FHIR_NS} {name}"
    if key in table:
        table[key] = _with(table[key], index, value)


def _noted(table: Table, names: tuple[str, ...]) -> Table:
    """A copy of ``table`` in which the primitives ``names`` are of kind ``NOTED``."""
    out = dict(table)
    for name in names:
        key = f"{FHIR_NS} {name}"
        if key in out and out[key][0] in (PRIMITIVE, TEXT):
            out[key] = _with(out[key], 0, NOTED)
    return out


def _carried(info: TypeInfo) -> frozenset[str]:
    """The attributes an element of this type may carry: ``id``, and an extension's ``url``."""
    names = {"id", "url"} if info.name == "Extension" else {"id"}
    return frozenset(n for n in names if n in info.elements)


@built_once
def tables(version: str) -> Tables:
    """The tables of a canonical version (built on first use)."""
    return Tables(model(version))
