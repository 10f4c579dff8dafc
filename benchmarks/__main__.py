"""`make bench`: HTTP ingest on the embedded bus against a bare starlette+hypercorn ceiling.

Every figure is measured in the same run, on the same machine, with the same load
generator, and reported as a ratio against the ceiling: machines here are shared and
noisy, so absolute numbers vary between runs while ratios hold.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import psycopg

from benchmarks.loadgen import LoadResult, run_load
from tests.services.mm_bronze import MmBronze, free_port
from tests.services.postgres import create_database, postgres_server

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
OBSERVATION = CORPUS / "fhir-r4-resources" / "json" / "observation-example.json"
BUNDLE = CORPUS / "fhir-r4-bundles" / "Les282_Bernier607_4f1ad84a-f8a2-2de6-343d-007efe781585.json"


@dataclass
class Scenario:
    name: str
    route: str
    bodies: list[bytes]
    connections: int


def observation_variants(n: int) -> list[bytes]:
    doc = msgspec.json.decode(OBSERVATION.read_bytes())
    out = []
    for i in range(n):
        doc["id"] = f"bench-{i}"
        out.append(msgspec.json.encode(doc))
    return out


def bundle_variants(n: int) -> list[bytes]:
    raw = BUNDLE.read_bytes().lstrip()
    assert raw.startswith(b"{")
    return [b'{"id": "bench-%d",' % i + raw[1:] for i in range(n)]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def load(port: int, scenario: Scenario, seconds: float) -> LoadResult:
    return asyncio.run(
        run_load(
            port, scenario.route, scenario.bodies, connections=scenario.connections, seconds=seconds
        )
    )


def submissions(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM ingestion.submissions").fetchone()
    return int(row[0]) if row else 0


def row(label: str, result: LoadResult, base: LoadResult | None) -> str:
    ratio = f"{result.rate() / base.rate():6.2f}" if base and base.rate() else "  1.00"
    return (
        f"  {label:<28} {result.rate():9.1f} req/s {result.mb_per_s():8.1f} MB/s "
        f"p50 {result.percentile(0.5):7.1f} ms  p99 {result.percentile(0.99):7.1f} ms  "
        f"x{ratio} of ceiling  (errors {result.errors})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--seconds", type=float, default=8.0, help="load duration per target")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 2
    scenarios = [
        Scenario(
            "Observation ~1.5 KB",
            "/ingest/fhir/json/R4/observation",
            observation_variants(40_000),
            connections=32,
        ),
        Scenario(
            "Synthea bundle ~360 KB",
            "/ingest/fhir/json/R4/bundle",
            bundle_variants(400),
            connections=8,
        ),
    ]
    print(f"mm-bronze HTTP ingest benchmark, {args.seconds:.0f} s per target, embedded bus")
    with (
        tempfile.TemporaryDirectory(prefix="mmb-bench-") as tmp,
        postgres_server(Path(tmp)) as admin_dsn,
    ):
        port = free_port()
        ceiling = subprocess.Popen([sys.executable, "-m", "benchmarks.ceiling_app", str(port)])
        try:
            wait_http(f"http://127.0.0.1:{port}/")
            for scenario in scenarios:
                print(
                    f"\n{scenario.name} ({len(scenario.bodies[0]):,} bytes, "
                    f"{scenario.connections} connections)"
                )
                base = load(port, scenario, args.seconds)
                print(row("ceiling (bare starlette)", base, None))
                dsn = create_database(admin_dsn)
                with MmBronze(
                    Path(tmp) / f"http-{scenario.connections}", "--http", env={"POSTGRES_DSN": dsn}
                ) as http:
                    accepted = load(http.http_port, scenario, args.seconds)
                print(row("mm-bronze serve --http", accepted, base))
                dsn = create_database(admin_dsn)
                with MmBronze(
                    Path(tmp) / f"all-{scenario.connections}", "--all", env={"POSTGRES_DSN": dsn}
                ) as full:
                    start = time.perf_counter()
                    result = load(full.http_port, scenario, args.seconds)
                    while submissions(dsn) < result.requests:
                        time.sleep(0.05)
                    elapsed = time.perf_counter() - start
                print(row("mm-bronze serve --all", result, base))
                stored = result.requests / elapsed
                print(
                    f"  {'end-to-end stored':<28} {stored:9.1f} obj/s "
                    f"{result.bytes_sent / elapsed / 1e6:8.1f} MB/s  "
                    f"x{stored / base.rate():6.2f} of ceiling req/s  "
                    f"({result.requests} accepted, all stored in {elapsed:.1f} s)"
                )
        finally:
            ceiling.terminate()
            ceiling.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
