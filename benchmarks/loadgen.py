"""HTTP load with `wrk`: N keep-alive connections POST distinct bodies for a duration.

A Python load generator tops out below the hypercorn ceiling on a small machine and hides
real gaps, so HTTP load comes from ``wrk`` (Debian package ``wrk``; ``make bench`` installs
it). ``post_vary.lua`` replaces the marker ``@@MARK@@`` in the body with a per-request
counter: every request carries distinct bytes, so nothing is an accidental duplicate.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

MARKER = b"@@MARK@@"
SCRIPT = Path(__file__).with_name("post_vary.lua")


class _WrkSummary(msgspec.Struct):
    requests: int
    duration_us: int
    connect: int
    read: int
    write: int
    status: int
    timeout: int
    p50_us: int
    p99_us: int


@dataclass
class LoadResult:
    requests: int  # answered with a 2xx status
    errors: int  # non-2xx answers, socket errors and timeouts
    seconds: float
    body_bytes: int
    p50_ms: float
    p99_ms: float

    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def mb_per_s(self) -> float:
        return self.rate() * self.body_bytes / 1e6


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk not found: `apt-get install -y wrk` (make bench does it)")
    return path


def run_wrk(
    url: str,
    body: bytes,
    *,
    connections: int,
    seconds: float,
    content_type: str = "application/json",
    threads: int = 1,
) -> LoadResult:
    """POST ``body`` (which holds ``MARKER`` once) to ``url`` for ``seconds``."""
    if body.count(MARKER) != 1:
        raise ValueError("the body must hold the marker exactly once")
    tag = f"r{time.time_ns()}"
    with tempfile.NamedTemporaryFile(prefix="mmb-body-", suffix=".bin") as file:
        file.write(body)
        file.flush()
        out = subprocess.run(
            [
                wrk_binary(),
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "30s",
                "-s",
                str(SCRIPT),
                url,
                "--",
                file.name,
                content_type,
                tag,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_RESULT "))
    s = msgspec.json.decode(line.removeprefix("WRK_RESULT "), type=_WrkSummary)
    errors = s.status + s.connect + s.read + s.write + s.timeout
    return LoadResult(
        requests=s.requests - s.status,
        errors=errors,
        seconds=s.duration_us / 1e6,
        body_bytes=len(body),
        p50_ms=s.p50_us / 1000,
        p99_ms=s.p99_us / 1000,
    )
