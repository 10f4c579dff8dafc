"""MLLP throughput: messages/s with one ACK per message, against baselines of the same run.

Every server runs as a subprocess on uvloop and is driven by the same asyncio client: N
connections, each sending one message and waiting for its ACK before sending the next.
mm-bronze (``serve --mllp``, log level ``warning``, on an embedded PostgreSQL started here)
validates, publishes durably to the queue and only then ACKs. The baselines:

- a framing-only echo server: reads frames with the door's ``FrameReader`` and answers a
  fixed ACK at once (what validation + durable publishing cost);
- sequential single-row committed transactions on the same PostgreSQL (autocommit
  ``INSERT`` of one row as large as an event into a copy of ``bus.messages``): the limit of
  a sender that waits for each durable ACK before sending the next message;
- as many concurrent publishers as connections on the embedded bus itself (``PgQueueBus``
  on the same database, no MLLP, no validation): what the bus's group commit allows.

Two bounds say what this machine allows where a goal is not met:

- 1 connection: a bare durable echo (framing, one committed single-row ``INSERT`` as large as
  an event, sent as the door sends its publish: prepared, on libpq directly, then a fixed ACK;
  no validation) against the sequential commits: the best ratio
  any door can reach here, with the client, the door and PostgreSQL as three processes
  taking turns on the same cores;
- N connections: the door itself (validation, ACK, the real group commit) with a flush that
  commits nothing, against the fixed goal: the rate of everything but durability.

At 1 connection the CPU time the door and the durable echo use per message (each process
with its children, read from ``/proc`` during their slices) is recorded too, with no goal:
what the door's own work costs where it runs, between the client's and PostgreSQL's turns.
At 16 connections, two ``serve --mllp`` processes sharing one port (``mllp.reuse_port``) are
measured in alternation with the one door, with no goal: what a second door process gives.

Each figure is the mean of three slices interleaved with the baselines' slices (commit
latency on a shared disk drifts within seconds). Figures go to ``benchmarks.summary``: 1
connection against the commit limit (goal 0.7), 16 connections against a fixed goal of 5,000
acked messages/s, both against the echo and the bus alone, and the bounds (no goal).

    python -m benchmarks.mllp [--seconds 6] [--connections 1 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.cpu_meter import tree_cpu
from tests.ports import free_port

START, END = b"\x0b", b"\x1c\r"
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "corpus" / "hl7v2" / "PHLIP_FLU_2.5.1_VALID_MESSAGE.txt"
ROUNDS = 3  # interleaved slices per figure
ECHO_ACK = b"MSH|^~\\&|BRONZE|DATA|LAB|HOSP|20250101000000||ACK^R01^ACK|1|P|2.5.1\rMSA|AA|1\r"


def sample_message() -> Callable[[int], bytes]:
    """A factory of distinct messages (the control id varies), from the corpus when present."""
    if SAMPLE.exists():
        base = SAMPLE.read_bytes()
        # An original-mode copy: the corpus file asks for no ACK (MSH-15/16 "NE").
        base = base.replace(b"|NE|NE|", b"|||", 1)
    else:
        base = (
            b"MSH|^~\\&|LAB|HOSP|BRONZE|DATA|20250101||ORU^R01^ORU_R01|6479|P|2.5.1\r"
            b"PID|1||123^^^HOSP^MR||Doe^Jane\rOBR|1||F1|12345^Test^LN\r"
            b"OBX|1|ST|12345^Test^LN||value||||||F\r"
        )
    marker = b"|6479|"
    assert marker in base, "sample message must carry control id 6479"

    def make(n: int) -> bytes:
        return base.replace(marker, f"|B{n:010d}|".encode(), 1)

    return make


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port}")


async def _serve_echo(
    port: int, before_ack: Callable[[bytes], Awaitable[None]] | None = None
) -> None:
    """Read frames with the door's ``FrameReader`` and answer each with a fixed ACK, after
    ``before_ack(message)`` when given."""
    from mm_bronze.ingest.mllp.framing import FrameReader, frame

    reply = frame(ECHO_ACK)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = FrameReader(reader, max_frame_bytes=16 * 1024 * 1024, idle_timeout=300)
        try:
            while (message := await frames.read_frame()) is not None:
                if before_ack is not None:
                    await before_ack(message)
                writer.write(reply)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def run_echo_server(port: int) -> None:
    """The baseline: MLLP framing and a fixed ACK, nothing else."""
    from mm_bronze.runtime import run

    run(_serve_echo(port))


async def _durable_echo_main(port: int, dsn: str) -> None:
    import psycopg

    from mm_bronze.metadata import prepared
    from mm_bronze.metadata.prepared import Statement

    padding = os.urandom(512)  # about what an event adds to its message
    # The door's own way to publish: a prepared statement sent on libpq directly.
    insert = Statement.of(
        "INSERT INTO public.bench_durable_echo (topic, key, value) VALUES (%s, %b, %b)"
    )
    # One database connection, opened once, shared by the (sequential) senders.
    db = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await db.execute("DROP TABLE IF EXISTS public.bench_durable_echo")
    await db.execute("CREATE TABLE public.bench_durable_echo (LIKE bus.messages INCLUDING ALL)")
    await prepared.prepare(db, insert)
    lock = asyncio.Lock()

    async def commit(message: bytes) -> None:
        async with lock:
            await prepared.execute(db, insert, (b"bench", b"k", message + padding))

    await _serve_echo(port, commit)


def run_durable_echo_server(port: int, dsn: str) -> None:
    """The 1-connection bound: framing, one committed INSERT per message, a fixed ACK."""
    from mm_bronze.runtime import run

    run(_durable_echo_main(port, dsn))


async def _no_commit_door_main(port: int) -> None:
    from mm_bronze.groupcommit import GroupCommitter
    from mm_bronze.ingest.mllp.access import PeerPolicy
    from mm_bronze.ingest.mllp.receiver import MessageReceiver
    from mm_bronze.ingest.mllp.server import MllpServer
    from mm_bronze.logging import configure_logging
    from mm_bronze.metrics.registry import Metrics
    from mm_bronze.settings import MllpSettings

    async def commit_nothing(items: list[bytes]) -> None:
        return None

    class NoCommitBus:
        def __init__(self) -> None:
            self.committer: GroupCommitter[bytes] = GroupCommitter(commit_nothing)

        async def publish(self, topic: str, key: bytes, value: bytes) -> None:
            await self.committer.submit(value)

    configure_logging("warning")
    bus = NoCommitBus()
    await bus.committer.open()
    receiver = MessageReceiver(
        bus=bus,  # type: ignore[arg-type]
        topic="bench",
        staging=None,  # type: ignore[arg-type]
        inline_limit=16 * 1024 * 1024,
        metrics=Metrics().door("mllp"),
    )
    settings = MllpSettings(port=port)
    server = MllpServer(settings, receiver, policy=PeerPolicy([], []))
    await server.serve(asyncio.Event())


def run_no_commit_door(port: int) -> None:
    """The N-connection bound: the door with a group commit that commits nothing."""
    from mm_bronze.runtime import run

    run(_no_commit_door_main(port))


async def _client(port: int, make: Callable[[int], bytes], first: int, stop_at: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    sent = 0
    buffer = b""
    try:
        while loop.time() < stop_at:
            writer.write(START + make(first + sent) + END)
            while END not in buffer:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                buffer += chunk
            ack, _, buffer = buffer.partition(END)
            if b"MSA|AA|" not in ack:
                raise RuntimeError(f"unexpected ACK: {ack[:120]!r}")
            sent += 1
    finally:
        writer.close()
    return sent


async def measure(port: int, connections: int, seconds: float, offset: int) -> float:
    """Messages per second over ``seconds`` with ``connections`` senders (after a warm-up)."""
    rate, _cpu = await measure_cpu(port, connections, seconds, offset, None)
    return rate


async def measure_cpu(
    port: int, connections: int, seconds: float, offset: int, pid: int | None
) -> tuple[float, float]:
    """``measure``, and the CPU seconds per message that the server process ``pid`` (with
    its children) used meanwhile (0.0 when ``pid`` is None)."""
    make = sample_message()
    loop = asyncio.get_running_loop()
    await asyncio.gather(
        *(_client(port, make, offset + i * 10_000_000, loop.time() + 0.5) for i in range(4))
    )
    used = tree_cpu(pid) if pid is not None else 0.0
    start = loop.time()
    counts = await asyncio.gather(
        *(
            _client(port, make, offset + (i + 4) * 10_000_000, start + seconds)
            for i in range(connections)
        )
    )
    elapsed = loop.time() - start
    if pid is not None:
        used = tree_cpu(pid) - used
    return sum(counts) / elapsed, used / max(sum(counts), 1)


def start_echo(server: str = "run_echo_server", *args: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    call = ", ".join([str(port), *(repr(a) for a in args)])
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from benchmarks.mllp import {server}; {server}({call})"],
        cwd=ROOT,
    )
    wait_port(port, proc)
    return proc, port


def start_bronze(
    data_dir: str, dsn: str, port: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``serve --mllp`` on ``port`` (a free one if None); given a port, with
    ``mllp.reuse_port``, so that several such processes share it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MM_BRONZE_")}
    env["MM_BRONZE_LOG_LEVEL"] = "warning"
    env["POSTGRES_DSN"] = dsn
    if port is None:
        port = free_port()
    else:
        env["MM_BRONZE_MLLP_REUSE_PORT"] = "true"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mm_bronze",
            "serve",
            "--mllp",
            "--data-dir",
            data_dir,
            "--mllp-port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc)
    return proc, port


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on TCP ``port`` (Linux ``/proc``)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    fds = f"/proc/{pid}/fd"
    with contextlib.suppress(OSError):
        return any(os.readlink(f"{fds}/{fd}") in inodes for fd in os.listdir(fds))
    return False


def two_doors_rate(work: Path, dsn: str, one_port: int, seconds: float) -> tuple[float, float]:
    """At 16 connections, two ``serve --mllp`` processes sharing one port (``mllp.reuse_port``)
    and, in alternation, the one door of ``one_port``: both mean rates."""
    from mm_bronze.runtime import run

    port = free_port()
    doors = []
    try:
        for n in range(2):
            proc, _ = start_bronze(str(work / f"pair{n}"), dsn, port)
            doors.append(proc)
            # The port answers once the first listens: wait for each one's own listener.
            deadline = time.monotonic() + 120
            while not listens(proc.pid, port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve --mllp on port {port} did not listen")
                time.sleep(0.1)
        pair, one = [], []
        for r in range(ROUNDS):
            offset = 3_000_000_000 + r * 200_000_000
            one.append(run(measure(one_port, 16, seconds / ROUNDS, offset)))
            pair.append(run(measure(port, 16, seconds / ROUNDS, offset + 100_000_000)))
        return statistics.mean(pair), statistics.mean(one)
    finally:
        for proc in doors:
            stop(proc)


async def commit_rate(dsn: str, seconds: float, row_bytes: int) -> float:
    """Sequential single-row committed INSERTs per second into a copy of ``bus.messages``."""
    import psycopg

    value = os.urandom(row_bytes)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("DROP TABLE IF EXISTS public.bench_commits")
        await conn.execute("CREATE TABLE public.bench_commits (LIKE bus.messages INCLUDING ALL)")
        insert = "INSERT INTO public.bench_commits (topic, key, value) VALUES (%s, %s, %s)"
        loop = asyncio.get_running_loop()
        count = 0
        warm = loop.time() + 0.5
        while loop.time() < warm:
            await conn.execute(insert, ("bench", b"%d" % count, value), prepare=True)
            count += 1
        count = 0
        start = loop.time()
        while loop.time() < start + seconds:
            await conn.execute(insert, ("bench", b"%d" % count, value), prepare=True)
            count += 1
        elapsed = loop.time() - start
        await conn.execute("DROP TABLE public.bench_commits")
    return count / elapsed


async def bus_rate(dsn: str, senders: int, seconds: float, row_bytes: int) -> float:
    """Events/s that ``senders`` concurrent publishers get from the embedded bus itself."""
    from psycopg_pool import AsyncConnectionPool

    from mm_bronze.bus.pgqueue import PgQueueBus

    value = os.urandom(row_bytes)
    pool = AsyncConnectionPool(
        dsn, min_size=2, max_size=10, open=False, kwargs={"autocommit": True}
    )
    await pool.open(wait=True)
    bus = PgQueueBus(pool)
    await bus.open()
    loop = asyncio.get_running_loop()

    async def sender(stop_at: float) -> int:
        sent = 0
        while loop.time() < stop_at:
            await bus.publish("bench-bus-ceiling", b"%d" % sent, value)
            sent += 1
        return sent

    try:
        await asyncio.gather(*(sender(loop.time() + 0.5) for _ in range(senders)))
        start = loop.time()
        counts = await asyncio.gather(*(sender(start + seconds) for _ in range(senders)))
        elapsed = loop.time() - start
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM bus.messages WHERE topic = 'bench-bus-ceiling'")
    finally:
        await bus.close()
        await pool.close()
    return sum(counts) / elapsed


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> dict[int, tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measurement per figure (6)")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args(argv)
    from benchmarks.summary import record
    from mm_bronze.runtime import run  # uvloop when installed, like the servers
    from tests.services.postgres import create_database, outside_pytest_tmp, postgres_server

    results: dict[int, tuple[float, float]] = {}
    pair: tuple[float, float] | None = None  # two doors on one port, and one (16 connections)
    buses: dict[int, float] = {}
    bounds: dict[int, float] = {}  # the durable echo (1) or the door committing nothing (N)
    commits = 0.0
    cpu_door = cpu_echo = 0.0  # CPU seconds per message at 1 connection
    row_bytes = len(sample_message()(0)) + 512  # about one encoded event
    echo, echo_port = start_echo()
    no_commit, no_commit_port = start_echo("run_no_commit_door")
    with outside_pytest_tmp("mllp-bench-") as work, postgres_server(work) as admin_dsn:
        dsn = create_database(admin_dsn, "mllp")
        bronze, bronze_port = start_bronze(str(work / "data"), dsn)
        durable, durable_port = start_echo("run_durable_echo_server", dsn)
        try:
            # Commit latency drifts within seconds on a shared disk: every figure is the mean
            # of ROUNDS interleaved slices, so baselines and door see the same conditions.
            part = args.seconds / ROUNDS
            for n, connections in enumerate(args.connections):
                rates: dict[str, list[float]] = {
                    "echo": [],
                    "commits": [],
                    "bus": [],
                    "door": [],
                    "bound": [],
                }
                cpus: dict[str, list[float]] = {"door": [], "bound": []}
                bound_port = durable_port if connections == 1 else no_commit_port
                for r in range(ROUNDS):
                    offset = n * 1_000_000_000 + r * 200_000_000
                    rates["echo"].append(run(measure(echo_port, connections, part, offset)))
                    if connections == 1:
                        rates["commits"].append(run(commit_rate(dsn, part, row_bytes)))
                    rates["bus"].append(run(bus_rate(dsn, connections, part, row_bytes)))
                    # At 1 connection, what the door and the durable echo cost per message.
                    watch = connections == 1
                    rate, cpu = run(
                        measure_cpu(
                            bronze_port, connections, part, offset, bronze.pid if watch else None
                        )
                    )
                    rates["door"].append(rate)
                    cpus["door"].append(cpu)
                    rate, cpu = run(
                        measure_cpu(
                            bound_port, connections, part, offset, durable.pid if watch else None
                        )
                    )
                    rates["bound"].append(rate)
                    cpus["bound"].append(cpu)
                if connections == 1:
                    commits = statistics.mean(rates["commits"])
                    cpu_door = statistics.mean(cpus["door"])
                    cpu_echo = statistics.mean(cpus["bound"])
                buses[connections] = statistics.mean(rates["bus"])
                bounds[connections] = statistics.mean(rates["bound"])
                results[connections] = (
                    statistics.mean(rates["echo"]),
                    statistics.mean(rates["door"]),
                )
            if 16 in args.connections:
                pair = two_doors_rate(work, dsn, bronze_port, args.seconds)
        finally:
            stop(bronze)
            stop(durable)
            stop(no_commit)
            stop(echo)
    print("MLLP, one ACK per message (messages/s)")
    print(f"{'connections':>11}  {'echo':>8}  {'bus alone':>9}  {'mm-bronze':>9}  {'÷ echo':>6}")
    for connections, (baseline, door) in results.items():
        print(
            f"{connections:>11}  {baseline:>8,.0f}  {buses[connections]:>9,.0f}  {door:>9,.0f}"
            f"  {door / baseline:>6.2f}"
        )
    for connections, (baseline, door) in results.items():
        label = f"{connections} connection{'s' if connections > 1 else ''}"
        record("mllp", f"{label}: acked msg/s vs framing-only echo", door, baseline, "msg/s")
        record(
            "mllp",
            f"{label}: acked msg/s vs as many publishers on the bus alone",
            door,
            buses[connections],
            "msg/s",
            note="the bus's own group-commit rate at that concurrency, no MLLP",
        )
        if connections == 1 and commits:
            print(f"sequential single-row commits: {commits:,.0f}/s, ratio {door / commits:.2f}")
            record(
                "mllp",
                "1 connection: acked msg/s vs sequential single-row commits",
                door,
                commits,
                "msg/s",
                goal=0.7,
            )
            bound = bounds[connections]
            print(f"bound, bare durable echo: {bound:,.0f}/s, ratio {bound / commits:.2f}")
            print(
                f"CPU per message: door {cpu_door * 1e6:.0f} µs, durable echo"
                f" {cpu_echo * 1e6:.0f} µs"
            )
            record(
                "mllp",
                "1 connection: door's CPU per message vs the bare durable echo's",
                cpu_door * 1e6,
                cpu_echo * 1e6,
                "µs",
                higher_is_better=False,
                note="the door's own work per message (validation, event, ACK, group commit) "
                "as it runs between the client's and PostgreSQL's turns",
            )
            record(
                "mllp",
                "1 connection, bound: bare durable echo vs sequential single-row commits",
                bound,
                commits,
                "msg/s",
                note="framing + one committed INSERT + fixed ACK, no validation: the best "
                "ratio of a door on this machine",
            )
        if connections > 1:
            bound = bounds[connections]
            print(f"bound, door committing nothing: {bound:,.0f}/s, door ÷ it {door / bound:.2f}")
            record(
                "mllp",
                f"{label}, bound: door with a no-op commit vs the fixed goal of 5,000",
                bound,
                5000.0,
                "msg/s",
                note="validation + ACK + group commit, nothing durable: the door's own limit",
            )
        if connections == 16:
            record(
                "mllp",
                "16 connections: acked msg/s vs the fixed goal of 5,000",
                door,
                5000.0,
                "msg/s",
                goal=1.0,
                note="baseline is the goal, not a measurement",
            )
    if pair is not None:
        print(f"16 connections, two doors on one port: {pair[0]:,.0f}/s, one door {pair[1]:,.0f}/s")
        record(
            "mllp",
            "16 connections: two serve --mllp processes on one port (mllp.reuse_port) vs one",
            pair[0],
            pair[1],
            "msg/s",
            note="no goal: a second door process on the same cores, alternated with the one door",
        )
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
