"""Generate ``mm_bronze/formats/fhir/fast/<version>.py``: msgspec Structs per FHIR type, and
``<version>_lean.py``: the lean types, the same without the elements data seldom holds.

Run after changing ``definitions/<version>.json`` or this script::

    python tools/generate_fhir_structs.py          # every version
    python tools/generate_fhir_structs.py R4       # one

From each definition table it writes one ``Struct`` per resource and datatype, built so that
decoding a payload into them accepts only what the walker (``json_tree``) accepts:

- unknown elements are refused (``forbid_unknown_fields``);
- a resource is tagged by ``resourceType``; an element of type ``Resource`` (``contained``,
  ``Bundle.entry.resource``, ...) is the union of every resource of the version;
- an element that repeats is a non-empty list (``null`` items allowed, as in the walker), any
  other element a single value (``null`` refused); required elements have no default;
- a primitive ``name`` has its ``_name`` sibling (an ``Element``: id and extensions), except
  a member of a ``[x]`` choice group (``_valueString`` is rare: the walker checks it);
- primitive values are checked by the types of ``fast/primitives.py``, except the string
  formats (code, uri, id, date, ...: ``CHECKED``) and decimals (kept as their JSON text),
  whose values ``__post_init__`` appends to the batches that ``fast/formats.py`` checks once
  per document;
- ``__post_init__`` also checks that at most one element of each ``[x]`` choice group is
  present, and one if the group is required;
- fields are declared in the specification's order (``"@order"``), each primitive followed by
  its ``_name`` sibling: the order in which serializers write them, which msgspec finds
  fastest.

The lean types leave out (``_left_out``) what bulk data seldom holds: the ``_name`` siblings,
``modifierExtension``, ``implicitRules``, the ``id`` of an element (a resource's is kept) and
the members of ``Extension.value[x]`` other than primitives and ``COMMON_VALUES``. Each of
them decodes exactly the payloads the full type decodes that hold none of those, to the same
values (what is left out stays unset), and refuses the others as unknown elements. msgspec
works on every field a Struct declares, set or not (filling in its default when decoding,
visiting it when encoding, releasing it when freed): the lean types of a bulk export have
about 40 % fewer fields (Synthea NDJSON), so it decodes, encodes and frees them in 10 % less
time.

The output is deterministic; ``tests/formats/test_fhir_fast.py`` fails when it is stale.
"""

from __future__ import annotations

import json
import keyword
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT / "mm_bronze" / "formats" / "fhir" / "definitions"
OUT = ROOT / "mm_bronze" / "formats" / "fhir" / "fast"
VERSIONS = ("R4", "R4B", "R5")

# FHIR primitive -> its type in fast/primitives.py (the format of a ``String`` is checked in
# ``__post_init__``, see ``CHECKED``).
PRIMITIVES = {
    "boolean": "Boolean",
    "integer": "Integer",
    "positiveInt": "PositiveInt",
    "unsignedInt": "UnsignedInt",
    "decimal": "Decimal",
    **dict.fromkeys(
        "string markdown xhtml code id uri url canonical oid uuid date dateTime instant time"
        " integer64 base64Binary".split(),
        "String",
    ),
}

# Primitives whose format is checked in batches (``fast/formats.py``) rather than by a msgspec
# pattern (a Python ``re`` call per value from C): the field itself is a non-empty string, and
# ``__post_init__`` appends its value to the list of its format (uri, url and canonical share
# one check).
CHECKED = {
    "code": "code",
    "uri": "uri",
    "url": "uri",
    "canonical": "uri",
    "id": "id",
    "date": "date",
    "dateTime": "dateTime",
    "instant": "instant",
    "time": "time",
    "oid": "oid",
    "uuid": "uuid",
    "integer64": "integer64",
    "base64Binary": "base64Binary",
}
# Decimals are ``msgspec.Raw`` (their JSON text), checked in batches as well: a single value
# must be a number, an item of a list a number or ``null`` (a union of Raw and None does not
# decode).
DECIMAL_FORMATS = {False: "decimal", True: "decimals"}
FORMATS = tuple(dict.fromkeys([*CHECKED.values(), *DECIMAL_FORMATS.values()]))

# The complex types of the ``Extension.value[x]`` members the lean types keep (with every
# primitive member): the types of most extensions that patient data carries (US Core's and
# the core specification's: race and ethnicity, birth sex and place, geolocation, data absent
# reason, ...).
COMMON_VALUES = frozenset(
    "CodeableConcept Coding Reference Address Period Quantity Identifier HumanName".split()
)

# A single choice group with this many members (Extension.value[x]) is counted from the
# fields set (one C call) rather than by one comparison per member.
LARGE_GROUP = 8
# A choice group this small is checked by tests that stop at the first member present.
SMALL_GROUP = 8

HEADER = '''"""FHIR {version} types for the fast path{lean}. GENERATED by
tools/generate_fhir_structs.py from definitions/{version}.json: do not edit by hand.
"""

# ruff: noqa: E501, UP007
# mypy: ignore-errors
from __future__ import annotations

import typing as _t

import msgspec as _ms

from mm_bronze.formats.fhir.fast import formats as _f
from mm_bronze.formats.fhir.fast import primitives as _p

_U = _ms.UNSET
''' + "".join(
    f'_a_{name} = _f.APPEND["{name}"]\n_e_{name} = _f.EXTEND["{name}"]\n' for name in FORMATS
)


RESOLVE = """

def _resolve_annotations() -> None:
    names = globals()
    for struct in _STRUCTS:
        annotations = struct.__annotations__
        for field, alias in annotations.items():
            annotations[field] = names[alias]


_resolve_annotations()
"""


LEAN = ", lean: without the elements data seldom holds"


def module_name(version: str, lean: bool = False) -> str:
    return f"{version.lower()}_lean" if lean else version.lower()


def attribute(name: str) -> str:
    return f"{name}_" if keyword.iskeyword(name) else name


def render(version: str, data: dict[str, Any], lean: bool = False) -> str:
    resources = set(data["resources"])
    types: dict[str, dict[str, Any]] = data["types"]
    out = [HEADER.format(version=version, lean=LEAN if lean else "")]
    aliases: dict[str, str] = {}
    for type_name, raw in types.items():
        out.append(_struct(type_name, raw, type_name in resources, aliases, lean))
    union = ", ".join(sorted(resources))
    out.append(f"\nAnyResource = _t.Union[{union}]\n")
    # Each field is annotated with the name of its type, built once here and put in place of
    # the name: msgspec would otherwise compile and evaluate every string annotation (about
    # 10,000 of them) when the first decoder is built.
    out.append("\n")
    out.extend(f"{alias} = {expression}\n" for expression, alias in aliases.items())
    out.append(f"\n_STRUCTS = ({', '.join(types)},)\n")
    out.append(RESOLVE)
    return "".join(out)


def _alias(expression: str, aliases: dict[str, str]) -> str:
    return aliases.setdefault(expression, f"_T{len(aliases)}")


def _primitive(element_type: str, name: str, is_resource: bool) -> str:
    """The FHIR primitive an element is checked as (``id`` only for a resource's id)."""
    if element_type == "id" and not is_resource:
        return "string"  # Element.id is any string; only a resource id is an ``id``
    return element_type


def _value_type(element_type: str, name: str, is_resource: bool) -> str:
    if element_type == "Resource":
        return "AnyResource"
    if element_type in PRIMITIVES:
        primitive = _primitive(element_type, name, is_resource)
        return "_p.String" if primitive in CHECKED else f"_p.{PRIMITIVES[primitive]}"
    return element_type


def _format_check(attr: str, name: str, many: bool, required: bool) -> str:
    """Append the value(s) of ``attr`` to the batch of format ``name`` (``fast/formats.py``)."""
    if required:  # never UNSET (nor null)
        return f"        _{'e' if many else 'a'}_{name}(self.{attr})\n"
    if many:
        return f"        if self.{attr} is not _U:\n            _e_{name}(self.{attr})\n"
    return f"        v = self.{attr}\n        if v is not _U:\n            _a_{name}(v)\n"


def _one_of(members: list[str], required: bool, where: str) -> str:
    """At most one (exactly one if ``required``) of ``members`` holds: the first that holds
    must be the last, tested without counting (no arithmetic on booleans)."""
    error = f'raise _p.ChoiceError("{where}: {"exactly" if required else "at most"} one")'
    out = []
    for index, member in enumerate(members[:-1]):
        rest = " or ".join(members[index + 1 :])
        keyword = "if" if index == 0 else "elif"
        out.append(f"        {keyword} {member}:\n")
        out.append(f"            if {rest}:\n                {error}\n")
    if required:
        out.append(f"        elif not ({members[-1]}):\n            {error}\n")
    return "".join(out)


def _struct(
    type_name: str, raw: dict[str, Any], is_resource: bool, aliases: dict[str, str], lean: bool
) -> str:
    base = f'_p.Resource, tag="{type_name}"' if is_resource else "_p.Complex"
    base += ", kw_only=True"  # required elements follow optional ones
    lines = [f"\n\nclass {type_name}({base}):\n"]
    groups: dict[str, list[str]] = {}
    attrs: list[tuple[str, str | None, bool]] = []  # (attribute, choice group, required)
    checks: list[str] = []
    member_formats: dict[str, str] = {}  # choice member -> its format (a member is single)
    # Fields in the specification's order ("@order"), the order serializers write them in:
    # msgspec looks a key up from the field after the last one found, so keys that come in
    # field order are each found at once (6-9 % less CPU than alphabetical fields to validate
    # and hash a Synthea bundle).
    order = raw.get("@order") or sorted(name for name in raw if not name.startswith("@"))
    for name in order:
        spec = raw[name]
        if lean and _left_out(type_name, name, spec, is_resource):
            continue
        element_type, card = spec[0], spec[1]
        many, required = card in "*+", card in "1+"
        choice = spec[2] if len(spec) > 2 else None
        value = _value_type(element_type, name, is_resource)
        attr = attribute(name)
        if many:
            item = value if element_type == "decimal" else f"{value} | None"
            annotation = f"_t.Annotated[list[{item}], _p.NonEmpty]"
        else:
            annotation = value
        if required and choice is None:
            field = "" if attr == name else f' = _ms.field(name="{name}")'
            lines.append(f"    {attr}: {_alias(annotation, aliases)}{field}\n")
        else:
            field = "" if attr == name else f'_ms.field(default=_U, name="{name}")'
            default = field or "_U"
            optional = _alias(f"{annotation} | _ms.UnsetType", aliases)
            lines.append(f"    {attr}: {optional} = {default}\n")
        present = [attr]
        checked = _checked_format(element_type, name, is_resource, many)
        if checked is not None:
            if choice is None:
                checks.append(_format_check(attr, checked, many, required))
            else:
                member_formats[attr] = checked
        attrs.append((attr, choice, required and choice is None))
        if element_type in PRIMITIVES and choice is None and not lean:
            ext = "list[Element | None] | Element" if many else "Element"
            optional = _alias(f"{ext} | _ms.UnsetType", aliases)
            lines.append(f'    {name}_ext: {optional} = _ms.field(default=_U, name="_{name}")\n')
            present.append(f"{name}_ext")
            attrs.append((f"{name}_ext", None, False))
        if choice is not None:
            groups.setdefault(choice, []).append(
                " or ".join(f"self.{a} is not _U" for a in present)
            )
    required_choices = set(raw.get("@required_choices", ()))
    after = ""
    if _counted(groups):
        (group,) = groups
        checks.append(_counted_group(type_name, group, group in required_choices, attrs))
        if member_formats:
            table = f"_M_{type_name}"
            checks.append(
                f"        for k, v in s:\n            a = {table}.get(k)\n"
                "            if a is not None:\n                a(v)\n"
            )
            items = ", ".join(f'"{attr}": _a_{fmt}' for attr, fmt in member_formats.items())
            after = f"\n\n# The format of each member of {type_name}.{group}[x] that has one.\n"
            after += f"{table} = {{{items}}}\n"
    else:
        checks += [_format_check(attr, fmt, False, False) for attr, fmt in member_formats.items()]
        checks += _choice_checks(type_name, groups, required_choices)
    if checks:
        lines.append("\n    def __post_init__(self) -> None:\n")
        lines.extend(checks)
    if len(lines) == 1:
        lines.append("    pass\n")
    return "".join(lines) + after


def _left_out(type_name: str, name: str, spec: list[Any], is_resource: bool) -> bool:
    """The lean types leave this element out (never a required one)."""
    if name in ("modifierExtension", "implicitRules") or (name == "id" and not is_resource):
        return True
    element_type = spec[0]
    return (
        type_name == "Extension"
        and len(spec) > 2  # a member of value[x]
        and element_type not in PRIMITIVES
        and element_type not in COMMON_VALUES
    )


def _checked_format(element_type: str, name: str, is_resource: bool, many: bool) -> str | None:
    """The batch (``fast/formats.py``) an element's values are checked in, if any."""
    if element_type == "decimal":
        return DECIMAL_FORMATS[many]
    if element_type in PRIMITIVES:
        return CHECKED.get(_primitive(element_type, name, is_resource))
    return None


def _choice_checks(
    type_name: str, groups: dict[str, list[str]], required_choices: set[str]
) -> list[str]:
    """At most one member of each choice group (exactly one of a required group), each
    member's presence tested in Python (``_counted`` groups are counted in C instead)."""
    checks = []
    for group, members in groups.items():
        count = " + ".join(f"({m})" for m in members) if len(members) > 1 else f"({members[0]})"
        required_group = group in required_choices
        if 1 < len(members) <= SMALL_GROUP:
            checks.append(_one_of(members, required_group, f"{type_name}.{group}[x]"))
        elif required_group:
            checks.append(
                f"        if {count} != 1:\n"
                f'            raise _p.ChoiceError("{type_name}.{group}[x]: exactly one")\n'
            )
        elif len(members) > 1:
            checks.append(
                f"        if {count} > 1:\n"
                f'            raise _p.ChoiceError("{type_name}.{group}[x]: at most one")\n'
            )
    return checks


def _counted(groups: dict[str, list[str]]) -> bool:
    """A single choice group of ``LARGE_GROUP`` members or more (Extension.value[x])."""
    return len(groups) == 1 and len(next(iter(groups.values()))) >= LARGE_GROUP


def _counted_group(
    type_name: str, group: str, required: bool, attrs: list[tuple[str, str | None, bool]]
) -> str:
    """The check of a counted group (``_counted``). ``__rich_repr__`` lists, in C, the fields
    that are set (the Structs leave their defaults out of it): ``n`` of them are not
    required. Two members can be set only if ``n`` is above one, and only then are the
    optional fields outside the group counted, one comparison each (always, if the group is
    required). The loop that follows checks the format of the member set, if it has one
    (``_M_<type>``): about half the cost of ``astuple`` and a comparison per member."""
    others = " + ".join(f"(self.{a} is not _U)" for a, c, req in attrs if c is None and not req)
    others = others or "0"
    required_others = sum(1 for _a, c, req in attrs if c is None and req)
    where = f"{type_name}.{group}[x]"
    less = f" - {required_others}" if required_others else ""
    code = f"        s = self.__rich_repr__()\n        n = len(s){less}\n"
    if required:
        return code + (
            f"        if n - ({others}) != 1:\n"
            f'            raise _p.ChoiceError("{where}: exactly one")\n'
        )
    return code + (
        f"        if n > 1 and n - ({others}) > 1:\n"
        f'            raise _p.ChoiceError("{where}: at most one")\n'
    )


def generate(version: str, lean: bool = False) -> str:
    """The source of ``fast/<version>.py`` (``<version>_lean.py`` if ``lean``) for the shipped
    definitions of ``version``."""
    data = json.loads((DEFINITIONS / f"{version}.json").read_text(encoding="utf-8"))
    return render(version, data, lean)


def main() -> None:
    for version in sys.argv[1:] or VERSIONS:
        for lean in (False, True):
            path = OUT / f"{module_name(version, lean)}.py"
            path.write_text(generate(version, lean), encoding="utf-8")
            print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
