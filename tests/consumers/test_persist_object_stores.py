"""The persist pipeline on S3 (moto), GCS (gcp-storage-emulator) and Azure Blob (azurite)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from fsspec import AbstractFileSystem

from mm_bronze.consumers.persist import PersistPipeline
from mm_bronze.metadata import records
from mm_bronze.settings import ConsumerSettings
from mm_bronze.storage.compression import decode
from tests.consumers.harness import harness
from tests.polling import wait_for_async
from tests.services.object_stores import ObjectStoreService, S3Service
from tests.services.tcp_proxy import TcpProxy

MiB = 1024 * 1024


def fhir_bundles(corpus: Path, count: int) -> list[bytes]:
    files = sorted((corpus / "fhir-r4-bundles").glob("*.json"), key=lambda f: f.stat().st_size)
    files = files[:count]
    assert files, "no FHIR bundles in the corpus"
    return [f.read_bytes() for f in files]


def read_original(fs: AbstractFileSystem, url: str, compression: str) -> bytes:
    """An object's original bytes, read back through the backend by a separate client."""
    with fs.open(url.split("://", 1)[1], "rb") as f:
        return b"".join(decode(compression, iter(lambda: f.read(MiB), b"")))


async def test_round_trip_is_byte_identical(
    object_store: ObjectStoreService, dsn: str, tmp_path: Path, corpus: Path
) -> None:
    base = f"{object_store.scheme}://{object_store.new_bucket()}"
    bundles = fhir_bundles(corpus, 3)
    large = b"MSH|^~\\&|LAB|HOSP|||20240101||ORU^R01|1|P|2.5.1\r" + os.urandom(3 * MiB)
    reader = object_store.filesystem()
    async with harness(dsn, tmp_path, base, object_store.options) as h:
        events = [await h.publish(body) for body in bundles]
        events.append(await h.publish(bundles[0]))  # a duplicate
        events.append(await h.publish(large, staged=True, content_type="text"))
        bodies = [*bundles, bundles[0], large]
        async with h.running():
            await h.drained()
        for event, body in zip(events, bodies, strict=True):
            status = await records.submission_status(h.db.pool, event.uuid)
            assert status is not None
            assert status.status in ("stored", "duplicate")
            assert status.sha256 == event.sha256
            assert status.compression == "none"
            assert status.storage_path is not None
            assert status.storage_path.startswith(f"{base}/raw/")
            assert read_original(reader, status.storage_path, "none") == body
        duplicate = await records.submission_status(h.db.pool, events[3].uuid)
        assert duplicate is not None and duplicate.status == "duplicate"
        assert await h.scalar("SELECT count(*) FROM ingestion.raw_ingestion") == 4
        assert await h.scalar("SELECT count(*) FROM bus.dead_letters") == 0
        staged = events[-1].staged_path
        assert staged is not None and not reader.exists(staged.split("://")[1])


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
async def test_compressed_objects_record_their_compression(
    s3: S3Service, dsn: str, tmp_path: Path, corpus: Path, compression: str
) -> None:
    base = f"s3://{s3.new_bucket()}"
    inline = fhir_bundles(corpus, 1)[0]
    large = b"MSH|^~\\&|LAB|HOSP|||20240101||ORU^R01|1|P|2.5.1\r" + b"OBX|1|NM|42\r" * MiB
    reader = s3.filesystem()
    async with harness(dsn, tmp_path, base, s3.options, compression=compression) as h:
        events = [await h.publish(inline), await h.publish(large, staged=True, content_type="text")]
        async with h.running():
            await h.drained()
        suffix = {"gzip": ".gz", "zstd": ".zst"}[compression]
        for event, body in zip(events, (inline, large), strict=True):
            status = await records.submission_status(h.db.pool, event.uuid)
            assert status is not None and status.storage_path is not None
            assert status.status == "stored"
            assert status.compression == compression
            assert status.storage_path.endswith(suffix)
            assert status.sha256 == event.sha256  # of the original bytes
            assert status.size == len(body)
            stored = reader.cat_file(status.storage_path.split("://", 1)[1])
            assert len(stored) < len(body)
            assert read_original(reader, status.storage_path, compression) == body


async def test_storage_outage_mid_batch_loses_nothing(
    s3: S3Service, dsn: str, tmp_path: Path
) -> None:
    # 2 MB/s per connection: the batch takes seconds to write, so the cut comes mid-batch.
    proxy = TcpProxy(s3.port, upload_rate=2e6)
    proxy.start()
    options = {
        **s3.options,
        "endpoint_url": f"http://127.0.0.1:{proxy.port}",
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }
    bucket = s3.new_bucket()
    reader = s3.filesystem()
    payloads = [os.urandom(MiB) for _ in range(32)]
    settings = ConsumerSettings(batch_size=100, retry_backoff_max=1.0)
    try:
        async with harness(dsn, tmp_path, f"s3://{bucket}", options) as h:
            events = [await h.publish(p) for p in payloads]
            async with h.running(settings):
                # Cut the storage off as soon as the first object of the batch has landed.
                landed = await wait_for_async(
                    lambda: reader.find(f"{bucket}/raw"), timeout=60, what="a first object"
                )
                proxy.cut()
                assert len(landed) < len(payloads)
                pipeline = h.pipeline
                assert pipeline is not None
                await wait_for_async(
                    lambda: pipeline.degraded,
                    timeout=60,
                    what="the pipeline degraded",
                )
                # Retried, nothing committed early: no rows, every message still queued.
                assert await h.scalar("SELECT count(*) FROM ingestion.raw_ingestion") == 0
                assert await h.scalar("SELECT count(*) FROM ingestion.submissions") == 0
                assert await h.depth() == len(payloads)
                proxy.restore()
                await h.drained()
                await wait_for_async(
                    lambda: pipeline.degraded,
                    lambda degraded: degraded is None,
                    what="the pipeline recovered",
                )
            assert await h.scalar("SELECT count(*) FROM ingestion.raw_ingestion") == len(payloads)
            assert await h.scalar("SELECT count(*) FROM bus.dead_letters") == 0
            for event, body in zip(events, payloads, strict=True):
                status = await records.submission_status(h.db.pool, event.uuid)
                assert status is not None and status.status == "stored"
                assert status.storage_path is not None
                assert read_original(reader, status.storage_path, "none") == body
    finally:
        proxy.cut()


async def test_a_missing_bucket_is_an_outage_retried_until_it_exists(
    object_store: ObjectStoreService, dsn: str, tmp_path: Path
) -> None:
    """Consumers pointed at a bucket that does not exist yet (a typo fixed later, a bucket
    made after the deployment): their batches wait, degraded, and are stored once it
    exists; nothing is failed or dead-lettered as 'staged payload is missing'."""
    bucket = f"t{uuid.uuid4().hex[:16]}"  # not created yet
    base = f"{object_store.scheme}://{bucket}"
    settings = ConsumerSettings(linger=0, retry_backoff_max=0.5)
    async with harness(dsn, tmp_path, base, object_store.options) as h:
        event = await h.publish(b'{"resourceType": "Patient", "id": "no-bucket"}')
        async with h.running(settings):
            assert h.pipeline is not None
            pipeline = h.pipeline
            degraded = await wait_for_async(
                lambda: _degraded(pipeline), timeout=60, what="the consumer degraded"
            )
            assert degraded is not None
            assert degraded.startswith("StorageUnavailable: ") and bucket in degraded
            assert "not found" in degraded or "does not exist" in degraded
            object_store.filesystem().mkdir(bucket)
            await h.drained()
        status = await records.submission_status(h.db.pool, event.uuid)
        assert status is not None and status.status == "stored"
        assert await h.scalar("SELECT count(*) FROM bus.dead_letters") == 0


async def _degraded(pipeline: PersistPipeline) -> str | None:
    return pipeline.degraded
