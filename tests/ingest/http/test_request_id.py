"""Request ids the door makes: 32 hex digits, unique, kept from the client when acceptable."""

from __future__ import annotations

import os
import re

from mm_bronze.ingest.http.request_id import new_request_id, request_id_for


def test_new_ids_are_32_hex_digits_and_unique() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_process_draws_its_own_prefix() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports its next id and leaves at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert child[:16] != new_request_id()[:16]


def test_the_clients_id_is_kept_only_when_acceptable() -> None:
    assert request_id_for([(b"x-request-id", b"trace-42")]) == "trace-42"
    assert len(request_id_for([(b"x-request-id", b"has space")])) == 32
    assert len(request_id_for([])) == 32
