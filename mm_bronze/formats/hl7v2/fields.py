"""What mm-bronze checks in HL7 v2 segments: required fields and a few datatypes.

The required fields are those the base standard (v2.3 to v2.8) marks required and that
identify a message and its subject; optional or profile-specific requirements are left to
downstream validation, as bronze keeps the raw data.
"""

from __future__ import annotations

import re

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
