"""A cache for what is built once and kept for the life of the process."""

from __future__ import annotations

import functools
import gc
import threading
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
        built = _on_a_thread_of_its_own(build, version)
        gc.collect()
        gc.freeze()
        return built

    return once


def _on_a_thread_of_its_own(build: Callable[[str], T], version: str) -> T:
    """``build(version)`` on a new thread, with the whole recursion limit to itself.

    Building types evaluates their annotations recursively (msgspec, ``typing``), and the
    first use may come where little recursion is left: the fast path decodes within a
    bound of its own (``decider.within_depth``), about a hundred levels, and an NDJSON line
    the lean types refuse builds the full ones there. Built in place, that raised
    ``RecursionError``."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(build(version))
        except BaseException as exc:  # handed to the caller
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"build-{build.__name__}-{version}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
