"""ObjectStore and StagedBlob on real S3, GCS and Azure Blob emulators (and local disk)."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest
import zstandard

from mm_bronze.errors import StorageUnavailable
from mm_bronze.storage import ObjectStore, StagedBlob
from tests.services.object_stores import ObjectStoreService

MiB = 1024 * 1024


async def open_store(
    url: str, service: ObjectStoreService | None, *, compression: str = "none"
) -> ObjectStore:
    store = ObjectStore(url, service.options if service else {}, compression=compression)
    await store.open()
    return store


async def test_put_bytes_writes_once_and_reads_back(object_store: ObjectStoreService) -> None:
    url = object_store.new_url()
    store = await open_store(url, object_store)
    data = os.urandom(1000)
    assert await store.put_bytes("a/b/one.json", data) is True
    assert await store.put_bytes("a/b/one.json", b"other bytes") is False
    reader = object_store.filesystem()
    assert reader.cat_file(url.split("://")[1] + "/a/b/one.json") == data
    assert await store.read_bytes("a/b/one.json") == data


async def test_staged_blob_is_invisible_until_committed(object_store: ObjectStoreService) -> None:
    url = object_store.new_url("_staging")
    staging = await open_store(url, object_store)
    blob = await StagedBlob.create(staging, "api/blob-1")
    digest = hashlib.sha256()
    for _ in range(20):  # 20 MiB: several multipart parts
        chunk = os.urandom(MiB)
        digest.update(chunk)
        await blob.write(chunk)
    reader = object_store.filesystem()
    path = url.split("://")[1] + "/api/blob-1"
    assert not reader.exists(path)
    await blob.commit()
    assert reader.exists(path)
    assert hashlib.sha256(reader.cat_file(path)).hexdigest() == digest.hexdigest()


@pytest.mark.parametrize("service_name", ["s3", "azure"])  # the GCS emulator cannot cancel uploads
async def test_aborted_staged_blob_leaves_nothing(
    service_name: str, request: pytest.FixtureRequest
) -> None:
    service: ObjectStoreService = request.getfixturevalue(service_name)
    url = service.new_url("_staging")
    staging = await open_store(url, service)
    blob = await StagedBlob.create(staging, "api/blob-2")
    for _ in range(12):
        await blob.write(os.urandom(MiB))
    await blob.abort()
    assert not service.filesystem().exists(url.split("://")[1] + "/api/blob-2")


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
async def test_put_from_streams_staged_blob_into_raw(
    object_store: ObjectStoreService, compression: str
) -> None:
    bucket = object_store.new_bucket()
    base = f"{object_store.scheme}://{bucket}"
    staging = await open_store(f"{base}/_staging", object_store)
    raw = await open_store(f"{base}/raw", object_store, compression=compression)
    data = os.urandom(3 * MiB) + b"x" * (9 * MiB)  # over one upload part, compressible
    blob = await StagedBlob.create(staging, "api/blob-3")
    await blob.write(data)
    await blob.commit()
    key = "fhir/json/obj" + raw.codec.suffix
    assert await raw.put_from(key, staging, "api/blob-3") is True
    assert await raw.put_from(key, staging, "api/blob-3") is False
    stored = object_store.filesystem().cat_file(f"{bucket}/raw/{key}")
    assert decompress(compression, stored) == data
    with pytest.raises(FileNotFoundError):
        await raw.put_from("fhir/json/missing", staging, "api/no-such-blob")


async def test_writing_into_a_missing_bucket_is_an_outage(object_store: ObjectStoreService) -> None:
    """A bucket or container not created yet (or deleted): every write raises
    StorageUnavailable, which the doors answer 503 and the consumers wait out; S3 and GCS
    said FileNotFoundError, a 500 at the HTTP door and a failed batch in the consumers."""
    missing = f"{object_store.scheme}://t{os.urandom(8).hex()}"
    raw = await open_store(missing + "/raw", object_store)
    staging = await open_store(missing + "/_staging", object_store)
    with pytest.raises(StorageUnavailable):
        await raw.put_bytes("a/one.json", b"{}")
    with pytest.raises(StorageUnavailable):
        blob = await StagedBlob.create(staging, "api/missing")
        await blob.write(os.urandom(2 * MiB))
        await blob.commit()
    source = await open_store(object_store.new_url("_staging"), object_store)
    staged = await StagedBlob.create(source, "api/there")
    await staged.write(b"payload")
    await staged.commit()
    with pytest.raises(StorageUnavailable):
        await raw.put_from("a/two.json", source, "api/there")
    with pytest.raises(FileNotFoundError):  # a missing source stays what it is
        await raw.put_from("a/three.json", source, "api/gone")


async def test_exists_sees_changes_made_by_other_clients(object_store: ObjectStoreService) -> None:
    url = object_store.new_url()
    store = await open_store(url, object_store)
    await store.put_bytes("dir/first", b"1")
    assert not await store.exists("dir/second")
    store.fs.ls(store.path("dir"))  # a listing that a cache would remember
    other = object_store.filesystem()
    path = url.split("://")[1] + "/dir/second"
    other.pipe_file(path, b"2")
    assert await store.exists("dir/second")
    other.rm_file(path)
    assert not await store.exists("dir/second")


async def test_ping_checks_the_bucket(object_store: ObjectStoreService) -> None:
    store = await open_store(object_store.new_url("not/yet/written"), object_store)
    await store.ping()
    missing = await open_store(f"{object_store.scheme}://no-such-bucket-x1/raw", object_store)
    with pytest.raises(StorageUnavailable):
        await missing.ping()


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
async def test_local_compressed_objects(tmp_path: Path, compression: str) -> None:
    staging = await open_store((tmp_path / "staging").as_uri(), None)
    raw = await open_store((tmp_path / "raw").as_uri(), None, compression=compression)
    data = b"MSH|^~\\&|A|B\r" * 100_000
    blob = await StagedBlob.create(staging, "blob")
    await blob.write(data)
    await blob.commit()
    assert await raw.put_from("big" + raw.codec.suffix, staging, "blob")
    assert await raw.put_bytes("small" + raw.codec.suffix, b"small payload")
    big = (tmp_path / "raw" / ("big" + raw.codec.suffix)).read_bytes()
    small = (tmp_path / "raw" / ("small" + raw.codec.suffix)).read_bytes()
    assert len(big) < len(data) // 10
    assert decompress(compression, big) == data
    assert decompress(compression, small) == b"small payload"
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(
        ["big" + raw.codec.suffix, "small" + raw.codec.suffix]
    )


def decompress(compression: str, data: bytes) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def test_unknown_compression_is_a_configuration_error() -> None:
    from mm_bronze.errors import ConfigError
    from mm_bronze.settings import load_settings

    assert load_settings(environ={"MM_BRONZE_STORAGE_COMPRESSION": "zstd"}).storage.compression
    with pytest.raises(ConfigError, match="MM_BRONZE_STORAGE_COMPRESSION"):
        load_settings(environ={"MM_BRONZE_STORAGE_COMPRESSION": "lz4"})


async def test_bad_storage_options_are_a_configuration_error() -> None:
    from mm_bronze.errors import ConfigError

    store = ObjectStore("az://container/raw", {})  # no account, no credentials
    with pytest.raises(ConfigError, match=r"storage\.options"):
        await store.open()
