"""A 200 MB claim-checked payload through `serve --all` on S3, in bounded memory."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

import httpx

from mm_bronze.storage.compression import decode
from tests.ingest.http.helpers import wait_status
from tests.services.mm_bronze import MmBronze
from tests.services.object_stores import S3Service

MiB = 1024 * 1024
SIZE = 200 * MiB


def whole_segments(data: bytes, size: int) -> bytes:
    """``data`` cut at a segment end and padded with an NTE segment to exactly ``size``."""
    cut = data.rindex(b"\r", 0, size - 16) + 1
    return data[:cut] + b"NTE|1||" + b"x" * (size - cut - 8) + b"\r"


def hl7_body(digest: hashlib._Hash) -> Iterator[bytes]:
    """A valid HL7 v2 message of SIZE bytes, sent in 1 MiB chunks (never whole in memory)."""
    rng = random.Random(7)
    blocks = [
        whole_segments(
            b"".join(
                b"OBX|%d|NM|%s||%d|mg/dL|||||F\r" % (i, rng.randbytes(8).hex().encode(), i)
                for i in range(MiB // 40)
            ),
            MiB,
        )
        for _ in range(4)
    ]
    header = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01|MSG1|P|2.5.1\r"
    chunks = [header, *(blocks[n % 4] for n in range(SIZE // MiB))]
    chunks[-1] = whole_segments(chunks[-1], MiB - len(header))
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_200mb_claim_checked_payload_in_bounded_memory(
    s3: S3Service, dsn: str, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    server = MmBronze(
        tmp_path,
        env={
            "POSTGRES_DSN": dsn,
            "RAW_STORAGE_URL": f"s3://{bucket}/raw",
            "MM_BRONZE_STORAGE_OPTIONS": json.dumps(s3.options),
            "MM_BRONZE_STORAGE_COMPRESSION": "zstd",
            "MM_BRONZE_HTTP_MAX_BODY_BYTES": str(300 * MiB),
            # As recommended for production: fewer glibc arenas, less memory kept by threads.
            "MALLOC_ARENA_MAX": "2",
        },
    )
    with server, httpx.Client(base_url=server.url, timeout=300) as client:
        assert server.proc is not None
        pid = server.proc.pid
        baseline = memory_kib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
        digest = hashlib.sha256()
        response = client.post("/ingest/hl7/text/2.5.1/oru", content=hl7_body(digest))
        assert response.status_code == 202, response.text
        status = wait_status(client, response.json()["uuid"], {"stored"}, timeout=300)
        peak = memory_kib(pid, "VmHWM")
    growth_mib = (peak - baseline) / 1024
    print(f"serve --all RSS: baseline {baseline / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB")
    # Streaming keeps the growth to a few buffers (parts, chunks, thread arenas), whatever
    # the payload size; holding the payload would add at least its 200 MiB.
    assert growth_mib < 100, f"peak RSS grew by {growth_mib:.0f} MiB for a 200 MiB payload"
    assert status["sha256"] == digest.hexdigest()
    assert status["size"] == SIZE
    assert status["compression"] == "zstd"
    assert status["storage_path"].startswith(f"s3://{bucket}/raw/") and status[
        "storage_path"
    ].endswith(".hl7.zst")
    reader = s3.filesystem()
    stored = hashlib.sha256()
    size = 0
    with reader.open(status["storage_path"].split("://", 1)[1], "rb") as f:
        for chunk in decode("zstd", iter(lambda: f.read(8 * MiB), b"")):
            stored.update(chunk)
            size += len(chunk)
    assert (stored.hexdigest(), size) == (digest.hexdigest(), SIZE)
    assert reader.find(f"{bucket}/raw/_staging") == []  # the staged blob is gone
