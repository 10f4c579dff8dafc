"""Submission ids are canonical version 4 UUIDs, unique across pool refills and forks."""

from __future__ import annotations

import os
import uuid

from mm_bronze.ingest import submission_ids
from mm_bronze.ingest.submission_ids import new_submission_id


def test_ids_are_canonical_version_4_uuids_and_unique() -> None:
    ids = [new_submission_id() for _ in range(20 * submission_ids.POOL_IDS + 7)]
    for value in ids[:: submission_ids.POOL_IDS // 3]:
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == value
    assert len(set(ids)) == len(ids)


def test_a_forked_process_does_not_repeat_its_parents_ids() -> None:
    new_submission_id()  # the pool is filled and holds ids not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_submission_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert child not in {new_submission_id() for _ in range(submission_ids.POOL_IDS)}
