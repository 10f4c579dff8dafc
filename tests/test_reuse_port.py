"""Several door processes on one port (``http.reuse_port``, ``mllp.reuse_port``): the kernel
spreads the connections among them, each answers what it accepted, and one can stop while
the others go on serving the port."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.ingest.http.helpers import wait_status
from tests.ingest.mllp.helpers import RawMllp, oru, parse_ack
from tests.services.mm_bronze import MmBronze, free_port, run_cli

ROUTE = "/ingest/fhir/json/R4/patient"


def accepted(metrics_port: int, role: str) -> int:
    """What one process's door has accepted, from its own metrics server."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    pattern = rf'^mm_bronze_submissions_total\{{door="{role}",[^}}]*outcome="accepted"\}} (\S+)$'
    return sum(int(float(value)) for value in re.findall(pattern, text, re.MULTILINE))


@contextmanager
def two_doors(tmp_path: Path, dsn: str, role: str) -> Iterator[tuple[list[MmBronze], list[int]]]:
    """Two ``serve --ROLE`` processes with ``ROLE.reuse_port`` on one port, each with a
    metrics port of its own, once both listen."""
    port, metrics = free_port(), [free_port(), free_port()]
    doors = [
        MmBronze(
            tmp_path / f"door{n}",
            f"--{role}",
            env={
                "POSTGRES_DSN": dsn,
                f"MM_BRONZE_{role.upper()}_REUSE_PORT": "true",
                "MM_BRONZE_METRICS_PORT": str(metrics[n]),
            },
            http_port=port if role == "http" else None,
            mllp_port=port if role == "mllp" else None,
        )
        for n in range(2)
    ]
    try:
        for door in doors:  # each ready once its log says it listens (the port cannot tell)
            door.start()
        yield doors, metrics
    finally:
        for door in doors:
            door.stop()


def post_patient(url: str, tag: str) -> str:
    """One distinct Patient on a connection of its own (the kernel picks a listener per
    connection); the uuid answered."""
    answer = httpx.post(
        url + ROUTE, content=b'{"resourceType": "Patient", "id": "%s"}' % tag.encode()
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["uuid"])


def send_message(port: int, tag: str) -> str:
    """One distinct ORU on a connection of its own; the ACK's code."""
    with RawMllp(port) as client:
        return parse_ack(client.ask(oru(tag))).code


DOORS: dict[str, Callable[[MmBronze, str], str]] = {
    "http": lambda door, tag: post_patient(door.url, tag),
    "mllp": lambda door, tag: send_message(door.mllp_port, tag),
}


@pytest.mark.parametrize("role", sorted(DOORS))
def test_doors_on_one_port_share_its_connections(
    tmp_path: Path, module_dsn: str, role: str
) -> None:
    send = DOORS[role]
    with two_doors(tmp_path, module_dsn, role) as (doors, metrics):
        answers = [send(doors[0], f"shared-{n}") for n in range(40)]
        counts = [accepted(metrics[0], role), accepted(metrics[1], role)]
        assert sum(counts) == 40 and min(counts) > 0, counts

        # One stops; the port stays served by the other.
        assert doors[0].stop() == 0
        answers += [send(doors[1], f"after-{n}") for n in range(10)]
        assert accepted(metrics[1], role) == counts[1] + 10
        if role == "mllp":
            assert set(answers) == {"AA"}
        else:
            with httpx.Client(base_url=doors[1].url, timeout=30) as client:
                for uuid in answers:
                    wait_status(client, uuid, {"accepted"})


@pytest.mark.parametrize("role", sorted(DOORS))
def test_a_port_held_without_reuse_is_still_refused_in_one_line(tmp_path: Path, role: str) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli(
            "serve", f"--{role}", "--data-dir", str(tmp_path), f"--{role}-port", str(port),
            env={f"MM_BRONZE_{role.upper()}_REUSE_PORT": "true"}, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    variable = f"MM_BRONZE_{role.upper()}_PORT"
    assert result.stderr.splitlines() == [
        f"mm-bronze: {role} cannot listen on 127.0.0.1:{port} (address already in use): "
        f"set another port with --{role}-port, {variable} or {role}.port"
    ]
    assert not (tmp_path / "pg").exists()  # nothing was opened
