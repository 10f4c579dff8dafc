"""Consumer drain rate on local storage vs the S3 emulator (moto), in one run.

    python -m benchmarks.storage_drain [--small 600] [--large 20]

Publishes the same workload for each backend to the embedded PostgreSQL queue, then
times the persist pipelines (two, as ``serve --consumers`` runs by default) draining it:
small inline FHIR-like payloads, and claim-checked payloads of 4 MiB staged beforehand.
Prints stored objects/s and MB/s per backend and the S3/local ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mm_bronze.bus.pgqueue import PgQueueBus
from mm_bronze.consumers.persist import PersistPipeline
from mm_bronze.metadata import Database
from mm_bronze.models import IngestEvent, encode_event
from mm_bronze.settings import ConsumerSettings, StorageSettings
from mm_bronze.storage import StagedBlob, StorageRegistry

SMALL_BYTES = 16 * 1024
LARGE_BYTES = 4 * 1024 * 1024
PIPELINES = 2


@dataclass
class Rate:
    objects: int
    megabytes: float
    seconds: float

    @property
    def per_second(self) -> float:
        return self.objects / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.megabytes / self.seconds


def payload(size: int) -> bytes:
    """A distinct FHIR-like JSON body of about ``size`` bytes (compressible, like real data)."""
    head = b'{"resourceType":"Bundle","id":"%s","entry":[' % uuid.uuid4().hex.encode()
    entry = b'{"resource":{"resourceType":"Observation","valueQuantity":{"value":%d}}},'
    body = head + b"".join(entry % i for i in range(size // len(entry) + 1))
    return body[: size - 2] + b"]}"


async def publish(
    bus: PgQueueBus, storage: StorageRegistry, topic: str, body: bytes, staged: bool
) -> None:
    submission = str(uuid.uuid4())
    staged_path = None
    if staged:
        blob = await StagedBlob.create(storage.staging, f"api/{submission}")
        await blob.write(body)
        await blob.commit()
        staged_path = blob.url
    event = IngestEvent(
        uuid=submission,
        source="api",
        format="fhir",
        content_type="json",
        version="R4",
        subtype="bundle",
        sha256=hashlib.sha256(body).hexdigest(),
        size=len(body),
        received_at=dt.datetime.now(dt.UTC),
        payload=None if staged else body,
        staged_path=staged_path,
    )
    await bus.publish(topic, event.sha256.encode(), encode_event(event))


async def drain(
    db: Database,
    bus: PgQueueBus,
    storage: StorageRegistry,
    topic: str,
    count: int,
    size: int,
    staged: bool,
) -> Rate:
    await asyncio.gather(
        *(publish(bus, storage, topic, payload(size), staged) for _ in range(count))
    )
    stop = asyncio.Event()
    pipelines = [
        PersistPipeline(await bus.consumer(topic, "bench"), storage, db.pool, ConsumerSettings())
        for _ in range(PIPELINES)
    ]
    start = time.perf_counter()
    tasks = [asyncio.create_task(p.run(stop)) for p in pipelines]
    while await bus.depth(topic):  # noqa: ASYNC110 (the queue is polled, not signalled)
        await asyncio.sleep(0.01)
    seconds = time.perf_counter() - start
    stop.set()
    await asyncio.gather(*tasks)
    assert sum(p.stored for p in pipelines) == count
    return Rate(count, count * size / 1e6, seconds)


async def measure(
    db: Database, name: str, base: str, options: dict[str, Any], small: int, large: int
) -> dict[str, Rate]:
    storage = StorageRegistry(
        f"{base}/raw", f"{base}/_staging", StorageSettings().path_template, options
    )
    bus = PgQueueBus(db.pool)
    await bus.open()
    async with storage:
        rates = {
            "small": await drain(db, bus, storage, f"{name}-small", small, SMALL_BYTES, False),
            "large": await drain(db, bus, storage, f"{name}-large", large, LARGE_BYTES, True),
        }
    await bus.close()
    return rates


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("moto did not start")


async def main(small: int, large: int) -> None:
    import fsspec

    port = free_port()
    moto = start_moto(port)
    options = {"key": "bench", "secret": "bench", "endpoint_url": f"http://127.0.0.1:{port}"}
    try:
        fsspec.filesystem("s3", skip_instance_cache=True, **options).mkdir("bench")
        with tempfile.TemporaryDirectory() as tmp:
            async with Database("", Path(tmp) / "data", min_size=2, max_size=8) as db:
                results = {
                    "local": await measure(
                        db, "local", Path(tmp, "store").as_uri(), {}, small, large
                    ),
                    "s3": await measure(db, "s3", "s3://bench", options, small, large),
                }
    finally:
        moto.terminate()
        moto.wait()
    print(f"consumer drain rate, {PIPELINES} pipelines, embedded queue ({os.cpu_count()} cores)")
    for workload, size in (("small", SMALL_BYTES), ("large", LARGE_BYTES)):
        local, s3 = results["local"][workload], results["s3"][workload]
        print(f"  {workload} ({local.objects} x {size // 1024} KiB):")
        for name, rate in (("local", local), ("s3 (moto)", s3)):
            print(f"    {name:10} {rate.per_second:9.1f} objects/s {rate.mb_per_second:8.1f} MB/s")
        print(f"    s3/local   {s3.per_second / local.per_second:9.2f} x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=600, help="inline 16 KiB payloads")
    parser.add_argument("--large", type=int, default=20, help="claim-checked 4 MiB payloads")
    args = parser.parse_args()
    asyncio.run(main(args.small, args.large))
