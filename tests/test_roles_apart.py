"""The door and the consumers as two processes on one data dir, with no configuration: the
first to start owns the embedded PostgreSQL and the other uses it; what the door accepts,
the consumers store. (The README's way to give the consumers a core of their own.)"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.ingest.http.helpers import stored_bytes, wait_status
from tests.services.mm_bronze import MmBronze
from tests.services.postgres import stop_stale

ROUTE = "/ingest/fhir/json/R4/patient"


def embedded_owner(proc: MmBronze) -> bool:
    for line in proc.logs().splitlines():
        if line.startswith("{") and '"embedded postgres ready"' in line:
            return bool(json.loads(line)["owner"])
    raise AssertionError(f"no embedded postgres in the log:\n{proc.logs()}")


def test_door_and_consumers_apart_share_the_embedded_defaults(embedded_data_dir: Path) -> None:
    bodies = [b'{"resourceType": "Patient", "id": "apart-%d"}' % n for n in range(5)]
    pgdata = embedded_data_dir / "pg"
    door = MmBronze(embedded_data_dir, "--http").start()
    try:
        consumers = MmBronze(embedded_data_dir, "--consumers").start()
        try:
            with httpx.Client(base_url=door.url, timeout=30) as client:
                uuids = [client.post(ROUTE, content=body).json()["uuid"] for body in bodies]
                stored = [wait_status(client, uuid, {"stored"}) for uuid in uuids]
            assert [stored_bytes(entry["storage_path"]) for entry in stored] == bodies
            assert embedded_owner(door) and not embedded_owner(consumers)
        finally:
            assert consumers.stop() == 0
        assert door.stop() == 0
        assert not (pgdata / "postmaster.pid").exists()  # its owner stopped it
    finally:
        door.kill()
        stop_stale(pgdata)
