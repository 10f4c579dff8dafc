"""What an operator sees of the doors: bind failures, start lines, refusals, readiness."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import paramiko
import pytest

from tests.ingest.sftp.helpers import wait_landed
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze, free_port, run_cli

PASSWORD = "lab-Passw0rd-long"


def test_ports_in_use_are_one_line_per_door_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as http_holder, socket.socket() as mllp_holder:
        for holder in (http_holder, mllp_holder):
            holder.bind(("127.0.0.1", 0))
            holder.listen()
        http_port = http_holder.getsockname()[1]
        mllp_port = mllp_holder.getsockname()[1]
        sftp_port = free_port()
        result = subprocess.run(
            [sys.executable, "-m", "mm_bronze", "serve", "--all", "--data-dir", str(tmp_path),
             "--http-port", str(http_port), "--mllp-port", str(mllp_port),
             "--sftp-port", str(sftp_port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"mm-bronze: http cannot listen on 127.0.0.1:{http_port} (address already in use): "
        "set another port with --http-port, MM_BRONZE_HTTP_PORT or http.port",
        f"mm-bronze: mllp cannot listen on 127.0.0.1:{mllp_port} (address already in use): "
        "set another port with --mllp-port, MM_BRONZE_MLLP_PORT or mllp.port",
    ]
    assert "listening" not in result.stdout
    assert not (tmp_path / "pg").exists()  # nothing was opened


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[MmBronze]:
    data = tmp_path_factory.mktemp("doors")
    env = {"POSTGRES_DSN": module_dsn, "MM_BRONZE_HTTP_MAX_BODY_BYTES": "4096"}
    added = run_cli(
        "users", "add", "lab1", "--password-stdin", "--data-dir", str(data),
        input=f"{PASSWORD}\n".encode(), env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    with MmBronze(data, env=env) as proc:
        yield proc


def log_lines(proc: MmBronze) -> list[dict[str, object]]:
    return [json.loads(line) for line in proc.logs().splitlines() if line.startswith("{")]


def test_every_door_announces_itself_once_through_structlog(door: MmBronze) -> None:
    text = door.logs()
    assert "Running on" not in text
    lines = log_lines(door)
    assert len(lines) == len(text.splitlines()), text  # every line is one JSON object
    events = [line["event"] for line in lines]
    for name in ("http listening", "mllp listening", "sftp listening"):
        assert events.count(name) == 1, events
    (http,) = [line for line in lines if line["event"] == "http listening"]
    assert http["url"] == door.url
    assert http["level"] == "info"


def test_readyz_lists_every_door_that_runs(door: MmBronze) -> None:
    checks = httpx.get(f"{door.url}/readyz").json()["checks"]
    assert checks == {
        "database": "ok", "bus": "ok", "storage": "ok",
        "consumers": "ok", "http": "ok", "mllp": "ok", "sftp": "ok",
    }  # fmt: skip


def test_refused_requests_are_logged_with_their_reason_never_the_payload(
    door: MmBronze,
) -> None:
    secret = "Zebulon-Quartermaine"
    invalid = {"resourceType": "Patient", "birthDate": secret}
    too_large = b'{"resourceType": "Patient", "name": "' + secret.encode() * 400 + b'"}'
    hl7 = f"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||\r{secret}".encode()
    with httpx.Client(base_url=door.url) as client:
        assert client.post("/ingest/fhir/json/R4/patient", json=invalid).status_code == 422
        assert client.post("/ingest/hl7/text/2.5/adt", content=hl7).status_code == 422
        assert client.post("/ingest/fhir/json/R4/patient", content=too_large).status_code == 413
        assert client.get("/nothing").status_code == 404
        assert client.get("/ingest/fhir/json/R4/bundle").status_code == 405
        # Refused by the HTTP parser, before the application sees them.
        for request, status in (
            (b"GARBAGE\r\n\r\n", b"400"),
            (b"POST /ingest/fhir/json/R4/patient HTTP/1.1\r\nHost: x\r\n"
             b"Transfer-Encoding: gzip\r\n\r\n", b"501"),
        ):  # fmt: skip
            with socket.create_connection(("127.0.0.1", door.http_port), timeout=10) as raw:
                raw.sendall(request)
                assert raw.recv(100).startswith(b"HTTP/1.1 " + status)
        token = run_cli("clients", "add", "partner", env=door.env).stdout.strip()
        assert token
        wait_for(  # the client count is cached for 5 s
            lambda: client.post("/ingest/fhir/json/R4/patient", json=invalid).status_code,
            lambda status: status == 401,
            timeout=15,
            every=0.5,
            what="bearer tokens required once a client exists",
        )
    refused = [line for line in log_lines(door) if line["event"] == "request refused"]
    by_status = {line["status"]: line for line in refused}
    assert by_status[422]["error"] == "invalid_payload"
    assert "birthDate" in str(by_status[422]["reason"])
    assert by_status[413]["error"] == "payload_too_large"
    assert by_status[401]["reason"] == "missing bearer token (Authorization: Bearer <token>)"
    assert by_status[404]["error"] == "not_found"
    assert by_status[405]["error"] == "method_not_allowed"
    assert by_status[501]["error"] == "transfer_encoding_not_supported"
    assert by_status[400]["error"] == "bad_request"
    assert all(line["level"] == "info" and line.get("request_id") for line in refused)
    assert sum(line["status"] == 422 for line in refused) >= 2  # FHIR and HL7 v2
    assert secret not in door.logs()


def test_sftp_upload_line_names_the_file_and_hl7_subtype_is_type_and_trigger(
    door: MmBronze, corpus: Path
) -> None:
    source = corpus / "hl7v2" / "PHLIP_FLU_2.5.1_VALID_MESSAGE.txt"
    transport = paramiko.Transport(("127.0.0.1", door.sftp_port))
    try:
        transport.connect(username="lab1", password=PASSWORD)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        sftp.put(str(source), "/flu-result.txt")
        sftp.close()
    finally:
        transport.close()
    (row,) = wait_landed(door.env["POSTGRES_DSN"], "lab1", 1)
    assert (row["format"], row["subtype"]) == ("hl7", "oru_r01")
    (accepted,) = wait_for(
        lambda: [x for x in log_lines(door) if x["event"] == "sftp upload accepted"],
        timeout=10,
        every=0.2,
        what="the upload's log line",
    )
    assert accepted["file"] == "flu-result.txt"
    assert accepted["subtype"] == "oru_r01"


def test_the_readme_mllp_snippet_times_out_on_a_message_that_asks_for_no_ack(
    door: MmBronze, tmp_path: Path
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## HL7 over MLLP") :]
    snippet = section[section.index("```python\n") + 10 :]
    snippet = snippet[: snippet.index("```")]
    assert (
        "settimeout(30)" in snippet and "MSH-15" in section[: section.index("```python")] + snippet
    )
    code = snippet.replace("2575", str(door.mllp_port)).replace("settimeout(30)", "settimeout(2)")
    no_ack = "MSH|^~\\&|LAB|HOSP|BRONZE|DC|20240101||ADT^A01|NE-1|P|2.5|||NE\rPID|1||7^^^H^MR\r"
    (tmp_path / "message.hl7").write_text(no_ack)
    result = subprocess.run(
        [sys.executable, "-c", code + "\nprint(repr(ack))"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"  # no ACK by design, and the client did not hang
    (tmp_path / "message.hl7").write_text(no_ack.replace("|||NE", "|||AL"))
    acked = subprocess.run(
        [sys.executable, "-c", code + "\nprint(ack.split(b'\\r')[1].decode())"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert acked.stdout.strip().startswith("MSA|CA|NE-1"), acked.stdout + acked.stderr


def test_the_image_health_check_command_passes_against_a_running_door(door: MmBronze) -> None:
    from tests.test_deployment import dockerfile_instructions

    (health,) = [rest for word, rest in dockerfile_instructions() if word == "HEALTHCHECK"]
    command = json.loads(health.split(" CMD ", 1)[1])
    assert command[0] == "python"
    ok = subprocess.run(
        [sys.executable, *command[1:]], env={"MM_BRONZE_HTTP_PORT": str(door.http_port)},
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run(
        [sys.executable, *command[1:]], env={"MM_BRONZE_HTTP_PORT": str(free_port())},
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert down.returncode != 0
