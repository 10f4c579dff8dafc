"""Generate ``mm_bronze/formats/fhir/definitions/<version>.json`` from ``fhir.resources``.

The door checks FHIR structure (known elements, cardinality, required elements, choice
types) against these tables; it does not depend on ``fhir.resources`` at run time. Run once
per FHIR version, each in a scratch virtual environment::

    pip install "fhir.resources==6.2.1" "pydantic<2"   # R4 (4.0.1)
    python tools/generate_fhir_definitions.py R4 fhir.resources
    pip install "fhir.resources>=8"                    # R5 (5.0.0) and R4B (4.3.0)
    python tools/generate_fhir_definitions.py R5 fhir.resources
    python tools/generate_fhir_definitions.py R4B fhir.resources.R4B

Each table maps a type name to its elements: ``[type, cardinality, choice group]`` where
cardinality is ``?`` (0..1), ``1`` (1..1), ``*`` (0..*) or ``+`` (1..*). A choice group
(``value`` for ``value[x]``) whose members are all optional but one of them is required is
listed under ``"@required_choices"``; ``"@order"`` lists the elements in the order of the
specification, which serializers follow (the fast path's Structs declare their fields in
that order: msgspec finds each key fastest when it comes in field order).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
import types
import typing
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "mm_bronze" / "formats" / "fhir" / "definitions"


def _type_name(annotation: Any) -> tuple[str, bool]:
    """(FHIR type name, is a list) from a model field annotation."""
    is_list = False
    while True:
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if isinstance(annotation, typing.ForwardRef):
            annotation = annotation.__forward_arg__
        if isinstance(annotation, str):
            text = annotation.removesuffix(" | None").removeprefix("abc.")
            return _rename(text.removesuffix("Type")), is_list
        if origin is typing.Union or origin is types.UnionType:
            annotation = next(a for a in args if a is not type(None))
            continue
        if origin in (list, typing.List):  # noqa: UP006
            is_list = True
            annotation = args[0]
            continue
        if origin is typing.Annotated:
            marker = args[1]
            return _rename(_primitive(type(marker).__name__)), is_list
        break
    name = getattr(annotation, "__name__", str(annotation))
    if name.endswith("Type") and name not in ("FHIRPrimitiveExtensionType",):
        name = name[: -len("Type")]
    if name and name[0].isupper() and _is_primitive_class(annotation):
        return _rename(_primitive(name)), is_list
    return _rename(name), is_list


# Python-side names of FHIR primitives in the models, and their FHIR names.
_RENAMES = {"bool": "boolean", "encodedBytes": "base64Binary", "uuidVersion": "uuid"}


def _rename(name: str) -> str:
    return _RENAMES.get(name, name)


def _is_primitive_class(cls: Any) -> bool:
    return inspect.isclass(cls) and not cls.__name__.endswith("Type")


def _primitive(name: str) -> str:
    return name[0].lower() + name[1:]


def _fields(model: Any) -> list[tuple[str, Any, bool, dict[str, Any]]]:
    if hasattr(model, "model_fields"):
        return [
            (f.alias or n, f.annotation, f.is_required(), f.json_schema_extra or {})
            for n, f in model.model_fields.items()
        ]
    return [
        (f.alias, f.outer_type_, f.required, dict(f.field_info.extra))
        for f in model.__fields__.values()
    ]


def build(package: str) -> dict[str, Any]:
    pkg = importlib.import_module(package)
    tables: dict[str, Any] = {}
    resources: set[str] = set()
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg or info.name.startswith(("fhirtypes", "fhirabstract", "fhirprimitive")):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not (
                hasattr(cls, "model_fields") or hasattr(cls, "__fields__")
            ):
                continue
            elements: dict[str, Any] = {}
            required_choices: set[str] = set()
            for name, annotation, required, extra in _fields(cls):
                if name.startswith("_") or name in ("resource_type", "fhir_comments"):
                    continue
                if not extra.get("element_property"):
                    continue
                type_name, is_list = _type_name(annotation)
                needed = bool(required or extra.get("element_required"))
                card = ("+" if needed else "*") if is_list else ("1" if needed else "?")
                group = extra.get("one_of_many")
                if group and extra.get("one_of_many_required"):
                    required_choices.add(group)
                elements[name] = [type_name, card, group] if group else [type_name, card]
            if elements:
                if required_choices:
                    elements["@required_choices"] = sorted(required_choices)
                elements["@order"] = _order(cls, elements)
                tables[cls.__name__] = elements
            if _is_resource(cls):
                resources.add(cls.__name__)
    return {"resources": sorted(resources), "types": dict(sorted(tables.items()))}


def _order(model: Any, elements: dict[str, Any]) -> list[str]:
    """The elements in FHIR's order (the order of the specification, which serializers
    follow), those the model does not place last."""
    sequence = model.elements_sequence() if hasattr(model, "elements_sequence") else []
    placed = [name for name in sequence if name in elements]
    return placed + sorted(name for name in elements if name not in placed and name[0] != "@")


def _is_resource(cls: Any) -> bool:
    names = [c.__name__ for c in cls.__mro__]
    abstract = ("Resource", "DomainResource", "CanonicalResource", "MetadataResource")
    return "Resource" in names and cls.__name__ not in abstract


def main() -> None:
    version, package = sys.argv[1], sys.argv[2]
    data = build(package)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{version}.json"
    path.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"{path}: {len(data['resources'])} resources, {len(data['types'])} types")


if __name__ == "__main__":
    main()
