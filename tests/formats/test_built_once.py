"""What a FHIR version builds once is frozen out of the collector's full passes."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

from mm_bronze.formats.built_once import built_once
from mm_bronze.formats.fhir.fast.decider import within_depth


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


def test_a_build_has_the_whole_recursion_limit_wherever_it_is_first_used() -> None:
    """The fast path decodes with about a hundred levels of recursion left
    (``within_depth``); types first used there are built all the same."""

    def nest(levels: int) -> int:
        return 0 if levels == 0 else 1 + nest(levels - 1)

    @built_once
    def build(version: str) -> int:
        return nest(sys.getrecursionlimit() // 2)

    assert within_depth(build, "R9") == sys.getrecursionlimit() // 2


NDJSON = (
    b'{"resourceType": "Patient", "id": "a"}\n\n'  # a blank line: the lines one by one
    b'{"resourceType": "Patient", "birthDate": "x"}\n'  # the lean types refuse it
)


def test_an_ndjson_line_first_to_need_the_full_types_gets_its_answer() -> None:
    """In a new process (nothing built yet), the first line the lean types refuse builds the
    full types inside the fast path's recursion bound: it used to raise RecursionError."""
    script = (
        "import sys\n"
        "from mm_bronze import formats\n"
        "from mm_bronze.errors import InvalidPayload\n"
        "v = formats.validator_for('fhir', 'ndjson', version='R4')\n"
        "v.feed(sys.stdin.buffer.read())\n"
        "try:\n"
        "    v.finish()\n"
        "except InvalidPayload as exc:\n"
        "    print(exc.reason)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=NDJSON, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "line 3: Patient.birthDate is not a valid date" in done.stdout.decode()
