"""Query parameters a route does not take, or takes more than once: which, and why (no
framework here, so that every app that answers HTTP can use it: the door, the metrics port)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def misused(pairs: Iterable[tuple[str, str]], known: Sequence[str]) -> tuple[str, str] | None:
    """The first of ``pairs`` (name, value, in the order given) whose name is not one of
    ``known`` or repeats an earlier one, and why; None when every parameter is fine."""
    seen: set[str] = set()
    for name, _ in pairs:
        if name not in known:
            if not known:
                return name, "unknown parameter; this route takes none"
            return name, f"unknown parameter; known: {', '.join(known)}"
        if name in seen:
            return name, "given more than once"
        seen.add(name)
    return None
