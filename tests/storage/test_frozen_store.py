"""A store that hangs instead of failing (its server stopped with SIGSTOP): the door answers
503 within ``storage.staging_timeout``, SIGTERM still stops the process, and what was
acknowledged is stored once the store answers again.

S3 (moto) shows it at its worst: a PUT sends ``Expect: 100-continue`` and aiohttp waits for
the ``100 Continue`` with no timeout at all, so a staging call never ends while the store is
frozen. Each test freezes a moto of its own, never the session's.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx

from tests.ingest.http.helpers import wait_status
from tests.services.mm_bronze import MmBronze, exit_time
from tests.services.object_stores import S3Service

STAGING_TIMEOUT = 2
ROUTE = "/ingest/hl7/text/2.5.1/oru"


def hl7(size: int, control_id: bytes) -> bytes:
    head = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01|%s|P|2.5.1\r" % control_id
    return head + b"NTE|1||" + b"x" * max(1, size - len(head) - 8) + b"\r"


SMALL = hl7(2_000, b"SMALL")  # inline: the door does not touch storage
LARGE = hl7(400_000, b"LARGE")  # above http.inline_limit (256 KiB): staged


def serve(tmp_path: Path, s3: S3Service, dsn: str, *roles: str, **env: str) -> tuple[MmBronze, str]:
    bucket = s3.new_bucket()
    server = MmBronze(
        tmp_path / "mmb",
        *roles,
        env={
            "POSTGRES_DSN": dsn,
            "RAW_STORAGE_URL": f"s3://{bucket}/raw",
            "MM_BRONZE_STORAGE_OPTIONS": json.dumps(s3.options),
            "MM_BRONZE_STORAGE_STAGING_TIMEOUT": str(STAGING_TIMEOUT),
            **env,
        },
    )
    return server, bucket


def test_frozen_staging_gets_a_prompt_503_and_does_not_hold_a_stop(
    s3_alone: S3Service, dsn: str, tmp_path: Path
) -> None:
    server, bucket = serve(tmp_path, s3_alone, dsn, "--http")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            with s3_alone.frozen():
                small = client.post(ROUTE, content=SMALL)
                assert small.status_code == 202, small.text  # the door does not touch storage
                started = time.monotonic()
                large = client.post(ROUTE, content=LARGE)
                took = time.monotonic() - started
                assert large.status_code == 503, large.text
                assert large.json()["error"] == "unavailable"
                assert large.headers["retry-after"]
                assert took < STAGING_TIMEOUT + 5, took
                assert "did not answer within 2 seconds" in server.run_logs()
                # A request in flight on the frozen store, then SIGTERM: the process exits.
                in_flight = threading.Thread(
                    target=lambda: httpx.post(server.url + ROUTE, content=LARGE, timeout=60),
                    daemon=True,
                )
                in_flight.start()
                time.sleep(0.5)
                assert exit_time(server, 30) < STAGING_TIMEOUT + 10
                in_flight.join(10)
    finally:
        server.stop()
    # Nothing the door answered 503 for was left in staging once the store answers.
    reader = s3_alone.filesystem()
    assert reader.find(f"{bucket}/raw/_staging") == []
    # The inline submission acknowledged while the store was frozen is stored.
    again = MmBronze(server.data_dir, env=server.env)
    with again, httpx.Client(base_url=again.url) as client:
        status = wait_status(client, small.json()["uuid"], {"stored"}, timeout=60)
        assert status["size"] == len(SMALL)


def test_consumers_stuck_on_a_frozen_store_do_not_hold_a_stop_and_give_their_batch_back(
    s3_alone: S3Service, dsn: str, tmp_path: Path
) -> None:
    grace = 4.0
    server, _ = serve(
        tmp_path,
        s3_alone,
        dsn,
        "--all",
        MM_BRONZE_CONSUMER_STOP_GRACE=str(grace),
        MM_BRONZE_CONSUMER_LEASE_SECONDS="600",
    )
    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as client, s3_alone.frozen():
        accepted = client.post(ROUTE, content=SMALL)
        assert accepted.status_code == 202, accepted.text
        time.sleep(1)  # a consumer now waits on the frozen store
        assert exit_time(server, grace + 30) < grace + 15
    logs = server.run_logs()
    assert "consumers cancelled" in logs
    assert "cancelled batch given back" in logs
    # The cancelled batch was given back, not left to its lease (600 s): delivered again at
    # once, stored once.
    with server, httpx.Client(base_url=server.url) as client:
        status = wait_status(client, accepted.json()["uuid"], {"stored"}, timeout=30)
        assert status["size"] == len(SMALL)
