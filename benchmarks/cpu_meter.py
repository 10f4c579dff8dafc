"""CPU seconds used by whole process trees over a span of time (Linux ``/proc``).

On a shared, noisy machine req/s moves with the neighbours; CPU per request of each process
(the server, the broker, PostgreSQL, the load generator) does not, so A/B comparisons and the
machine's bound are made from it.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of ``pid``, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root`` and every live descendant (children that already
    exited are not counted: the processes measured here keep theirs alive)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            stats[int(entry)] = stat
    children: dict[int, list[int]] = {}
    for pid, (parent, _cpu) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def waited_children_cpu() -> float:
    """CPU seconds of this process' children that were waited for (e.g. ``wrk`` runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU used by named process trees (and by waited children: ``load``) between
    ``start()`` and ``stop()``."""

    def __init__(self, roots: Mapping[str, int]) -> None:
        self.roots = dict(roots)
        self._began: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {name: tree_cpu(pid) for name, pid in self.roots.items()}
        now["load"] = waited_children_cpu()
        return now

    def start(self) -> None:
        self._began = self._now()

    def stop(self) -> dict[str, float]:
        """CPU seconds per name since ``start()``."""
        return {name: used - self._began[name] for name, used in self._now().items()}


def per_request_ms(used: Mapping[str, float], requests: int) -> dict[str, float]:
    """CPU milliseconds per request for each name."""
    return {name: 1000 * seconds / max(requests, 1) for name, seconds in used.items()}


def postmaster_pid(pgdata: Path) -> int | None:
    """The postmaster's pid from ``pgdata/postmaster.pid`` (None when not readable)."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
