"""SIGTERM: stop accepting, finish in-flight requests, exit cleanly; nothing accepted is lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

from tests.ingest.http.helpers import wait_status
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze, free_port


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
        reply = _read_reply(sock)
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


def test_a_request_outliving_the_graceful_timeout_gets_a_503(dsn: str, tmp_path: Path) -> None:
    """A body still arriving when the stop's ``http.graceful_timeout`` runs out: the request
    is answered 503 (retry), not hypercorn's empty 500, and the server exits."""
    env = {"POSTGRES_DSN": dsn, "MM_BRONZE_HTTP_GRACEFUL_TIMEOUT": "1"}
    proc = MmBronze(tmp_path, env=env).start()
    head = (
        b"POST /ingest/fhir/json/R4/patient HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", proc.http_port), timeout=30)
    try:
        sock.sendall(head + b'{"resourceType": "Patient"')
        time.sleep(0.3)
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        reply = _read_reply(sock)
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 503"), reply[:200]
    assert b"retry-after: 5" in reply.lower()
    assert reply.endswith(
        b'{"error":"unavailable","message":"the server is stopping, retry later"}'
    )
    assert proc.proc.wait(30) == 0
    assert "request unfinished when the server stopped" in proc.logs()


def test_a_log_reader_that_is_gone_stops_neither_requests_nor_a_shutdown(
    dsn: str, tmp_path: Path
) -> None:
    """Logs piped to a collector that died: lines are dropped, but requests are still
    acknowledged and SIGTERM still stops the server (it used to ignore every signal)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mm_bronze", "serve", "--http", "--data-dir", str(tmp_path),
         "--http-port", str(port)],
        env={**os.environ, "POSTGRES_DSN": dsn, "MM_BRONZE_LOG_FORMAT": "json"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _alive(url), timeout=60, what="the server to start")
        assert proc.stdout is not None
        proc.stdout.close()  # the collector is gone: every log write now fails
        body = b'{"resourceType": "Patient", "id": "piped"}'
        answer = httpx.post(url + "/ingest/fhir/json/R4/patient", content=body, timeout=10)
        assert answer.status_code == 202, answer.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _alive(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _read_reply(sock: socket.socket) -> bytes:
    """What the server answers on ``sock``, up to the end of its JSON body (or the close)."""
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    return reply
