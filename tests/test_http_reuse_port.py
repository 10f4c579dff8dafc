"""Several ``serve --http`` processes on one port (``http.reuse_port``): the kernel spreads
the connections among them, each answers what it accepted, and one can stop while the
others go on serving the port."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.ingest.http.helpers import wait_status
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze, free_port

ROUTE = "/ingest/fhir/json/R4/patient"
ACCEPTED = re.compile(
    r'^mm_bronze_submissions_total\{door="http",format="fhir/json",outcome="accepted"\} (\S+)$',
    re.MULTILINE,
)


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MM_BRONZE_")}


def listening(door: MmBronze) -> bool:
    assert door.proc is not None
    if door.proc.poll() is not None:
        raise AssertionError(f"exited {door.proc.returncode}:\n{door.run_logs()[-2000:]}")
    return "http listening" in door.run_logs()


def accepted(metrics_port: int) -> int:
    """What one process has accepted, from its own metrics server."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    found = ACCEPTED.search(text)
    assert found, text
    return int(float(found.group(1)))


def post_on_new_connections(url: str, tag: str, count: int) -> list[str]:
    """POST ``count`` distinct Patients, each on a connection of its own (the kernel picks a
    listener per connection); the uuids answered."""
    uuids = []
    for n in range(count):
        body = b'{"resourceType": "Patient", "id": "%s-%d"}' % (tag.encode(), n)
        answer = httpx.post(url + ROUTE, content=body, timeout=30)
        assert answer.status_code == 202, answer.text
        uuids.append(answer.json()["uuid"])
    return uuids


def test_doors_on_one_port_share_its_connections(tmp_path: Path, module_dsn: str) -> None:
    port = free_port()
    metrics = [free_port(), free_port()]
    doors = [
        MmBronze(
            tmp_path / f"door{n}",
            "--http",
            env={
                "POSTGRES_DSN": module_dsn,
                "MM_BRONZE_HTTP_REUSE_PORT": "true",
                "MM_BRONZE_METRICS_PORT": str(metrics[n]),
            },
            http_port=port,
        )
        for n in range(2)
    ]
    try:
        doors[0].start()
        # The port answers already: the second is ready once it says it listens too.
        doors[1].start(wait=False)
        wait_for(lambda: listening(doors[1]), timeout=60, what="the second door to listen")
        uuids = post_on_new_connections(doors[0].url, "shared", 40)
        counts = [accepted(metrics[0]), accepted(metrics[1])]
        assert sum(counts) == 40 and min(counts) > 0, counts

        # One stops; the port stays served by the other.
        assert doors[0].stop() == 0
        uuids += post_on_new_connections(doors[1].url, "after", 10)
        assert accepted(metrics[1]) == counts[1] + 10
        with httpx.Client(base_url=doors[1].url, timeout=30) as client:
            for uuid in uuids:
                wait_status(client, uuid, {"accepted"})
    finally:
        for door in doors:
            door.stop()


def test_a_port_held_without_reuse_is_still_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mm_bronze", "serve", "--http", "--data-dir", str(tmp_path),
             "--http-port", str(port)],
            capture_output=True, text=True, timeout=60,
            env={**clean_environ(), "MM_BRONZE_HTTP_REUSE_PORT": "true"},
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"mm-bronze: http cannot listen on 127.0.0.1:{port} (address already in use): "
        "set another port with --http-port, MM_BRONZE_HTTP_PORT or http.port"
    ]
    assert not (tmp_path / "pg").exists()  # nothing was opened
