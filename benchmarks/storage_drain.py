"""Consumer drain of a backlog of Observations, against a bare loop doing the same work.

    python -m benchmarks.storage_drain [--local 20000] [--s3 2000]

A backlog of distinct 1.7 KB FHIR Observations is published to the embedded PostgreSQL
queue; the persist pipelines (two, as ``serve --consumers`` runs by default) drain it.
Baselines, measured in the same run on the same disk, PostgreSQL and moto:

- local disk: a bare loop that writes the same files (temp, fsync, rename; one directory
  fsync per batch) and inserts the same rows (objects, submissions, status entries) with
  ``COPY``, in batches of the consumers' batch size, one transaction per batch;
- S3 (moto): a bare s3fs loop PUTting the same objects with the consumers' concurrency.
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fsspec
import msgspec
import psycopg
from psycopg.types.json import Jsonb

from benchmarks.summary import record
from mm_bronze.bus.pgqueue import PgQueueBus
from mm_bronze.consumers.persist import WRITE_CONCURRENCY, PersistPipeline
from mm_bronze.metadata import Database
from mm_bronze.models import IngestEvent, encode_event
from mm_bronze.settings import ConsumerSettings, StorageSettings
from mm_bronze.storage import StorageRegistry
from tests.ports import free_port

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
OBSERVATION = CORPUS / "fhir-r4-resources" / "json" / "observation-example.json"
PIPELINES = ConsumerSettings().concurrency
BATCH = ConsumerSettings().batch_size
NAME = "storage_drain"


def observations(count: int) -> list[IngestEvent]:
    """``count`` distinct Observation submissions, as the HTTP door would publish them."""
    doc = msgspec.json.decode(OBSERVATION.read_bytes())
    tag = uuid.uuid4().hex[:8]
    now = dt.datetime.now(dt.UTC)
    events = []
    for n in range(count):
        doc["id"] = f"drain-{tag}-{n}"
        body = msgspec.json.encode(doc)
        events.append(
            IngestEvent(
                uuid=str(uuid.uuid4()),
                source="api",
                format="fhir",
                content_type="json",
                version="R4",
                subtype="observation",
                sha256=hashlib.sha256(body).hexdigest(),
                size=len(body),
                received_at=now,
                payload=body,
                source_metadata={"request_id": uuid.uuid4().hex},
            )
        )
    return events


async def consumer_drain(
    db: Database, storage: StorageRegistry, topic: str, events: Sequence[IngestEvent]
) -> float:
    """Seconds for the persist pipelines to store and record the published backlog."""
    bus = PgQueueBus(db.pool)
    await bus.open()
    try:
        for start in range(0, len(events), 1000):
            chunk = events[start : start + 1000]
            await asyncio.gather(
                *(bus.publish(topic, e.sha256.encode(), encode_event(e)) for e in chunk)
            )
        stop = asyncio.Event()
        pipelines = [
            PersistPipeline(
                await bus.consumer(topic, "bench"), storage, db.pool, ConsumerSettings()
            )
            for _ in range(PIPELINES)
        ]
        began = time.perf_counter()
        tasks = [asyncio.create_task(p.run(stop)) for p in pipelines]
        while sum(p.stored for p in pipelines) < len(events):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - began
        stop.set()
        await asyncio.gather(*tasks)
        return seconds
    finally:
        await bus.close()


_BARE_SCHEMA = """
DROP SCHEMA IF EXISTS bare CASCADE;
CREATE SCHEMA bare;
CREATE TABLE bare.raw_ingestion (LIKE ingestion.raw_ingestion INCLUDING ALL);
CREATE TABLE bare.submissions (LIKE ingestion.submissions INCLUDING ALL);
CREATE TABLE bare.ingestion_log (LIKE ingestion.ingestion_log INCLUDING ALL);
"""


def bare_local(dsn: str, root: Path, keys: Sequence[str], events: Sequence[IngestEvent]) -> float:
    """Seconds for a plain loop: per batch, write the files, then COPY the rows and commit."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_BARE_SCHEMA.encode())
        began = time.perf_counter()
        for start in range(0, len(events), BATCH):
            directories = set()
            batch = list(
                zip(keys[start : start + BATCH], events[start : start + BATCH], strict=True)
            )
            for key, event in batch:
                path = root / key
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                with open(tmp, "wb") as file:
                    file.write(event.payload or b"")
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(tmp, path)
                directories.add(path.parent)
            for directory in directories:
                fd = os.open(directory, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            with conn.transaction(), conn.cursor() as cur:
                _copy_rows(cur, root, batch)
        return time.perf_counter() - began


def _copy_rows(cur: psycopg.Cursor[Any], root: Path, batch: list[tuple[str, IngestEvent]]) -> None:
    with cur.copy(
        "COPY bare.raw_ingestion (object_id, ingestion_source, format, content_type, subtype,"
        " data_version, storage_path, fingerprint, object_size, received_at, source_metadata)"
        " FROM STDIN"
    ) as copy:
        for key, e in batch:
            copy.write_row(
                (e.uuid, e.source, e.format, e.content_type, e.subtype, e.version,
                 f"{root.as_uri()}/{key}", bytes.fromhex(e.sha256), e.size, e.received_at,
                 Jsonb(e.source_metadata))
            )  # fmt: skip
    with cur.copy(
        "COPY bare.submissions (submission_id, object_id, is_duplicate, ingestion_source,"
        " client, format, content_type, subtype, data_version, payload_size, received_at,"
        " source_metadata) FROM STDIN"
    ) as copy:
        for _, e in batch:
            copy.write_row(
                (e.uuid, e.uuid, False, e.source, e.client, e.format, e.content_type, e.subtype,
                 e.version, e.size, e.received_at, Jsonb(e.source_metadata))
            )  # fmt: skip
    with cur.copy("COPY bare.ingestion_log (object_id, status) FROM STDIN") as copy:
        for _, e in batch:
            copy.write_row((e.uuid, "stored"))


def bare_s3(
    options: dict[str, Any], bucket: str, keys: Sequence[str], events: Sequence[IngestEvent]
) -> float:
    """Seconds for s3fs to PUT the same objects with the consumers' write concurrency."""
    fs = fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False, **options)
    began = time.perf_counter()
    with ThreadPoolExecutor(PIPELINES * WRITE_CONCURRENCY) as pool:
        list(
            pool.map(
                lambda item: fs.pipe_file(f"{bucket}/{item[0]}", item[1].payload),
                zip(keys, events, strict=True),
            )
        )
    return time.perf_counter() - began


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


def registry(base: str, options: dict[str, Any]) -> StorageRegistry:
    return StorageRegistry(
        f"{base}/raw", f"{base}/_staging", StorageSettings().path_template, options
    )


def show(label: str, count: int, seconds: float, base: float) -> None:
    print(
        f"  {label:<34} {count / seconds:8.0f} objects/s  ({count} in {seconds:.1f} s)"
        + (f"  x{base / seconds:.2f} of the bare loop" if base else ""),
        flush=True,
    )


async def main(local_count: int, s3_count: int) -> None:
    port = free_port()
    moto = start_moto(port)
    options = {"key": "bench", "secret": "bench", "endpoint_url": f"http://127.0.0.1:{port}"}
    try:
        fsspec.filesystem("s3", skip_instance_cache=True, **options).mkdir("bench")
        with tempfile.TemporaryDirectory(prefix="mmb-drain-") as tmp:
            async with Database("", Path(tmp) / "data", min_size=2, max_size=8) as db:
                print(f"consumer drain, {PIPELINES} pipelines, batches of {BATCH}, embedded queue")
                events = observations(local_count)
                store = registry(Path(tmp, "store").as_uri(), {})
                keys = [store.object_key(e) for e in events]
                bare = await asyncio.to_thread(bare_local, db.dsn, Path(tmp, "bare"), keys, events)
                show(f"local: bare loop ({local_count:,} files)", local_count, bare, 0)
                async with store:
                    drained = await consumer_drain(db, store, "drain-local", events)
                show("local: consumers", local_count, drained, bare)
                record(NAME, f"local disk, {local_count:,} Observations: stored/s",
                       local_count / drained, local_count / bare, "obj/s", goal=0.5,
                       note="bare loop: temp+fsync+rename, COPY per batch")  # fmt: skip

                events = observations(s3_count)
                store = registry("s3://bench/drain", options)
                keys = [store.object_key(e) for e in events]
                bare = await asyncio.to_thread(bare_s3, options, "bench/bare", keys, events)
                show(f"s3: bare s3fs loop ({s3_count:,} PUTs)", s3_count, bare, 0)
                async with store:
                    drained = await consumer_drain(db, store, "drain-s3", events)
                show("s3: consumers", s3_count, drained, bare)
                note = f"bare loop: s3fs PUTs, {PIPELINES * WRITE_CONCURRENCY} at once"
                figure = f"S3 (moto), {s3_count:,} Observations: stored/s"
                record(NAME, figure, s3_count / drained, s3_count / bare, "obj/s", goal=0.5,
                       note=note)  # fmt: skip
    finally:
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", type=int, default=20_000, help="Observations on local disk")
    parser.add_argument("--s3", type=int, default=2_000, help="Observations on S3 (moto)")
    args = parser.parse_args()
    asyncio.run(main(args.local, args.s3))
