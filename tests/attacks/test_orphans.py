"""Validation worker processes exit when the server is SIGKILLed (no orphans)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze

BUNDLES = "fhir-r4-bundles"


def children(pid: int) -> set[int]:
    """Every live descendant of ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_validation_workers_die_with_a_killed_server(
    tmp_path_factory: pytest.TempPathFactory, module_dsn: str, corpus: Path
) -> None:
    server = MmBronze(
        tmp_path_factory.mktemp("orphans"),
        "--http",
        env={"POSTGRES_DSN": module_dsn, "MM_BRONZE_HTTP_VALIDATION_WORKERS": "2"},
    )
    server.start()
    bundle = max((corpus / BUNDLES).glob("*.json"), key=lambda p: p.stat().st_size).read_bytes()
    assert len(bundle) > 64 * 1024  # large enough to be validated in a worker
    response = httpx.post(server.url + "/ingest/fhir/json/R4/bundle", content=bundle, timeout=60)
    assert response.status_code == 202, response.text
    assert server.proc is not None
    workers = children(server.proc.pid)
    assert len(workers) >= 2, workers  # the pool's workers (and the resource tracker)
    server.kill()

    def left() -> set[int]:
        return {pid for pid in workers if alive(pid)}

    try:
        wait_for(
            left,
            lambda pids: not pids,
            timeout=15,
            every=0.2,
            what="no process to outlive the server",
        )
    finally:
        for pid in left():
            os.kill(pid, 9)
