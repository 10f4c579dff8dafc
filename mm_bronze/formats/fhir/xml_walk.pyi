# The C module built from xml_walk.c (see xml_decider).
from typing import Any

def walk(
    data: bytes, context: tuple[Any, ...], /
) -> tuple[list[tuple[str, Any]], bytes | None] | None: ...

MAX_DEPTH: int
KINDS: tuple[int, ...]
