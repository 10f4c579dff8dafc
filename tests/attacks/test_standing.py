"""The attacks mm-bronze already withstands, replayed against one real ``serve --all``.

Each is bounded in count and time. After all of them the server is still healthy, its
memory stays under ``RSS_BOUND``, and nothing refused left a row, a queued event or an object.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import httpx
import psycopg
import pytest

from tests.attacks.helpers import exchange, sftp_session
from tests.ingest.mllp.helpers import RawMllp, oru, parse_ack
from tests.ingest.sftp.helpers import write_users
from tests.polling import wait_listening
from tests.services.mm_bronze import MmBronze

RSS_BOUND = 1024 * 1024 * 1024  # bytes, the server and its workers together
XML_ROUTE = "/ingest/fhir/xml/R4/patient"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[MmBronze]:
    data_dir = tmp_path_factory.mktemp("standing")
    write_users(data_dir, {"lab1": ("lab1-pw", "read,write,delete")})
    proc = MmBronze(data_dir, env={"POSTGRES_DSN": module_dsn})
    proc.start()
    wait_listening(proc.mllp_port)
    yield proc
    proc.stop()


def rss(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants, in bytes."""
    total = 0
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue
    family, frontier = {pid}, {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - family
        family |= frontier
    for member in family:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def healthy(server: MmBronze) -> None:
    start = time.monotonic()
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    assert time.monotonic() - start < 2
    assert server.proc is not None and rss(server.proc.pid) < RSS_BOUND


def test_xml_external_entities_and_entity_bombs(server: MmBronze) -> None:
    bombs = [
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>',
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
            for i in range(1, 10)
        )
        + b']><Patient xmlns="http://hl7.org/fhir"><id value="&lol9;"/></Patient>',
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY % r SYSTEM "http://127.0.0.1:1/x">%r;]>'
        b'<Patient xmlns="http://hl7.org/fhir"/>',
    ]
    for bomb in bombs:
        response = httpx.post(server.url + XML_ROUTE, content=bomb, timeout=30)
        assert response.status_code == 422, response.text
        assert "DTD" in response.json()["message"]
    healthy(server)


def test_http_framing_conflicts(server: MmBronze) -> None:
    requests = [
        # Content-Length and chunked together (request smuggling)
        b"POST /ingest/fhir/json/R4/patient HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        # two different lengths
        b"POST /ingest/fhir/json/R4/patient HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Content-Length: 5\r\n\r\nabcde",
        # a chunk size that is not hex
        b"POST /ingest/fhir/json/R4/patient HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
        b"\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        # no request line at all
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),
    ]
    for raw in requests:
        answer = exchange(server, raw)
        # Refused (a 4xx, with Content-Length and chunked together read as chunked, as
        # RFC 9112 allows) and the connection closed after it (the read above ended), so
        # nothing left over can be read as a second, smuggled request.
        assert answer == b"" or answer[9:10] == b"4", answer[:100]
        assert answer.count(b"HTTP/1.1") <= 1, answer[:300]
    healthy(server)


def test_slowloris_leaves_the_server_answering(server: MmBronze) -> None:
    sockets = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
            sock.sendall(b"POST /ingest/fhir/json/R4/patient HTTP/1.1\r\nHost: x\r\n")
            sockets.append(sock)
        for round_ in range(3):
            for sock in sockets:
                sock.sendall(b"X-Slow-%d: a\r\n" % round_)
            healthy(server)
            time.sleep(0.2)
    finally:
        for sock in sockets:
            sock.close()


def test_sftp_jail_escapes(server: MmBronze, tmp_path: Path) -> None:
    outside = server.data_dir / "outside.txt"
    outside.write_text("not for partners")

    async def attempt() -> list[str]:
        refused = []
        async with sftp_session(server, "lab1", "lab1-pw") as sftp:
            for path in ("../../outside.txt", "/../../../outside.txt", "/etc/passwd"):
                try:
                    data = await (await sftp.open(path, "rb")).read()
                    assert isinstance(data, bytes)
                    assert b"not for partners" not in data and b"root:" not in data
                except (asyncssh.SFTPError, OSError):
                    refused.append(path)
            for target in ("../../outside.txt", "/etc/passwd", str(outside)):
                try:
                    await sftp.symlink(target, "escape")
                    data = await (await sftp.open("escape", "rb")).read()
                    assert isinstance(data, bytes)
                    assert b"not for partners" not in data and b"root:" not in data
                except (asyncssh.SFTPError, OSError):
                    refused.append(target)
        return refused

    refused = asyncio.run(attempt())
    assert len(refused) == 6, refused
    assert outside.read_text() == "not for partners"
    healthy(server)


def test_garbage_frames_and_a_thousand_held_mllp_connections(server: MmBronze) -> None:
    rng = random.Random(7)
    with RawMllp(server.mllp_port) as garbage:
        for _ in range(50):
            garbage.send_raw(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))))
        garbage.send_raw(b"\x1c\r\x0b\x0b\x1c\x1c\r")
    held = []
    try:
        for _ in range(1000):
            held.append(socket.create_connection(("127.0.0.1", server.mllp_port), timeout=10))
        healthy(server)
        # The server keeps at most mllp.max_connections (256) and closes the rest at once.
        for sock in held:
            sock.settimeout(0.01 if sock is not held[-1] else 5)
        closed = 0
        for sock in held:
            try:
                closed += sock.recv(1) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed += 1
        assert closed >= 1000 - 256, closed
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    with RawMllp(server.mllp_port) as client:
        assert parse_ack(client.ask(oru("AFTER-1000"))).code == "AA"
    healthy(server)


def test_nothing_refused_was_kept(server: MmBronze, module_dsn: str) -> None:
    with psycopg.connect(module_dsn) as conn:
        sources = conn.execute(
            "SELECT ingestion_source, count(*) FROM ingestion.submissions GROUP BY 1"
        ).fetchall()
        queued = conn.execute("SELECT count(*) FROM bus.messages").fetchone()
    # Only the one well-formed MLLP message of the garbage test may have landed.
    assert dict(sources) in ({}, {"mllp": 1}), sources
    assert queued is not None
    raw = server.data_dir / "raw"
    objects = [p for p in raw.rglob("*") if p.is_file() and "_staging" not in p.parts]
    assert len(objects) <= 1, objects
    healthy(server)
