"""SIGTERM: stop accepting, finish in-flight requests, exit cleanly; nothing accepted is lost."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import httpx
import psycopg

from tests.ingest.http.helpers import wait_status
from tests.services.mm_bronze import MmBronze


def test_sigterm_finishes_in_flight_upload(dsn: str, tmp_path: Path) -> None:
    env = {"POSTGRES_DSN": dsn}
    body = b'{"resourceType": "Patient", "id": "in-flight", "name": [{"text": "' + b"y" * 50_000
    body += b'"}]}'
    proc = MmBronze(tmp_path, env=env).start()
    head = (
        b"POST /ingest/fhir/json/R4/patient HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    sock = socket.create_connection(("127.0.0.1", proc.http_port), timeout=30)
    try:
        sock.sendall(head + body[:1000])
        time.sleep(0.3)
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        # The listener is closed: new connections are refused while the upload goes on.
        try:
            httpx.get(proc.url + "/healthz", timeout=2)
            refused = False
        except httpx.HTTPError:
            refused = True
        assert refused
        sock.sendall(body[1000:])
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 202"), reply[:200]
    assert proc.proc.wait(60) == 0
    assert "mm-bronze stopped" in proc.logs()
    submission = reply.split(b'"uuid":"')[1].split(b'"')[0].decode()
    # Whether the consumer stored it before stopping or not, a restart finishes the job.
    with MmBronze(tmp_path, env=env) as again, httpx.Client(base_url=again.url) as client:
        assert wait_status(client, submission, {"stored"})["size"] == len(body)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM bus.messages").fetchone() == (0,)
