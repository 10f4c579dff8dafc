"""What mm-bronze checks in HL7 v2 segments, required fields and a few datatypes, and what it
reports of a message's first MSH.

The required fields are those the base standard (v2.3 to v2.8) marks required and that
identify a message and its subject; optional or profile-specific requirements are left to
downstream validation, as bronze keeps the raw data.
"""

from __future__ import annotations

import functools
import re
from typing import Any

FIELD_NAMES: dict[tuple[str, int], str] = {
    ("MSH", 1): "Field Separator",
    ("MSH", 2): "Encoding Characters",
    ("MSH", 3): "Sending Application",
    ("MSH", 4): "Sending Facility",
    ("MSH", 5): "Receiving Application",
    ("MSH", 6): "Receiving Facility",
    ("MSH", 7): "Date/Time of Message",
    ("MSH", 9): "Message Type",
    ("MSH", 10): "Message Control ID",
    ("MSH", 11): "Processing ID",
    ("MSH", 12): "Version ID",
    ("PID", 3): "Patient Identifier List",
    ("PID", 5): "Patient Name",
    ("OBR", 4): "Universal Service Identifier",
    ("OBX", 2): "Value Type",
    ("OBX", 3): "Observation Identifier",
    ("OBX", 5): "Observation Value",
    ("OBX", 11): "Observation Result Status",
    ("BTS", 1): "Batch Message Count",
    ("FTS", 1): "File Batch Count",
}

# Fields that must not be empty, per segment.
REQUIRED: dict[str, tuple[int, ...]] = {
    "MSH": (9, 10, 11, 12),
    "PID": (3,),
    "OBR": (4,),
    "OBX": (11,),
}

# The last field of each header segment any version defines (v2.9: MSH-28, FHS-17 and
# BHS-17, Special Access Restriction Instructions). A header that fills fields past it has
# the segments after it run into it.
LAST_FIELD: dict[str, int] = {"MSH": 28, "FHS": 17, "BHS": 17}

# Fields of datatype HD (hierarchic designator): namespace ID, or universal ID with type.
HD_FIELDS: dict[str, tuple[int, ...]] = {"MSH": (3, 4, 5, 6)}

NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
SN_COMPARATORS = frozenset({"", ">", "<", ">=", "<=", "=", "<>"})
SN_SEPARATORS = frozenset({"", "-", "+", "/", ".", ":"})
SEGMENT_ID = re.compile(rb"[A-Z][A-Z0-9]{2}")


def field_label(segment: str, number: int) -> str:
    name = FIELD_NAMES.get((segment, number))
    return f"{segment}-{number} ({name})" if name else f"{segment}-{number}"


# A plain ASCII number, the usual NM value, as bytes.
NUMBER_BYTES = re.compile(rb"[+-]?(\d+(\.\d*)?|\.\d+)")
SN_CHARS = frozenset("<>=+-/.:0123456789")

# MSH-3 to MSH-18, the last field a header check reads, are fields[2] to fields[17].
HEADER_FIELDS = 18


@functools.lru_cache(maxsize=128)
def sn_pattern(component: str) -> re.Pattern[bytes] | None:
    """A structured numeric (SN) value's pattern for a component character (the validator's
    ``_sn_value``): compiled once for each (128 at most)."""
    if component in SN_CHARS or not component.isascii():
        return None
    c = re.escape(component).encode()
    return re.compile(
        rb"(?:[<>=]|>=|<=|<>)?" + c + rb"(?:" + NUMBER_BYTES.pattern + rb")?"
        rb"(?:" + c + rb"[-+/.:]?(?:" + c + rb"(?:" + NUMBER_BYTES.pattern + rb")?)?)?"
    )


# A structured numeric value with the standard delimiters: ``^`` between its components.
SN_VALUE = sn_pattern("^")


def first_msh(fields: list[str], component: str) -> dict[str, Any]:
    """What the metadata reports of the first MSH (``fields`` split up to MSH-18)."""
    message_type = fields[8].split(component)
    return {
        "message_type": _part(message_type, 0),
        "trigger_event": _part(message_type, 1),
        "message_structure": _part(message_type, 2),
        "control_id": fields[9] or None,
        "processing_id": fields[10] or None,
        "hl7_version": fields[11].split(component)[0] or None,
        "sending_application": fields[2] or None,
        "sending_facility": fields[3] or None,
        "receiving_application": fields[4] or None,
        "receiving_facility": fields[5] or None,
        "accept_ack_type": fields[14] or None,
        "application_ack_type": fields[15] or None,
        "character_set": fields[17] or None,
    }


def type_key(message_type: str, component: str) -> str:
    """How ``message_types`` counts a message of MSH-9 ``message_type``: ``ORU^R01``, or the
    one part given (``""`` for neither)."""
    parts = message_type.split(component)
    event = parts[1] if len(parts) > 1 else ""
    return f"{parts[0]}^{event}" if parts[0] and event else parts[0] or event


def body_metadata(
    first: dict[str, Any],
    field_separator: str | None,
    encoding_characters: str | None,
    message_count: int,
    message_types: dict[str, int],
    batch: bool,
) -> dict[str, Any]:
    """A body's metadata: what ``first_msh`` reported of its first MSH (taken, not copied),
    then its delimiters and counts, always in this order."""
    first["field_separator"] = field_separator
    first["encoding_characters"] = encoding_characters
    first["message_count"] = message_count
    first["message_types"] = dict(sorted(message_types.items()))
    first["batch"] = batch
    return first


def _part(parts: list[str], index: int) -> str | None:
    return parts[index] if len(parts) > index and parts[index] else None


# The same keys, in the same order, when there was no MSH: every value None.
NO_MSH = first_msh([""] * HEADER_FIELDS, "^")
