"""The primitive patterns match exactly what the FHIR specification's own regexes match.

``model.PATTERNS`` says the year and the groups of the date and time patterns, and the code
pattern, more cheaply than the specification (datatypes.html); these tests hold them to the
specification's text.
"""

from __future__ import annotations

import itertools
import re

from hypothesis import given
from hypothesis import strategies as st

from mm_bronze.formats.fhir.model import PATTERNS

# The specification's patterns, verbatim.
SPEC_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
SPEC_MONTH = r"(0[1-9]|1[0-2])"
SPEC_DAY = r"(0[1-9]|[1-2][0-9]|3[0-1])"
SPEC_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
SPEC_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
SPEC = {
    "date": rf"{SPEC_YEAR}(-{SPEC_MONTH}(-{SPEC_DAY})?)?",
    "dateTime": rf"{SPEC_YEAR}(-{SPEC_MONTH}(-{SPEC_DAY}(T{SPEC_TIME}{SPEC_ZONE})?)?)?",
    "instant": rf"{SPEC_YEAR}-{SPEC_MONTH}-{SPEC_DAY}T{SPEC_TIME}{SPEC_ZONE}",
    "time": SPEC_TIME,
    "code": r"[^\s]+( [^\s]+)*",
}
# Characters date and time values are made of, and a few that are not.
ALPHABET = "0123456789-:T.Z+ 1x"


def agree(name: str, value: str) -> bool:
    return bool(re.fullmatch(SPEC[name], value)) == bool(PATTERNS[name].fullmatch(value))


def test_every_year_agrees() -> None:
    for digits in range(1, 6):
        for year in itertools.product("0123456789", repeat=digits):
            assert agree("date", "".join(year)), year


def test_every_month_day_and_zone_agrees() -> None:
    for month, day in itertools.product(range(100), range(100)):
        assert agree("date", f"2024-{month:02d}-{day:02d}")
    for hours, minutes in itertools.product(range(100), range(100)):
        for sign in "+-":
            assert agree("instant", f"2024-01-02T03:04:05{sign}{hours:02d}:{minutes:02d}")
        assert agree("time", f"{hours:02d}:{minutes:02d}:60.5")


def test_every_short_code_agrees() -> None:
    for size in range(7):
        for letters in itertools.product("a \t\u00a0", repeat=size):
            assert agree("code", "".join(letters)), letters


@given(
    name=st.sampled_from(sorted(SPEC)),
    value=st.one_of(
        st.text(ALPHABET, max_size=32),
        st.sampled_from(["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123+14:00", "12:30:00"]),
    ),
    cut=st.integers(0, 32),
    insert=st.text(ALPHABET, max_size=3),
)
def test_mutated_values_agree(name: str, value: str, cut: int, insert: str) -> None:
    assert agree(name, value)
    assert agree(name, value[:cut] + insert + value[cut:])
