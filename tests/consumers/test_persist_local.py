"""The persist pipeline on local disk: full batches into one directory, duplicates within a
batch, and objects durable before they are recorded."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from mm_bronze.consumers.persist import PersistPipeline
from mm_bronze.settings import ConsumerSettings
from mm_bronze.storage import objects
from tests.consumers.harness import TOPIC, harness


def observation(n: int) -> bytes:
    return b'{"resourceType": "Observation", "id": "obs-%d", "status": "final"}' % n


async def test_full_batches_in_one_directory_are_stored_and_recorded_once(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[int, int]] = []  # (objects on disk, objects recorded) at each sync
    sync = objects.fsync_directories

    def observed_sync(directories: list[str]) -> None:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT count(*) FROM ingestion.raw_ingestion").fetchone()
        on_disk = sum(len(list(Path(d).iterdir())) for d in directories)
        synced.append((on_disk, row[0] if row else -1))
        sync(directories)

    monkeypatch.setattr(objects, "fsync_directories", observed_sync)
    total = 250
    async with harness(dsn, tmp_path, tmp_path.as_uri(), {}) as h:
        events = [await h.publish(observation(n)) for n in range(total)]
        async with h.running(ConsumerSettings(concurrency=1, batch_size=100, linger=0)):
            await h.drained()
        assert await h.scalar("SELECT count(*) FROM ingestion.raw_ingestion") == total
        assert await h.scalar("SELECT count(*) FROM ingestion.submissions") == total
        assert await h.scalar("SELECT count(DISTINCT object_id) FROM ingestion.ingestion_log"
                              " WHERE status = 'stored'") == total  # fmt: skip
        assert await h.scalar("SELECT count(*) FROM ingestion.ingestion_log") == total
    (directory,) = {p.parent for p in (tmp_path / "raw").rglob("*.json")}
    files = sorted(directory.iterdir())
    assert [f.name for f in files] == sorted(f"{e.sha256}.json" for e in events)
    by_name = {f"{e.sha256}.json": observation(n) for n, e in enumerate(events)}
    assert all(f.read_bytes() == by_name[f.name] for f in files)
    # One directory sync per batch, each before that batch's objects were recorded; after a
    # full batch of 100 the claim grows to 200 (a backlog), which takes the remaining 150.
    assert [recorded for _, recorded in synced] == [0, 100]
    assert [on_disk for on_disk, _ in synced] == [100, 250]


async def test_duplicates_within_a_batch_share_one_object_and_keep_lineage(
    dsn: str, tmp_path: Path
) -> None:
    async with harness(dsn, tmp_path, tmp_path.as_uri(), {}) as h:
        first = await h.publish(observation(1))
        other = await h.publish(observation(2))
        resent = [await h.publish(observation(1)) for _ in range(3)]
        async with h.running(ConsumerSettings(concurrency=1, linger=0)):
            await h.drained()
        assert await h.scalar("SELECT count(DISTINCT recorded_at) FROM ingestion.submissions") == 1
        assert await h.scalar("SELECT count(*) FROM ingestion.raw_ingestion") == 2
        async with h.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT s.submission_id::text, s.object_id::text, s.is_duplicate, l.status"
                " FROM ingestion.submissions s JOIN ingestion.ingestion_log l"
                " ON l.object_id = s.submission_id"
            )
            rows = {uuid: rest for uuid, *rest in await cur.fetchall()}
    assert rows == {
        first.uuid: [first.uuid, False, "stored"],
        other.uuid: [other.uuid, False, "stored"],
        **{e.uuid: [first.uuid, True, "duplicate"] for e in resent},
    }
    assert len(list((tmp_path / "raw").rglob("*.json"))) == 2


async def test_a_copy_an_earlier_delivery_left_under_another_key_is_removed(
    dsn: str, tmp_path: Path
) -> None:
    """A consumer stopped between writing a payload under its own key (another subtype here,
    or date) and removing it once it found the bytes stored under another: when the event
    comes again, that copy is removed, and one object per SHA-256 remains."""
    payload = observation(7)
    settings = ConsumerSettings(concurrency=1, linger=0)
    async with harness(dsn, tmp_path, tmp_path.as_uri(), {}) as h:
        first = await h.publish(payload)
        async with h.running(settings):
            await h.drained()
        again = await h.publish(payload, subtype="resent")
        left = h.storage.object_key(again)
        assert await h.storage.raw.put_bytes(left, payload)  # what the stopped delivery left
        async with h.running(settings):
            await h.drained()
        assert await h.scalar(
            f"SELECT is_duplicate FROM ingestion.submissions WHERE submission_id = '{again.uuid}'"
        )
    stored = list((tmp_path / "raw").rglob("*.json"))
    assert [p.relative_to(tmp_path / "raw").as_posix() for p in stored] == [
        h.storage.object_key(first)
    ]


async def test_a_stop_before_the_acknowledgement_leaves_no_staged_blob(
    dsn: str, tmp_path: Path
) -> None:
    """Staged blobs are removed once their events are recorded, before the acknowledgement:
    a consumer stopped in between leaves none behind, and the event delivered again is
    recorded once, without its blob."""
    payload = observation(8) + b" " * 300_000
    async with harness(dsn, tmp_path, tmp_path.as_uri(), {}) as h:
        event = await h.publish(payload, staged=True)
        staging = tmp_path / "_staging"
        assert [p for p in staging.rglob("*") if p.is_file()]
        consumer = await h.bus.consumer(TOPIC, "bronze-storage-api")
        pipeline = PersistPipeline(
            consumer, h.storage, h.db.pool, ConsumerSettings(concurrency=1, linger=0)
        )
        messages = await consumer.fetch(10, 5)
        acknowledge = consumer.ack

        async def stopped(messages: object) -> None:
            raise RuntimeError("stopped before the acknowledgement")

        consumer.ack = stopped  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await pipeline.process(messages)
        assert not [p for p in staging.rglob("*") if p.is_file()]
        consumer.ack = acknowledge  # type: ignore[method-assign]
        await consumer.release(messages, delay=0)  # as when the lease runs out
        async with h.running(ConsumerSettings(concurrency=1, linger=0)):
            await h.drained()
        assert await h.scalar("SELECT count(*) FROM ingestion.submissions") == 1
        assert (
            await h.scalar(
                "SELECT status FROM ingestion.ingestion_log"
                f" WHERE object_id = '{event.uuid}' ORDER BY log_time DESC LIMIT 1"
            )
            == "stored"
        )


async def test_a_stray_copy_that_cannot_be_removed_fails_nothing(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials without the right to delete, say: the duplicate is recorded all the same,
    and the copy only costs space."""
    payload = observation(9)
    settings = ConsumerSettings(concurrency=1, linger=0)
    async with harness(dsn, tmp_path, tmp_path.as_uri(), {}) as h:
        await h.publish(payload)
        async with h.running(settings):
            await h.drained()
        again = await h.publish(payload, subtype="resent")
        assert await h.storage.raw.put_bytes(h.storage.object_key(again), payload)

        async def refused(key: str) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(h.storage.raw, "remove", refused)
        async with h.running(settings):
            await h.drained()
        assert await h.scalar(
            f"SELECT is_duplicate FROM ingestion.submissions WHERE submission_id = '{again.uuid}'"
        )


async def test_a_duplicate_never_removes_the_object_under_another_spelling_of_the_store(
    dsn: str, tmp_path: Path
) -> None:
    """The storage URL spelt another way (here through a symbolic link) names the same
    objects: a duplicate under the same key must leave the recorded object alone, though its
    recorded URL is not under the store as now configured."""
    payload = observation(10)
    settings = ConsumerSettings(concurrency=1, linger=0)
    (tmp_path / "store").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "store")
    async with harness(dsn, tmp_path, (tmp_path / "store").as_uri(), {}) as h:
        first = await h.publish(payload)
        async with h.running(settings):
            await h.drained()
    async with harness(dsn, tmp_path, (tmp_path / "alias").as_uri(), {}) as h:
        again = await h.publish(payload)
        async with h.running(settings):
            await h.drained()
        assert await h.scalar(
            f"SELECT is_duplicate FROM ingestion.submissions WHERE submission_id = '{again.uuid}'"
        )
        key = h.storage.object_key(first)
    assert (tmp_path / "store" / "raw" / key).read_bytes() == payload
