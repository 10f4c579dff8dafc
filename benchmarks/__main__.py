"""`make bench`: HTTP ingest against a bare starlette+hypercorn ceiling, measured with wrk.

Every figure is measured in the same run, on the same machine, with the same load
generator (``wrk``, every request's body distinct), and recorded as a ratio against the
ceiling: machines here are shared and noisy, so absolute numbers vary between runs while
ratios hold.

- ``serve --http``: accepted req/s and p99 latency, for a 1.7 KB FHIR Observation and a
  364 KB Synthea bundle, each against the ceiling at the same number of connections.
- ``serve --all``: Observations for ``--all-seconds``; the consumers must keep up (stored/s
  close to accepted/s, the backlog bounded) while the door keeps its pace. With everything
  on the same cores, the most it could accept here is cores / its CPU per request (ingest to
  stored: the server, PostgreSQL and wrk), recorded against the ceiling as the machine's bound.
- The same with its roles as two processes on the same data, ``serve --http`` and
  ``serve --consumers`` (no goal): what a second interpreter and event loop for the
  consumers gives on the same cores.
- Two ``serve --http`` processes sharing one port (``http.reuse_port``), Observations against
  the ceiling in alternation (no goal): what a second door process gives on the same cores.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import psycopg

from benchmarks.cpu_meter import CpuMeter, per_request_ms, postmaster_pid, tree_cpu
from benchmarks.loadgen import MARKER, LoadResult, run_wrk
from benchmarks.summary import record
from mm_bronze import formats
from tests.services.mm_bronze import MmBronze, free_port
from tests.services.postgres import create_database, postgres_server

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
OBSERVATION = CORPUS / "fhir-r4-resources" / "json" / "observation-example.json"
BUNDLE = CORPUS / "fhir-r4-bundles" / "Les282_Bernier607_4f1ad84a-f8a2-2de6-343d-007efe781585.json"
OBSERVATION_ROUTE = "/ingest/fhir/json/R4/observation"
BUNDLE_ROUTE = "/ingest/fhir/json/R4/bundle"
NAME = "http"


def observation_body() -> bytes:
    doc = msgspec.json.decode(OBSERVATION.read_bytes())
    doc["id"] = MARKER.decode()
    return msgspec.json.encode(doc)


def bundle_body() -> bytes:
    raw = BUNDLE.read_bytes().lstrip()
    assert raw.startswith(b"{")
    return b'{"id": "' + MARKER + b'",' + raw[1:]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def show(label: str, result: LoadResult, base: LoadResult | None = None) -> None:
    ratio = f"x{result.rate() / base.rate():.2f} of ceiling" if base and base.rate() else ""
    print(
        f"  {label:<26} {result.rate():8.1f} req/s {result.mb_per_s():7.1f} MB/s "
        f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  {ratio}"
        f"  (errors {result.errors})",
        flush=True,
    )


def best(results: list[LoadResult]) -> LoadResult:
    return max(results, key=LoadResult.rate)


def cpu_per_body(body: bytes, route: str) -> float:
    """CPU seconds this process spends validating and hashing ``body`` once (best of a few
    rounds): the least the door must spend on it before acknowledging."""
    _, fmt, content_type, version, _subtype = route.strip("/").split("/")
    body = body.replace(MARKER, b"a" * len(MARKER))  # what wrk puts there: a distinct id
    best_time = float("inf")
    for _ in range(20):
        start = time.process_time()
        for _ in range(10):
            validator = formats.validator_for(fmt, content_type, version=version)
            for offset in range(0, len(body), 64 * 1024):
                validator.feed(body[offset : offset + 64 * 1024])
            validator.finish()
            hashlib.sha256(body).digest()
        best_time = min(best_time, (time.process_time() - start) / 10)
    return best_time


def warm_up(url: str, body: bytes, requests: int = 8) -> None:
    """A few requests before measuring: the validation workers start and build their types
    on their first bodies, which a short measurement would otherwise count. They are sent a
    few at a time: the pool starts a worker only when none is idle, so requests one by one
    would start one worker and leave the others to start while measuring."""
    at_once = 2 * (os.cpu_count() or 1)

    def post(n: int) -> None:
        answer = httpx.post(url, content=body.replace(MARKER, b"warm-%d" % n), timeout=60)
        answer.raise_for_status()

    with ThreadPoolExecutor(at_once) as pool:
        list(pool.map(post, range(max(requests, 2 * at_once))))


def record_bound(
    label: str, connections: int, body: bytes, base: LoadResult, receive_cpu: float
) -> None:
    """What this machine allows at most: every core doing nothing but what the ceiling does
    per request (read the body, answer) plus validating and hashing the body (no staging, no
    commit, no load generator), against the same ceiling as the door."""
    cpu = receive_cpu + cpu_per_body(body, BUNDLE_ROUTE)
    cores = os.cpu_count() or 1
    bound = cores / cpu
    print(f"  {'bound (cores / CPU)':<26} {bound:8.1f} req/s  ({receive_cpu * 1000:.2f} ms of CPU"
          f" per request to receive, {cpu * 1000:.2f} ms with validating and hashing the body;"
          f" {cores} cores)")  # fmt: skip
    record(NAME, f"{label}, {connections} conn: the machine's bound (cores / CPU to receive,"
           " validate and hash a body)", bound, base.rate(), "req/s",
           note="no goal: more than any door could accept here")  # fmt: skip


@contextlib.contextmanager
def bare_app(module: str, *args: str) -> Iterator[tuple[str, int]]:
    """``python -m module PORT *args`` (a bare app of ``benchmarks``) on a free port: its URL
    and process id, once it answers."""
    port = free_port()
    app = subprocess.Popen([sys.executable, "-m", module, str(port), *args])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/")
        yield url, app.pid
    finally:
        app.terminate()
        app.wait(30)


@contextlib.contextmanager
def durable_ceiling(dsn: str, directory: Path) -> Iterator[str]:
    """``benchmarks.durable_ceiling_app`` on ``dsn`` (whose schema the door has made): its URL."""
    with bare_app("benchmarks.durable_ceiling_app", dsn, str(directory)) as (url, _pid):
        yield url


def record_durable(label: str, result: LoadResult, base: LoadResult) -> None:
    """The bounds a durable 202 sets here: the ceiling's app made durable in the simplest way
    (``durable_ceiling_app``), without validation, against the same ceiling as the door."""
    record(NAME, f"{label}: the bare durable app's req/s (bound: durable, no validation)",
           result.rate(), base.rate(), "req/s", note="no goal: a bound")  # fmt: skip
    record(NAME, f"{label}: the bare durable app's p99 latency (bound)", result.p99_ms,
           base.p99_ms, "ms", note="no goal: a bound")  # fmt: skip


@contextlib.contextmanager
def doors_on_one_port(directory: Path, dsn: str, count: int) -> Iterator[str]:
    """``count`` ``serve --http`` processes listening on one port (``http.reuse_port``): its
    URL once every one of them listens."""
    port = free_port()
    env = {"POSTGRES_DSN": dsn, "MM_BRONZE_HTTP_REUSE_PORT": "true"}
    with contextlib.ExitStack() as stack:
        for n in range(count):  # each ready once its log says it listens (the port cannot tell)
            stack.enter_context(MmBronze(directory / f"door{n}", "--http", env=env, http_port=port))
        yield f"http://127.0.0.1:{port}"


def shared_port(
    directory: Path, dsn: str, ceiling_url: str, body: bytes, args: argparse.Namespace
) -> None:
    """Two ``serve --http`` processes on one port against the ceiling, in alternation."""
    print("\ntwo serve --http processes on one port (http.reuse_port), Observations, 32 conn")
    with doors_on_one_port(directory, dsn, 2) as url:
        warm_up(url + OBSERVATION_ROUTE, body)
        bases, results = [], []
        for _ in range(args.rounds):
            bases.append(run_wrk(ceiling_url + OBSERVATION_ROUTE, body, connections=32,
                                 seconds=args.seconds))  # fmt: skip
            show("ceiling (bare starlette)", bases[-1])
            results.append(run_wrk(url + OBSERVATION_ROUTE, body, connections=32,
                                   seconds=args.seconds))  # fmt: skip
            show("two serve --http", results[-1], bases[-1])
    base, result = best(bases), best(results)
    note = f"no goal: a second door process on the same cores; p99 {result.p99_ms:.1f} ms"
    record(NAME, "two serve --http processes on one port (http.reuse_port), Observation 1.7 KB,"
           " 32 conn: accepted req/s vs ceiling", result.rate(), base.rate(), "req/s",
           note=note)  # fmt: skip


def record_http(figure: str, result: LoadResult, base: LoadResult, goal: float) -> None:
    note = f"{result.errors} errors" if result.errors else ""
    record(NAME, f"{figure}: accepted req/s", result.rate(), base.rate(), "req/s", goal=goal,
           note=note)  # fmt: skip
    record(NAME, f"{figure}: p99 latency", result.p99_ms, base.p99_ms, "ms", goal=3.0,
           higher_is_better=False)  # fmt: skip


@dataclass
class Progress:
    """Submissions recorded and events waiting on the queue, sampled while load runs."""

    dsn: str
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> tuple[float, int, int]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            stored = conn.execute("SELECT count(*) FROM ingestion.submissions").fetchone()
            waiting = conn.execute("SELECT count(*) FROM bus.messages").fetchone()
        return (
            time.perf_counter(),
            int(stored[0]) if stored else 0,
            int(waiting[0]) if waiting else 0,
        )

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.samples.append(self.sample())


@dataclass
class Stored:
    """A load run until stored: what the door accepted, what the consumers stored meanwhile."""

    result: LoadResult
    rate: float  # stored/s while the load ran
    note: str  # the backlog
    cpu_ms: dict[str, float]  # CPU per request of each process, until all was stored


def load_to_stored(
    url: str, dsn: str, roots: dict[str, int], tmp: Path, body: bytes, seconds: float
) -> Stored:
    """wrk on ``url`` for ``seconds`` with the consumers of ``roots`` storing meanwhile: the
    door's figures, the stored rate and backlog, and the CPU per request of ``roots`` and
    PostgreSQL (its server under ``tmp``) from ingest until every accepted body is stored."""
    warm_up(url + OBSERVATION_ROUTE, body)
    if (postgres := postmaster_pid(tmp / "pg")) is not None:
        roots = {**roots, "postgres": postgres}
    meter = CpuMeter(roots)
    progress = Progress(dsn)
    first = progress.sample()
    sampler = threading.Thread(target=progress.run, daemon=True)
    meter.start()
    sampler.start()
    result = run_wrk(url + OBSERVATION_ROUTE, body, connections=32, seconds=seconds)
    progress.stop.set()
    sampler.join()
    last = progress.sample()
    # CPU per request from ingest to stored: until the consumers caught up.
    deadline = time.monotonic() + 60
    while progress.sample()[1] - first[1] < result.requests and time.monotonic() < deadline:
        time.sleep(0.2)
    used = meter.stop()
    backlog = [waiting for _, _, waiting in progress.samples]
    early = max(backlog[: len(backlog) // 3 or 1], default=0)
    return Stored(
        result=result,
        rate=(last[1] - first[1]) / (last[0] - first[0]),
        note=f"backlog {early} after the first third, {last[2]} at the end",
        cpu_ms=per_request_ms(used, result.requests),
    )


def disk_files_per_second(directory: Path, body: bytes, seconds: float = 3.0) -> float:
    """What the disk allows now: files/s written with temp, fsync, rename, 8 at a time
    (the consumers' write concurrency), one directory fsync per 100 files."""
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + seconds
    counter = itertools.count()

    def write(n: int) -> None:
        path = directory / f"{n}.json"
        with open(path.with_suffix(".tmp"), "wb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        os.replace(path.with_suffix(".tmp"), path)

    began, written = time.perf_counter(), 0
    with ThreadPoolExecutor(8) as pool:
        while time.perf_counter() < deadline:
            list(pool.map(write, [next(counter) for _ in range(100)]))
            fd = os.open(directory, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            written += 100
    return written / (time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--seconds", type=float, default=4.0, help="wrk duration per round")
    parser.add_argument("--all-seconds", type=float, default=30.0, help="serve --all duration")
    parser.add_argument("--skip-bundle", action="store_true", help="Observations only")
    parser.add_argument("--bundle-only", action="store_true", help="the bundle rows only")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per target")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 2
    observation, bundle = observation_body(), bundle_body()
    print(f"mm-bronze HTTP ingest benchmark (wrk), {args.seconds:.0f} s per target, embedded bus")
    with (
        tempfile.TemporaryDirectory(prefix="mmb-bench-") as tmp,
        postgres_server(Path(tmp)) as admin_dsn,
    ):
        port = free_port()
        ceiling = subprocess.Popen([sys.executable, "-m", "benchmarks.ceiling_app", str(port)])
        ceiling_url = f"http://127.0.0.1:{port}"
        try:
            wait_http(ceiling_url + "/")
            runs = (
                []
                if args.bundle_only
                else [("Observation 1.7 KB", OBSERVATION_ROUTE, observation, 32)]
            )
            if not args.skip_bundle:
                runs += [("Synthea bundle 364 KB", BUNDLE_ROUTE, bundle, c) for c in (8, 32)]
            dsn = create_database(admin_dsn)
            with (
                MmBronze(Path(tmp) / "http", "--http", env={"POSTGRES_DSN": dsn}) as http,
                durable_ceiling(dsn, Path(tmp) / "durable") as durable_url,
            ):
                for label, route, body, connections in runs:
                    print(f"\n{label} ({len(body):,} bytes, {connections} connections)")
                    # Alternate the targets and keep each one's best round: a neighbour's
                    # burst on a shared machine then hits neither figure alone.
                    warm_up(http.url + route, body)
                    bases, results, durables = [], [], []
                    ceiling_cpu = []  # the ceiling's CPU seconds per request, per round
                    for _ in range(args.rounds):
                        cpu_before = tree_cpu(ceiling.pid)
                        bases.append(run_wrk(ceiling_url + route, body, connections=connections,
                                             seconds=args.seconds))  # fmt: skip
                        answered = bases[-1].requests + bases[-1].errors
                        ceiling_cpu.append((tree_cpu(ceiling.pid) - cpu_before) / answered)
                        show("ceiling (bare starlette)", bases[-1])
                        durables.append(run_wrk(durable_url + route, body,
                                                connections=connections,
                                                seconds=args.seconds))  # fmt: skip
                        show("bare durable app", durables[-1], bases[-1])
                        results.append(run_wrk(http.url + route, body, connections=connections,
                                               seconds=args.seconds))  # fmt: skip
                        show("serve --http", results[-1], bases[-1])
                    base, result = best(bases), best(results)
                    record_http(f"serve --http, {label}, {connections} conn", result, base,
                                0.6 if route == OBSERVATION_ROUTE else 0.5)  # fmt: skip
                    record_durable(f"{label}, {connections} conn", best(durables), base)
                    if route == BUNDLE_ROUTE:
                        record_bound(label, connections, body, base, min(ceiling_cpu))
            if args.bundle_only:
                return 0
            shared_port(Path(tmp) / "shared", create_database(admin_dsn), ceiling_url,
                        observation, args)  # fmt: skip
            print(f"\nserve --all, Observations, 32 connections, {args.all_seconds:.0f} s")
            base = run_wrk(ceiling_url + OBSERVATION_ROUTE, observation, connections=32,
                           seconds=args.seconds)  # fmt: skip
            show("ceiling (bare starlette)", base)
            dsn = create_database(admin_dsn)
            with MmBronze(Path(tmp) / "all", "--all", env={"POSTGRES_DSN": dsn}) as full:
                assert full.proc is not None
                stored = load_to_stored(full.url, dsn, {"serve": full.proc.pid}, Path(tmp),
                                        observation, args.all_seconds)  # fmt: skip
            result = stored.result
            show("serve --all (accepted)", result, base)
            note = stored.note
            disk = disk_files_per_second(Path(tmp) / "disk", observation)
            note += f"; the disk allowed {disk:.0f} files/s (temp, fsync, rename; 8 at once)"
            print(f"  {'stored':<26} {stored.rate:8.1f} obj/s  {note}")
            record(NAME, "serve --all, Observations 32 conn: accepted req/s vs ceiling",
                   result.rate(), base.rate(), "req/s", goal=0.4)  # fmt: skip
            record(NAME, "serve --all, Observations 32 conn: stored/s vs accepted/s",
                   stored.rate, result.rate(), "obj/s", goal=0.8, note=note)  # fmt: skip
            # The most serve --all could accept here, every core busy with it, PostgreSQL and
            # wrk, nothing else: against the ceiling's measured rate, as the goal's ratio is.
            ms = stored.cpu_ms
            bound = (os.cpu_count() or 1) * 1000 / sum(ms.values())
            parts = "  ".join(f"{name} {value:.3f}" for name, value in ms.items())
            print(f"  {'CPU ms/request, to stored':<26} {parts}  = {sum(ms.values()):.3f}")
            print(f"  {'bound (cores / CPU)':<26} {bound:8.1f} req/s x{bound / base.rate():.2f} "
                  "of the ceiling")  # fmt: skip
            record(NAME, "serve --all: the machine's bound, cores / CPU per request "
                   "(all processes, to stored) vs the ceiling's req/s",
                   bound, base.rate(), "req/s",
                   note="no goal: the most serve --all could accept here; "
                   f"CPU ms/request {parts}")  # fmt: skip

            # The same work as two processes on the same data: the doors' event loop and
            # interpreter lock no longer shared with the consumers (see the README's
            # "Deploying and scaling").
            print(f"\nserve --http and serve --consumers apart, {args.all_seconds:.0f} s")
            dsn = create_database(admin_dsn)
            env = {"POSTGRES_DSN": dsn}
            with (
                MmBronze(Path(tmp) / "apart", "--http", env=env) as door,
                MmBronze(Path(tmp) / "apart", "--consumers", env=env) as consumers,
            ):
                assert door.proc is not None and consumers.proc is not None
                roots = {"serve --http": door.proc.pid, "serve --consumers": consumers.proc.pid}
                apart = load_to_stored(door.url, dsn, roots, Path(tmp), observation,
                                       args.all_seconds)  # fmt: skip
            show("two processes (accepted)", apart.result, base)
            print(f"  {'stored':<26} {apart.rate:8.1f} obj/s  {apart.note}")
            parts = "  ".join(f"{name} {value:.3f}" for name, value in apart.cpu_ms.items())
            print(f"  {'CPU ms/request, to stored':<26} {parts}")
            record(NAME, "serve --http and serve --consumers apart, Observations 32 conn: "
                   "accepted req/s vs ceiling", apart.result.rate(), base.rate(), "req/s",
                   note=f"no goal: serve --all split in two; serve --all {result.rate():.0f}"
                   " req/s")  # fmt: skip
            record(NAME, "serve --http and serve --consumers apart: stored/s vs accepted/s",
                   apart.rate, apart.result.rate(), "obj/s",
                   note=f"no goal; {apart.note}")  # fmt: skip
        finally:
            ceiling.terminate()
            ceiling.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
