"""A small HTTP/1.1 keep-alive load generator: N connections POST bodies for a duration.

Plain asyncio streams keep the client's own cost low and identical for every target, so
figures for mm-bronze and the ceiling are comparable within one run.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    bytes_sent: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def mb_per_s(self) -> float:
        return self.bytes_sent / self.seconds / 1e6 if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


async def _connection(
    host: str,
    port: int,
    path: str,
    bodies: itertools.cycle[bytes],
    deadline: float,
    result: LoadResult,
    expect: int,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            body = next(bodies)
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            start = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            result.latencies.append(time.perf_counter() - start)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == expect:
                result.requests += 1
                result.bytes_sent += len(body)
            else:
                result.errors += 1
    finally:
        writer.close()


async def run_load(
    port: int,
    path: str,
    bodies: list[bytes],
    *,
    connections: int,
    seconds: float,
    expect: int = 202,
    host: str = "127.0.0.1",
) -> LoadResult:
    result = LoadResult()
    cycle = itertools.cycle(bodies)
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(
        *(
            _connection(host, port, path, cycle, deadline, result, expect)
            for _ in range(connections)
        )
    )
    result.seconds = time.perf_counter() - start
    return result
