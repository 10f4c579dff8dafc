"""GET /submissions?after=CURSOR&wait=S: the long-poll feed for the next layer."""

from __future__ import annotations

import threading
import time
import uuid as uuids
from pathlib import Path

import httpx

from tests.ingest.http.feed import feed_sees_everything
from tests.ingest.http.helpers import wait_status
from tests.services.mm_bronze import MmBronze

BODY = b'{"resourceType": "Patient", "id": "feed-wake"}'


def newest(client: httpx.Client) -> int:
    items = client.get("/submissions", params={"limit": 1}).json()["items"]
    return int(items[0]["seq"]) if items else 0


def test_long_poll_returns_when_a_submission_is_recorded(server: MmBronze) -> None:
    with httpx.Client(base_url=server.url, timeout=90) as client:
        cursor = newest(client)
        answer: dict = {}

        def poll() -> None:
            started = time.monotonic()
            response = client.get("/submissions", params={"after": cursor, "wait": 60})
            answer.update(response.json(), elapsed=time.monotonic() - started)

        waiting = threading.Thread(target=poll)
        waiting.start()
        time.sleep(1)
        assert waiting.is_alive(), "the poll returned before anything was recorded"
        uuid = client.post("/ingest/fhir/json/R4/patient", content=BODY).json()["uuid"]
        waiting.join(timeout=90)
    assert [item["uuid"] for item in answer["items"]] == [uuid]
    assert answer["next"] == answer["items"][0]["seq"] > cursor
    assert answer["elapsed"] < 55, "the poll waited for its whole time"


def test_an_empty_wait_returns_the_same_cursor(server: MmBronze) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        cursor = newest(client) + 1000
        started = time.monotonic()
        response = client.get("/submissions", params={"after": cursor, "wait": 1})
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == {"items": [], "next": cursor, "order": "asc"}
    assert elapsed >= 1


def test_items_name_the_object_relative_to_the_store(server: MmBronze) -> None:
    """Without clients, a status shows the object's full URL; a listed item always its path
    in the store."""
    body = f'{{"resourceType": "Patient", "id": "p{uuids.uuid4().hex}"}}'.encode()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        uuid = client.post("/ingest/fhir/json/R4/patient", content=body).json()["uuid"]
        status = wait_status(client, uuid, {"stored"})
        items = client.get("/submissions", params={"limit": 1000}).json()["items"]
    (item,) = [i for i in items if i["uuid"] == uuid]
    assert item["storage_path"].startswith("fhir/json/R4/patient/date=")
    store = f"{server.data_dir.resolve().as_uri()}/raw"
    assert status["storage_path"] == f"{store}/{item['storage_path']}"


def test_a_reader_sees_every_submission_through_crashes(dsn: str, tmp_path: Path) -> None:
    env = {
        "POSTGRES_DSN": dsn,
        # Several pipelines per topic record batches concurrently: seqs must still commit
        # in order.
        "MM_BRONZE_CONSUMER_CONCURRENCY": "4",
        "MM_BRONZE_CONSUMER_BATCH_SIZE": "20",
        "MM_BRONZE_CONSUMER_LEASE_SECONDS": "2",
    }
    feed_sees_everything(tmp_path, env, dsn)


def test_stopping_the_server_answers_waiting_polls(dsn: str, tmp_path: Path) -> None:
    proc = MmBronze(tmp_path, env={"POSTGRES_DSN": dsn}).start()
    answer: dict = {}

    def poll() -> None:
        with httpx.Client(base_url=proc.url, timeout=90) as client:
            response = client.get("/submissions", params={"after": 0, "wait": 60})
            answer.update(status=response.status_code, body=response.json())

    waiting = threading.Thread(target=poll)
    try:
        waiting.start()
        time.sleep(1)
        assert waiting.is_alive()
        assert proc.stop() == 0
        waiting.join(timeout=90)
    finally:
        proc.stop()
    assert answer == {"status": 200, "body": {"items": [], "next": 0, "order": "asc"}}
