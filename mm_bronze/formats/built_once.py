"""A cache for what is built once and kept for the life of the process."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def built_once(build: Callable[[str], T]) -> Callable[[str], T]:
    """``functools.cache`` of ``build(version)``, for what lives as long as the process (the
    model, tables and fast-path types of a FHIR version: some 30,000 objects each).

    Once built, what is left of the garbage is collected and every object still tracked is
    frozen (``gc.freeze``), as start-up's are: the collector's full passes then no longer
    scan them. Unfrozen, they made each full pass of a serving process stall every request
    for about 20 ms; frozen, a pass takes about 1 ms.
    """

    @functools.cache
    @functools.wraps(build)
    def once(version: str) -> T:
        built = build(version)
        gc.collect()
        gc.freeze()
        return built

    return once
