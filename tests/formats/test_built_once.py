"""What a FHIR version builds once is frozen out of the collector's full passes."""

from __future__ import annotations

import gc
import weakref

from mm_bronze.formats.built_once import built_once


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector could free it


def test_built_once_caches_and_freezes_what_it_built() -> None:
    builds: list[str] = []

    @built_once
    def build(version: str) -> list[Node]:
        builds.append(version)
        return [Node() for _ in range(100)]

    gc.collect()
    before = gc.get_freeze_count()
    built = build("R9")
    assert build("R9") is built
    assert builds == ["R9"]
    assert gc.get_freeze_count() >= before + 101  # the list and its nodes at least
    tracked = {id(obj) for obj in gc.get_objects()}  # frozen objects are no longer listed
    assert id(built) not in tracked
    assert not any(id(node) in tracked for node in built)


def test_garbage_is_collected_before_the_freeze() -> None:
    garbage: list[weakref.ref[Node]] = []

    @built_once
    def build(version: str) -> int:
        garbage.append(weakref.ref(Node()))  # a cycle left to the collector
        return 1

    gc.disable()  # no pass may run before the one built_once makes
    try:
        build("R9")
        assert garbage[0]() is None  # collected, not frozen for the life of the process
    finally:
        gc.enable()
