"""``GET /metrics`` of real ``serve`` processes: what each door counted after a mixed load,
the bus backlog and dead letters as they are, who may scrape, and a consumers-only process."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import httpx
import psycopg
import pytest

from mm_bronze.metrics.door import FORMATS, OTHER, OUTCOMES, UNKNOWN
from tests.ingest.mllp.helpers import RawMllp, oru, parse_ack
from tests.ingest.sftp.helpers import write_users
from tests.metrics.scrape import Samples, label_values, parse, scrape, value, wait_scrape
from tests.services.mm_bronze import MmBronze, free_port, run_cli

MAX_BODY = 4096
SFTP_PASSWORD = "lab-pw"
API, SFTP, MLLP = "bronze-ingest-api", "bronze-ingest-sftp", "bronze-ingest-mllp"
ROOT = Path(__file__).resolve().parents[2]


def patient(n: int) -> bytes:
    return json.dumps({"resourceType": "Patient", "id": f"m{n}"}).encode()


HL7_MESSAGE = oru("HTTP1").replace(b"\r", b"\n")


@dataclass
class Load:
    """What the mixed load sent, and what each door should have counted."""

    http_bytes: int
    mllp_bytes: int
    sftp_bytes: int


@dataclass
class Doors:
    proc: MmBronze
    dsn: str
    metrics_port: int
    tokens: dict[str, str]
    load: Load

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def _post(proc: MmBronze, route: str, body: bytes, headers: dict[str, str]) -> int:
    return httpx.post(proc.url + route, content=body, headers=headers, timeout=30).status_code


async def _sftp_load(port: int) -> int:
    """One upload accepted, one login refused; the uploaded size."""
    body = patient(100)
    async with (
        asyncssh.connect(
            "127.0.0.1",
            port,
            username="lab",
            password=SFTP_PASSWORD,
            known_hosts=None,
            client_keys=None,
            agent_path=None,
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        async with sftp.open("/patient.json", "wb") as remote:
            await remote.write(body)
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            "127.0.0.1",
            port,
            username="lab",
            password="wrong",
            known_hosts=None,
            client_keys=None,
            agent_path=None,
            preferred_auth="password",
        )
    return len(body)


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[Doors]:
    """``serve --http --mllp --sftp`` (no consumers), with API clients, after a mixed load."""
    tokens = {}
    for name, role in (("sender", "ingest"), ("watcher", "read"), ("boss", "admin")):
        result = run_cli("clients", "add", name, "--role", role, env={"POSTGRES_DSN": module_dsn})
        assert result.returncode == 0, result.stderr
        tokens[name] = result.stdout.strip()
    data_dir = tmp_path_factory.mktemp("metrics")
    write_users(data_dir, {"lab": (SFTP_PASSWORD, "read,write")})
    metrics_port = free_port()
    proc = MmBronze(
        data_dir,
        "--http",
        "--mllp",
        "--sftp",
        env={
            "POSTGRES_DSN": module_dsn,
            "MM_BRONZE_HTTP_MAX_BODY_BYTES": str(MAX_BODY),
            "MM_BRONZE_METRICS_PORT": str(metrics_port),
            "MM_BRONZE_SFTP_AUTH_FAILURE_DELAY": "0.01",
        },
    )
    proc.start()
    sender = {"Authorization": f"Bearer {tokens['sender']}"}
    route = "/ingest/fhir/json/R4/patient"
    http_bytes = 0
    for n in (1, 2, 3, 3):  # the last one a duplicate: accepted all the same
        assert _post(proc, route, patient(n), sender) == 202
        http_bytes += len(patient(n))
    assert _post(proc, "/ingest/hl7/text/2.5.1/oru", HL7_MESSAGE, sender) == 202
    http_bytes += len(HL7_MESSAGE)
    assert _post(proc, route, b'{"resourceType": "Patient", "id": ', sender) == 422
    assert _post(proc, route, b'{"resourceType": "Nobody"}', sender) == 422
    assert _post(proc, "/ingest/fhir/yaml/R4/patient", b"a: b", sender) == 400
    assert _post(proc, route, b" " * (MAX_BODY + 1), sender) == 413
    assert _post(proc, route, patient(9), {}) == 401
    assert _post(proc, route, patient(9), {"Authorization": f"Bearer {tokens['watcher']}"}) == 403
    mllp_message = oru("MLLP1")
    with RawMllp(proc.mllp_port) as mllp:
        assert parse_ack(mllp.ask(mllp_message)).code == "AA"
        assert parse_ack(mllp.ask(b"NOT HL7 AT ALL")).code == "AR"
    sftp_bytes = asyncio.run(_sftp_load(proc.sftp_port))
    yield Doors(
        proc,
        module_dsn,
        metrics_port,
        tokens,
        Load(http_bytes=http_bytes, mllp_bytes=len(mllp_message), sftp_bytes=sftp_bytes),
    )
    proc.stop()


def _submissions(samples: Samples, door: str) -> dict[tuple[str, str], float]:
    """(format, outcome) → count, the non-zero ones only."""
    out = {}
    for (name, labels), count in samples.items():
        found = dict(labels)
        if name == "mm_bronze_submissions_total" and found["door"] == door and count:
            out[(found["format"], found["outcome"])] = count
    return out


def test_each_door_counts_every_answer_by_format_and_outcome(doors: Doors) -> None:
    samples = scrape(doors.proc.url + "/metrics", doors.tokens["watcher"])
    assert _submissions(samples, "http") == {
        ("fhir/json", "accepted"): 4,
        ("hl7/text", "accepted"): 1,
        ("fhir/json", "rejected"): 2,
        ("other", "rejected"): 1,
        ("fhir/json", "too_large"): 1,
        ("fhir/json", "unauthorized"): 2,
    }
    assert _submissions(samples, "mllp") == {
        ("hl7/text", "accepted"): 1,
        ("hl7/text", "rejected"): 1,
    }
    assert _submissions(samples, "sftp") == {
        ("fhir/json", "accepted"): 1,
        ("unknown", "unauthorized"): 1,
    }
    load = doors.load
    for door, size in (
        ("http", load.http_bytes),
        ("mllp", load.mllp_bytes),
        ("sftp", load.sftp_bytes),
    ):
        assert value(samples, "mm_bronze_submission_bytes_total", door=door) == size
    # Every answer timed: one observation per answer counted, none for logins.
    assert value(samples, "mm_bronze_request_duration_seconds_count", door="http") == 11
    assert value(samples, "mm_bronze_request_duration_seconds_count", door="mllp") == 2
    assert value(samples, "mm_bronze_request_duration_seconds_count", door="sftp") == 1
    assert value(samples, "mm_bronze_request_duration_seconds_bucket", door="http", le="+Inf") == 11
    for check in ("database", "bus", "storage", "http", "mllp", "sftp"):
        assert value(samples, "mm_bronze_ready", check=check) == 1
    assert value(samples, "mm_bronze_mllp_connections") == 0
    assert value(samples, "mm_bronze_sftp_sessions") == 0
    assert value(samples, "process_cpu_seconds_total") is not None
    assert value(samples, "process_resident_memory_bytes")
    assert any(name == "python_info" for name, _ in samples)


def test_backlog_is_what_waits_on_the_bus_with_consumers_off(doors: Doors) -> None:
    samples = scrape(doors.metrics_url)
    assert value(samples, "mm_bronze_bus_backlog", topic=API) == 5
    assert value(samples, "mm_bronze_bus_backlog", topic=MLLP) == 1
    assert value(samples, "mm_bronze_bus_backlog", topic=SFTP) == 1
    for topic in (API, MLLP, SFTP):
        assert value(samples, "mm_bronze_dead_letters", topic=topic) == 0
    with psycopg.connect(doors.dsn) as conn:
        rows = conn.execute("SELECT topic, count(*) FROM bus.messages GROUP BY 1").fetchall()
    queued: dict[str, int] = dict(rows)
    assert queued == {API: 5, MLLP: 1, SFTP: 1}


def test_metrics_port_serves_the_same_counts_without_a_token(doors: Doors) -> None:
    on_port = scrape(doors.metrics_url)
    on_door = scrape(doors.proc.url + "/metrics", doors.tokens["boss"])
    for door in ("http", "mllp", "sftp"):
        assert _submissions(on_port, door) == _submissions(on_door, door)
    missing = httpx.get(f"http://127.0.0.1:{doors.metrics_port}/ingest")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_metrics_on_the_door_need_a_read_or_admin_token(doors: Doors) -> None:
    url = doors.proc.url + "/metrics"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["error"] == "unauthorized"
    assert httpx.get(url, headers={"Authorization": "Bearer mmb_nope"}).status_code == 401
    ingest = httpx.get(url, headers=doors.auth("sender"))
    assert ingest.status_code == 403
    assert ingest.json()["error"] == "forbidden"
    assert "read or admin" in ingest.json()["message"]
    for name in ("watcher", "boss"):
        response = httpx.get(url, headers=doors.auth(name))
        assert response.status_code == 200
        assert "mm_bronze_submissions_total" in response.text


def test_metrics_refuse_a_query_parameter_after_the_token(doors: Doors) -> None:
    """Prometheus sends no parameter; one is a 400 naming it, on the door once the token and
    its role are checked, and on the metrics port."""
    refused = {
        "error": "invalid_parameter",
        "message": "format: unknown parameter; this route takes none",
        "parameter": "format",
    }
    url = doors.proc.url + "/metrics?format=openmetrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers=doors.auth("sender")).status_code == 403
    for name in ("watcher", "boss"):
        response = httpx.get(url, headers=doors.auth(name))
        assert response.status_code == 400 and response.json() == refused, name
    on_port = httpx.get(doors.metrics_url + "?format=openmetrics")
    assert on_port.status_code == 400 and on_port.json() == refused
    assert scrape(doors.metrics_url)  # without a parameter, as a scrape asks
    assert scrape(doors.proc.url + "/metrics", doors.tokens["watcher"])


def test_hostile_routes_cannot_grow_the_label_sets(doors: Doors) -> None:
    before = value(
        scrape(doors.metrics_url),
        "mm_bronze_submissions_total",
        door="http",
        format=OTHER,
        outcome="rejected",
    )
    for n in range(25):
        status = _post(doors.proc, f"/ingest/evil{n}/type{n}/R4/x", b"{}", {})
        assert status == 400
    samples = scrape(doors.metrics_url)
    formats = label_values(samples, "mm_bronze_submissions_total", "format")
    assert formats <= {*FORMATS, OTHER, UNKNOWN}
    assert label_values(samples, "mm_bronze_submissions_total", "outcome") <= set(OUTCOMES)
    after = value(
        samples, "mm_bronze_submissions_total", door="http", format=OTHER, outcome="rejected"
    )
    assert before is not None and after == before + 25


def test_consumers_alone_serve_metrics_on_metrics_port(doors: Doors) -> None:
    """A ``--consumers`` process drains the backlog, counts what it stored, and dead-letters
    an event that can never be processed; both processes see the bus as it now is."""
    with psycopg.connect(doors.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO bus.messages (topic, key, value) VALUES (%s, %s, %s)",
            (API, b"garbage", b"\xc1 not an event"),
        )
    port = free_port()
    consumers = MmBronze(
        doors.proc.data_dir,
        "--consumers",
        env={"POSTGRES_DSN": doors.dsn, "MM_BRONZE_METRICS_PORT": str(port)},
    )
    consumers.start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def drained(samples: Samples) -> bool:
            return (
                all(
                    value(samples, "mm_bronze_bus_backlog", topic=t) == 0 for t in (API, MLLP, SFTP)
                )
                and value(samples, "mm_bronze_stored_total", source="api", result="failed") == 1
            )

        samples = wait_scrape(url, drained)
        stored = {
            (dict(labels)["source"], dict(labels)["result"]): count
            for (name, labels), count in samples.items()
            if name == "mm_bronze_stored_total" and count
        }
        assert stored == {
            ("api", "stored"): 4,
            ("api", "duplicate"): 1,
            ("api", "failed"): 1,
            ("mllp", "stored"): 1,
            ("sftp", "stored"): 1,
        }
        assert value(samples, "mm_bronze_dead_letters", topic=API) == 1
        assert value(samples, "mm_bronze_consumer_batch_seconds_count")
        assert value(samples, "mm_bronze_ready", check="consumers") == 1
        assert not any(
            count for (name, _), count in samples.items() if name == "mm_bronze_submissions_total"
        )
        assert "metrics listening" in consumers.logs()
        # The doors' process asks the bus at its own scrapes: it sees the same.
        on_doors = scrape(doors.metrics_url)
        assert value(on_doors, "mm_bronze_bus_backlog", topic=API) == 0
        assert value(on_doors, "mm_bronze_dead_letters", topic=API) == 1
    finally:
        started = time.monotonic()
        assert consumers.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 30
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_metrics_are_open_without_clients_like_the_other_routes(dsn: str, tmp_path: Path) -> None:
    with MmBronze(tmp_path, "--http", env={"POSTGRES_DSN": dsn}) as proc:
        route = proc.url + "/ingest/fhir/json/R4/patient"
        assert httpx.post(route, content=patient(1)).status_code == 202
        samples = scrape(proc.url + "/metrics")
    assert (
        value(
            samples,
            "mm_bronze_submissions_total",
            door="http",
            format="fhir/json",
            outcome="accepted",
        )
        == 1
    )
    assert value(samples, "mm_bronze_bus_backlog", topic=API) == 1


def test_dashboard_uses_only_metrics_a_scrape_has(doors: Doors) -> None:
    import re

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "mm-bronze.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs += [variable.get("query", "") for variable in dashboard["templating"]["list"]]
    assert exprs
    names = {n for expr in exprs for n in re.findall(r"\b(?:mm_bronze|process)_[a-z_]+", expr)}
    assert any(n.startswith("mm_bronze_bus_backlog") for n in names)
    scraped = {name for name, _ in scrape(doors.metrics_url)}
    assert names <= scraped, names - scraped


def test_a_scrape_answers_while_the_bus_does_not(dsn: str, tmp_path: Path) -> None:
    """The queue table locked (a stuck database): the scrape answers, without bus gauges."""
    with (
        MmBronze(tmp_path, "--http", env={"POSTGRES_DSN": dsn}) as proc,
        psycopg.connect(dsn) as locker,
    ):
        locker.execute("LOCK TABLE bus.messages IN ACCESS EXCLUSIVE MODE")
        try:
            response = httpx.get(proc.url + "/metrics", timeout=30)
        finally:
            locker.rollback()
        assert response.status_code == 200
        names = {name for name, _ in parse(response.text)}
        assert "mm_bronze_submissions_total" in names
        assert "mm_bronze_bus_backlog" not in names
        assert value(parse(response.text), "mm_bronze_ready", check="bus") == 0
        assert "bus counts unavailable for metrics" in proc.logs()
        # Once the database answers again, so do the gauges.
        samples = scrape(proc.url + "/metrics")
        assert value(samples, "mm_bronze_bus_backlog", topic=API) == 0
        assert value(samples, "mm_bronze_ready", check="bus") == 1


def test_metrics_port_in_use_is_one_line(tmp_path: Path, dsn: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli(
            "serve",
            "--consumers",
            "--data-dir",
            str(tmp_path),
            env={"POSTGRES_DSN": dsn, "MM_BRONZE_METRICS_PORT": str(port)},
        )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"mm-bronze: metrics cannot listen on 127.0.0.1:{port} (address already in use): "
        "set another port with MM_BRONZE_METRICS_PORT or metrics.port"
    ]


async def test_open_mllp_connections_and_sftp_sessions_are_gauged(doors: Doors) -> None:
    async with (
        asyncssh.connect(
            "127.0.0.1",
            doors.proc.sftp_port,
            username="lab",
            password=SFTP_PASSWORD,
            known_hosts=None,
            client_keys=None,
            agent_path=None,
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        await sftp.listdir("/")
        with RawMllp(doors.proc.mllp_port), RawMllp(doors.proc.mllp_port):
            samples = await asyncio.to_thread(
                wait_scrape,
                doors.metrics_url,
                lambda s: value(s, "mm_bronze_mllp_connections") == 2,
            )
            assert value(samples, "mm_bronze_sftp_sessions") == 1
    after = await asyncio.to_thread(
        wait_scrape,
        doors.metrics_url,
        lambda s: (
            value(s, "mm_bronze_mllp_connections") == 0 and value(s, "mm_bronze_sftp_sessions") == 0
        ),
    )
    assert after
