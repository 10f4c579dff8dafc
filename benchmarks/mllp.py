"""MLLP throughput: messages/s with one ACK per message, against a framing-only echo server.

Both servers run as subprocesses on uvloop and are driven by the same asyncio client: N
connections, each sending one message and waiting for its ACK before sending the next.
The echo server reads frames with the door's ``FrameReader`` and answers a fixed ACK at once;
mm-bronze (``serve --mllp`` on embedded PostgreSQL) validates, publishes durably to the
queue and only then ACKs. The ratio says what validation + durable publishing cost.

    python -m benchmarks.mllp [--seconds 5] [--connections 1 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

START, END = b"\x0b", b"\x1c\r"
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "corpus" / "hl7v2" / "PHLIP_FLU_2.5.1_VALID_MESSAGE.txt"
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


async def _echo_main(port: int) -> None:
    from mm_bronze.ingest.mllp.framing import FrameReader, frame

    reply = frame(ECHO_ACK)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = FrameReader(reader, max_frame_bytes=16 * 1024 * 1024, idle_timeout=300)
        try:
            while await frames.read_frame() is not None:
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

    run(_echo_main(port))


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
    make = sample_message()
    loop = asyncio.get_running_loop()
    await asyncio.gather(
        *(_client(port, make, offset + i * 10_000_000, loop.time() + 0.5) for i in range(4))
    )
    start = loop.time()
    counts = await asyncio.gather(
        *(
            _client(port, make, offset + (i + 4) * 10_000_000, start + seconds)
            for i in range(connections)
        )
    )
    return sum(counts) / (loop.time() - start)


def start_echo() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from benchmarks.mllp import run_echo_server; run_echo_server({port})",
        ],
        cwd=ROOT,
    )
    wait_port(port, proc)
    return proc, port


def start_bronze(data_dir: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MM_BRONZE_")}
    env["MM_BRONZE_LOG_LEVEL"] = "warning"
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


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> dict[int, tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement per run (5)")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args(argv)
    from mm_bronze.runtime import run  # uvloop when installed, like the servers

    results: dict[int, tuple[float, float]] = {}
    echo, echo_port = start_echo()
    with tempfile.TemporaryDirectory(prefix="mllp-bench-") as data_dir:
        bronze, bronze_port = start_bronze(data_dir)
        try:
            for n, connections in enumerate(args.connections):
                offset = n * 1_000_000_000
                baseline = run(measure(echo_port, connections, args.seconds, offset))
                door = run(measure(bronze_port, connections, args.seconds, offset))
                results[connections] = (baseline, door)
        finally:
            stop(bronze)
            stop(echo)
    print("MLLP, one ACK per message (messages/s)")
    print(f"{'connections':>11}  {'echo baseline':>13}  {'mm-bronze':>9}  {'ratio':>6}")
    for connections, (baseline, door) in results.items():
        print(f"{connections:>11}  {baseline:>13,.0f}  {door:>9,.0f}  {door / baseline:>6.2f}")
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
