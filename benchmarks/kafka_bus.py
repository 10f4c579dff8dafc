"""HTTP ingest on the Kafka bus (Tansu) against the ceiling and the embedded bus, in one run.

    python -m benchmarks.kafka_bus [--seconds 5] [--all-seconds 10]

Starts PostgreSQL (embedded), a Tansu broker, the bare starlette+hypercorn ceiling and
``mm-bronze serve`` processes; loads each with ``wrk`` (1.7 KB Observations, 32
connections, every body distinct). The HTTP goals hold on Kafka too: accepted req/s and
p99 against the ceiling, and with ``serve --all`` the consumers keep up.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from benchmarks.__main__ import OBSERVATION_ROUTE, observation_body, show, wait_http, warm_up
from benchmarks.loadgen import run_wrk
from benchmarks.summary import record
from tests.services.kafka import TEST_CONSUMER_ENV, TansuBroker
from tests.services.mm_bronze import MmBronze, free_port
from tests.services.postgres import create_database, postgres_server

NAME = "kafka_bus"
CONNECTIONS = 32


def submissions(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM ingestion.submissions").fetchone()
    return int(row[0]) if row else 0


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
        port = free_port()
        ceiling = subprocess.Popen([sys.executable, "-m", "benchmarks.ceiling_app", str(port)])
        try:
            wait_http(f"http://127.0.0.1:{port}/")
            kafka = {"KAFKA_SERVERS": broker.servers, **TEST_CONSUMER_ENV}
            base = run_wrk(f"http://127.0.0.1:{port}{OBSERVATION_ROUTE}", body,
                           connections=CONNECTIONS, seconds=args.seconds)  # fmt: skip
            show("ceiling (bare starlette)", base)
            results = {}
            for name, extra in (("embedded", {}), ("kafka", kafka)):
                env = {"POSTGRES_DSN": create_database(admin), **extra}
                with MmBronze(Path(tmp) / f"http-{name}", "--http", env=env) as http:
                    url = http.url + OBSERVATION_ROUTE
                    warm_up(url, body)
                    results[name] = run_wrk(
                        url, body, connections=CONNECTIONS, seconds=args.seconds
                    )
                show(f"serve --http, {name} bus", results[name], base)
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
                first, began = submissions(dsn), time.perf_counter()
                result = run_wrk(full.url + OBSERVATION_ROUTE, body, connections=CONNECTIONS,
                                 seconds=args.all_seconds)  # fmt: skip
                stored = (submissions(dsn) - first) / (time.perf_counter() - began)
            show("serve --all, kafka bus", result, base)
            print(f"  {'stored':<26} {stored:8.1f} obj/s")
            record(NAME, "serve --all on Kafka, Observations 32 conn: accepted req/s vs ceiling",
                   result.rate(), base.rate(), "req/s", goal=0.4)  # fmt: skip
            record(NAME, "serve --all on Kafka, Observations 32 conn: stored/s vs accepted/s",
                   stored, result.rate(), "obj/s", goal=0.8)  # fmt: skip
        finally:
            ceiling.terminate()
            ceiling.wait()
            broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
