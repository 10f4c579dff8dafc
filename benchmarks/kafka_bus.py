"""HTTP ingest on the Kafka bus (Tansu) against the ceiling and the embedded bus, in one run.

    python -m benchmarks.kafka_bus [--seconds 5] [--all-seconds 10]

Starts PostgreSQL (embedded), a Tansu broker, the bare starlette+hypercorn ceiling and
``mm-bronze serve`` processes; loads each with ``wrk`` (1.7 KB Observations, 32
connections, every body distinct). The HTTP goals hold on Kafka too: accepted req/s and
p99 against the ceiling, and with ``serve --all`` the consumers keep up. Beside the ceiling,
as a bound with no goal, the bare app durable on Kafka (``kafka_durable_app``): the ceiling
that produces each body with ``acks=all`` and answers once Kafka acknowledged it.

CPU per request of each process (server, Tansu, PostgreSQL, wrk) is measured too: it moves
far less than req/s on a shared machine. With ``serve --all`` everything shares the cores, so
the most it could accept here is cores / (its CPU per request, ingest to stored, all
processes and wrk), against the ceiling's measured req/s as the goal is: that ratio is
recorded as the machine's bound for the ``serve --all`` goal. (The ceiling does not keep both
cores busy: its rate is not bound by CPU, so its own cores / CPU would be no bound at all.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from benchmarks.__main__ import (
    OBSERVATION_ROUTE,
    bare_app,
    observation_body,
    show,
    wait_http,
    warm_up,
)
from benchmarks.cpu_meter import CpuMeter, per_request_ms, postmaster_pid
from benchmarks.loadgen import LoadResult, run_wrk
from benchmarks.summary import record
from tests.services.kafka import TEST_CONSUMER_ENV, TansuBroker
from tests.services.mm_bronze import MmBronze, free_port
from tests.services.postgres import create_database, postgres_server

NAME = "kafka_bus"
CONNECTIONS = 32
DRAIN_TIMEOUT = 60.0


def submissions(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM ingestion.submissions").fetchone()
    return int(row[0]) if row else 0


def show_cpu(label: str, used: dict[str, float], requests: int) -> float:
    """Print CPU ms per request of each process; return the total in seconds per request."""
    ms = per_request_ms(used, requests)
    parts = "  ".join(f"{name} {value:.3f}" for name, value in ms.items())
    total = sum(ms.values())
    print(f"  {label:<26} CPU ms/request: {parts}  = {total:.3f}", flush=True)
    return total / 1000


def loaded(
    url: str, body: bytes, seconds: float, roots: dict[str, int]
) -> tuple[LoadResult, dict[str, float]]:
    """wrk on ``url`` and the CPU seconds each of ``roots`` (and wrk, ``load``) used."""
    meter = CpuMeter(roots)
    meter.start()
    result = run_wrk(url, body, connections=CONNECTIONS, seconds=seconds)
    return result, meter.stop()


def bare_durable(
    servers: str, body: bytes, seconds: float, services: dict[str, int]
) -> tuple[LoadResult, dict[str, float]]:
    """wrk on the bare app durable on Kafka (``kafka_durable_app``), and the CPU used."""
    with bare_app("benchmarks.kafka_durable_app", servers, "bench-bare") as (url, pid):
        warm_up(url + OBSERVATION_ROUTE, body)
        return loaded(url + OBSERVATION_ROUTE, body, seconds, {"app": pid, **services})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per target")
    parser.add_argument("--all-seconds", type=float, default=10.0, help="serve --all duration")
    args = parser.parse_args()
    body = observation_body()
    print(f"HTTP ingest on Kafka (Tansu), Observations, {CONNECTIONS} connections")
    with (
        tempfile.TemporaryDirectory(prefix="mmb-kafka-") as tmp,
        postgres_server(Path(tmp)) as admin,
    ):
        broker = TansuBroker(Path(tmp)).start()
        assert broker.proc is not None
        services = {"tansu": broker.proc.pid}
        if (postgres := postmaster_pid(Path(tmp) / "pg")) is not None:
            services["postgres"] = postgres
        port = free_port()
        ceiling = subprocess.Popen([sys.executable, "-m", "benchmarks.ceiling_app", str(port)])
        try:
            wait_http(f"http://127.0.0.1:{port}/")
            kafka = {"KAFKA_SERVERS": broker.servers, **TEST_CONSUMER_ENV}
            # ``serve --http`` leaves its events on the broker, unconsumed: on a topic of its
            # own, so that they are not a backlog for the consumers of ``serve --all`` below
            # (which would store them while its door is measured, and count them as stored).
            http_kafka = {**kafka, "KAFKA_BRONZE_API_TOPIC": "bench-http-only-api"}
            base, used = loaded(f"http://127.0.0.1:{port}{OBSERVATION_ROUTE}", body, args.seconds,
                                {"ceiling": ceiling.pid})  # fmt: skip
            show("ceiling (bare starlette)", base)
            ceiling_cpu = show_cpu("ceiling (bare starlette)", used, base.requests)
            bare, bare_cpu = bare_durable(broker.servers, body, args.seconds, services)
            show("bare durable app on Kafka", bare, base)
            show_cpu("bare durable app on Kafka", bare_cpu, bare.requests)
            record(NAME, "Observation 1.7 KB, 32 conn: the bare app durable on Kafka, req/s "
                   "(bound: acks=all, no validation)", bare.rate(), base.rate(), "req/s",
                   note=f"its process: {per_request_ms(bare_cpu, bare.requests)['app']:.3f} "
                   "ms/request")  # fmt: skip
            results = {}
            for name, extra in (("embedded", {}), ("kafka", http_kafka)):
                env = {"POSTGRES_DSN": create_database(admin), **extra}
                with MmBronze(Path(tmp) / f"http-{name}", "--http", env=env) as http:
                    url = http.url + OBSERVATION_ROUTE
                    warm_up(url, body)
                    assert http.proc is not None
                    results[name], used = loaded(
                        url, body, args.seconds, {"serve": http.proc.pid, **services}
                    )
                show(f"serve --http, {name} bus", results[name], base)
                show_cpu(f"serve --http, {name} bus", used, results[name].requests)
            on_kafka = results["kafka"]
            record(NAME, "serve --http on Kafka, Observations 32 conn: accepted req/s",
                   on_kafka.rate(), base.rate(), "req/s", goal=0.6,
                   note=f"embedded bus: {results['embedded'].rate():.0f} req/s")  # fmt: skip
            record(NAME, "serve --http on Kafka, Observations 32 conn: p99 latency",
                   on_kafka.p99_ms, base.p99_ms, "ms", goal=3.0,
                   higher_is_better=False)  # fmt: skip

            dsn = create_database(admin)
            with MmBronze(
                Path(tmp) / "all-kafka", "--all", env={"POSTGRES_DSN": dsn, **kafka}
            ) as full:
                warm_up(full.url + OBSERVATION_ROUTE, body)
                # The consumers join their group a few seconds after start: measure from
                # when they store, not their join.
                deadline = time.monotonic() + DRAIN_TIMEOUT
                while submissions(dsn) == 0 and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert full.proc is not None
                meter = CpuMeter({"serve": full.proc.pid, **services})
                first, began = submissions(dsn), time.perf_counter()
                meter.start()
                result = run_wrk(full.url + OBSERVATION_ROUTE, body, connections=CONNECTIONS,
                                 seconds=args.all_seconds)  # fmt: skip
                stored = (submissions(dsn) - first) / (time.perf_counter() - began)
                # CPU per request from ingest to stored: until the consumers caught up.
                deadline = time.monotonic() + DRAIN_TIMEOUT
                while submissions(dsn) - first < result.requests and time.monotonic() < deadline:
                    time.sleep(0.2)
                used = meter.stop()
            show("serve --all, kafka bus", result, base)
            print(f"  {'stored':<26} {stored:8.1f} obj/s")
            all_cpu = show_cpu("serve --all, to stored", used, result.requests)
            cores = os.cpu_count() or 1
            # The most serve --all could accept here, every core busy with it and wrk, nothing
            # else: against the ceiling's measured rate, as the goal's ratio is. (The ceiling
            # itself does not use both cores: its own rate is not CPU-bound.)
            unavoidable = sum(used.get(name, 0.0) for name in services) / max(result.requests, 1)
            bound = cores / all_cpu
            print(f"  {'bound (cores / CPU)':<26} {bound:8.1f} req/s x{bound / base.rate():.2f} of "
                  f"the ceiling's {base.rate():.1f} (its CPU: {ceiling_cpu * 1000:.3f} ms/request);"
                  f" Tansu + PostgreSQL alone {unavoidable * 1000:.3f} ms/request")  # fmt: skip
            record(NAME, "serve --all on Kafka, Observations 32 conn: accepted req/s vs ceiling",
                   result.rate(), base.rate(), "req/s", goal=0.4)  # fmt: skip
            record(NAME, "serve --all on Kafka, Observations 32 conn: stored/s vs accepted/s",
                   stored, result.rate(), "obj/s", goal=0.8)  # fmt: skip
            record(NAME, "serve --all on Kafka: the machine's bound, cores / CPU per request "
                   "(all processes, to stored) vs the ceiling's req/s",
                   bound, base.rate(), "req/s",
                   note=f"no goal: the most serve --all could accept here; Tansu + PostgreSQL "
                   f"{unavoidable * 1000:.2f} ms/request, the ceiling "
                   f"{ceiling_cpu * 1000:.2f} ms with wrk")  # fmt: skip
        finally:
            ceiling.terminate()
            ceiling.wait()
            broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
