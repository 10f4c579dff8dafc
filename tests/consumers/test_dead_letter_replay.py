"""Dead letters on the embedded bus: listed, shown, replayed once, purged, by CLI and HTTP."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import psycopg
import pytest

from mm_bronze.models import IngestEvent, encode_event
from tests.ingest.http.helpers import sha256, wait_status
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze, run_cli

TOPIC = "bronze-ingest-api"
PAYLOAD = b'{"resourceType": "Patient", "id": "replayed"}'


@pytest.fixture(scope="module")
def tokens(module_dsn: str) -> dict[str, str]:
    out = {}
    for role in ("admin", "read", "ingest"):
        result = run_cli("clients", "add", f"{role}-client", "--role", role, env=_env(module_dsn))
        assert result.returncode == 0, result.stderr
        out[role] = result.stdout.strip()
    return out


@pytest.fixture(scope="module")
def bronze(
    tmp_path_factory: pytest.TempPathFactory, module_dsn: str, tokens: dict[str, str]
) -> Iterator[MmBronze]:
    proc = MmBronze(tmp_path_factory.mktemp("dlq"), env=_env(module_dsn))
    proc.start()
    yield proc
    proc.stop()


def _env(dsn: str) -> dict[str, str]:
    return {"POSTGRES_DSN": dsn}


def dlq(dsn: str, *args: str) -> tuple[int, str, str]:
    result = run_cli("dlq", *args, env=_env(dsn))
    return result.returncode, result.stdout, result.stderr


def listed(dsn: str, *args: str) -> list[dict]:
    code, out, err = dlq(dsn, "list", "--json", *args)
    assert code == 0, err
    return json.loads(out)


def enqueue(dsn: str, value: bytes) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO bus.messages (topic, key, value) VALUES (%s, 'k', %s)", (TOPIC, value)
        )


def set_aside(dsn: str, event: IngestEvent, attempts: int = 1, reason: str = "test") -> None:
    """``event`` straight into the dead letters, as a consumer puts one there."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO bus.dead_letters (message_id, topic, key, value, attempts, reason,"
            " enqueued_at) VALUES (0, %s, 'k', %s, %s, %s, now())",
            (TOPIC, encode_event(event), attempts, reason),
        )


def wait_dead_letter(dsn: str, submission: str | None = None, timeout: float = 30) -> dict:
    """The pending dead letter of ``submission`` (or the newest undecodable one)."""
    what = f"a dead letter for {submission or 'an undecodable event'}"
    if submission is not None:  # a query is cheaper to repeat than a command's start
        with psycopg.connect(dsn, autocommit=True) as conn:
            wait_for(lambda: _dead_lettered(conn, submission), timeout=timeout, what=what)

    def letter() -> dict | None:
        return next((d for d in listed(dsn, "--limit", "1000") if d["uuid"] == submission), None)

    found = wait_for(letter, lambda found: found is not None, timeout=timeout, every=0.2, what=what)
    assert found is not None
    return found


def _dead_lettered(conn: psycopg.Connection, submission: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM bus.dead_letters WHERE position(%s IN value) > 0)",
        (submission.encode(),),
    ).fetchone()
    return bool(row and row[0])


def staged_event(bronze: MmBronze, payload: bytes) -> tuple[IngestEvent, Path]:
    """A claim-checked event whose staged blob is not there (yet)."""
    submission = str(uuid.uuid4())
    blob = bronze.data_dir / "raw" / "_staging" / "api" / submission
    event = IngestEvent(
        uuid=submission,
        source="api",
        format="fhir",
        content_type="json",
        version="R4",
        subtype="patient",
        sha256=sha256(payload),
        size=len(payload),
        received_at=dt.datetime.now(dt.UTC),
        client="admin-client",
        staged_path=blob.as_uri(),
    )
    return event, blob


def submissions_of(dsn: str, submission: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ingestion.submissions WHERE submission_id = %s", (submission,)
        ).fetchone()
    return int(row[0]) if row else 0


def wait_queue_empty(dsn: str, timeout: float = 30) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        wait_for(
            lambda: conn.execute("SELECT count(*) FROM bus.messages").fetchone(),
            lambda row: row is not None and row[0] == 0,
            timeout=timeout,
            what="the queue drained",
        )


def admin(bronze: MmBronze, tokens: dict[str, str]) -> httpx.Client:
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    return httpx.Client(base_url=bronze.url, headers=headers, timeout=30)


def test_a_dead_letter_replayed_after_its_blob_is_restored_is_stored_once(
    bronze: MmBronze, module_dsn: str, tokens: dict[str, str]
) -> None:
    event, blob = staged_event(bronze, PAYLOAD)
    enqueue(module_dsn, encode_event(event))
    letter = wait_dead_letter(module_dsn, event.uuid)
    assert letter["reason"] == f"staged payload is missing (looked for at {event.staged_path})"
    assert letter["topic"] == TOPIC
    assert letter["sha256"] == event.sha256
    assert letter["staged"] is True
    assert "payload" not in letter and "value" not in letter

    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(PAYLOAD)
    code, out, err = dlq(module_dsn, "replay", letter["id"])
    assert code == 0, err
    assert f"{letter['id']} replayed" in out
    with admin(bronze, tokens) as client:
        status = wait_status(client, event.uuid, {"stored", "duplicate"})
    assert (bronze.data_dir / "raw" / status["storage_path"]).read_bytes() == PAYLOAD
    assert submissions_of(module_dsn, event.uuid) == 1
    assert letter["id"] not in [d["id"] for d in listed(module_dsn)]

    # The same id again: gone, nothing is replayed twice.
    code, _, err = dlq(module_dsn, "replay", letter["id"])
    assert code == 1
    assert f"no dead letter {letter['id']}" in err
    assert err.count("\n") == 1

    # The same event dead-lettered a second time and replayed: still one submission.
    set_aside(module_dsn, event)
    again = wait_dead_letter(module_dsn, event.uuid)
    with admin(bronze, tokens) as client:
        response = client.post(f"/dead-letters/{again['id']}/replay")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "replayed"
    wait_queue_empty(module_dsn)
    assert submissions_of(module_dsn, event.uuid) == 1


def test_show_prints_metadata_never_the_payload(bronze: MmBronze, module_dsn: str) -> None:
    event, _ = staged_event(bronze, b'{"resourceType": "Patient", "id": "shown"}')
    enqueue(module_dsn, encode_event(event))
    letter = wait_dead_letter(module_dsn, event.uuid)
    code, out, err = dlq(module_dsn, "show", letter["id"], "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["uuid"] == event.uuid
    assert shown["attempts"] >= 1
    assert shown["client"] == "admin-client"
    code, out, _ = dlq(module_dsn, "show", letter["id"])
    assert f"uuid:             {event.uuid}" in out
    code, out, _ = dlq(module_dsn, "list")
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["ID", "TOPIC", "SUBMISSION"]
    assert any(row.split()[0] == letter["id"] and event.uuid in row for row in rows)


def test_purge_drops_a_dead_letter_for_good(bronze: MmBronze, module_dsn: str) -> None:
    payload = b'{"resourceType": "Patient", "id": "purged"}'
    event, blob = staged_event(bronze, payload)
    enqueue(module_dsn, encode_event(event))
    letter = wait_dead_letter(module_dsn, event.uuid)
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(payload)  # restored, as for a replay, then purged after all
    # No terminal: nobody to ask. The server's settings, so that it finds the staging store.
    settings = {**_env(module_dsn), "MM_BRONZE_DATA_DIR": str(bronze.data_dir)}
    result = run_cli("dlq", "purge", letter["id"], env=settings)
    assert result.returncode == 0, result.stderr
    assert letter["id"] not in [d["id"] for d in listed(module_dsn)]
    assert not blob.exists()  # nothing could replay it, nothing else would remove it
    code, _, err = dlq(module_dsn, "purge", letter["id"])
    assert code == 1 and "no dead letter" in err


def test_http_purge_removes_the_staged_payload_and_nothing_else(
    bronze: MmBronze, module_dsn: str, tokens: dict[str, str], tmp_path: Path
) -> None:
    payload = b'{"resourceType": "Patient", "id": "purged-over-http"}'
    event, blob = staged_event(bronze, payload)
    enqueue(module_dsn, encode_event(event))
    letter = wait_dead_letter(module_dsn, event.uuid)
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(payload)
    # A dead letter whose payload is staged outside this staging store: left where it is.
    outside = tmp_path / "elsewhere"
    outside.write_bytes(payload)
    other, _ = staged_event(bronze, payload)
    other = msgspec.structs.replace(other, staged_path=outside.as_uri())
    set_aside(module_dsn, other)
    foreign = wait_dead_letter(module_dsn, other.uuid)
    with admin(bronze, tokens) as client:
        for purged in (letter, foreign):
            response = client.delete(f"/dead-letters/{purged['id']}")
            assert response.status_code == 200, response.text
    assert not blob.exists()
    assert outside.read_bytes() == payload
    assert "staged payload of a purged dead letter not removed" in bronze.logs()


def test_purge_asks_first_on_a_terminal(bronze: MmBronze, module_dsn: str) -> None:
    event, _ = staged_event(bronze, b'{"resourceType": "Patient", "id": "asked"}')
    enqueue(module_dsn, encode_event(event))
    letter = wait_dead_letter(module_dsn, event.uuid)
    for answer, code, still_there in ((b"n\n", 1, True), (b"y\n", 0, False)):
        terminal, tty = pty.openpty()
        try:
            os.write(terminal, answer)
            proc = subprocess.run(
                [sys.executable, "-m", "mm_bronze", "dlq", "purge", letter["id"]],
                env={**os.environ, **_env(module_dsn)},
                stdin=tty,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            os.close(terminal)
            os.close(tty)
        assert proc.returncode == code, proc.stderr
        assert "purge 1 dead letter for good? [y/N]" in proc.stdout
        assert (letter["id"] in [d["id"] for d in listed(module_dsn)]) is still_there


def test_replay_all_by_topic_says_how_many(bronze: MmBronze, module_dsn: str) -> None:
    for n in range(2):
        event, _ = staged_event(bronze, f'{{"resourceType": "Patient", "id": "all{n}"}}'.encode())
        enqueue(module_dsn, encode_event(event))
        wait_dead_letter(module_dsn, event.uuid)
    code, out, _ = dlq(module_dsn, "replay", "--all", "--topic", "no-such-topic")
    assert code == 0 and out.strip() == "0 dead letters replayed"
    pending = listed(module_dsn, "--topic", TOPIC, "--limit", "1000")
    assert len(pending) >= 2
    code, out, _ = dlq(module_dsn, "replay", "--all", "--topic", TOPIC)
    assert code == 0 and out.strip() == f"{len(pending)} dead letters replayed"
    remaining = {d["id"] for d in listed(module_dsn, "--limit", "1000")}
    assert not remaining & {d["id"] for d in pending}


def undecodable_letters(dsn: str, count: int) -> list[dict]:
    """Put ``count`` undecodable events on the bus; every pending dead letter once theirs
    are listed too (last)."""
    before = len(listed(dsn, "--limit", "1000"))
    for _ in range(count):
        enqueue(dsn, b"\xc1 not an event")
    return wait_for(
        lambda: listed(dsn, "--limit", "1000"),
        lambda found: len(found) >= before + count,
        every=0.2,
        what=f"{count} more dead letters",
    )


def test_list_pages_with_a_cursor(bronze: MmBronze, module_dsn: str) -> None:
    everything = undecodable_letters(module_dsn, 3)
    first = listed(module_dsn, "--limit", "2")
    rest = listed(module_dsn, "--limit", "1000", "--after", first[-1]["id"])
    assert [d["id"] for d in first + rest] == [d["id"] for d in everything]
    undecodable = [d for d in everything if d["uuid"] is None]
    assert undecodable and undecodable[0]["reason"].startswith("undecodable event")


def test_a_page_that_ends_the_list_has_no_next_cursor(
    bronze: MmBronze, module_dsn: str, tokens: dict[str, str]
) -> None:
    enqueue(module_dsn, b"\xc1 not an event")
    wait_for(lambda: listed(module_dsn), bool, every=0.2, what="a dead letter")
    with admin(bronze, tokens) as client:
        everything = client.get("/dead-letters", params={"limit": 1000}).json()["dead_letters"]
        exact = client.get("/dead-letters", params={"limit": len(everything)}).json()
        assert exact == {"dead_letters": everything, "next_cursor": None}
        if len(everything) > 1:
            short = client.get("/dead-letters", params={"limit": len(everything) - 1}).json()
            assert short["next_cursor"] == everything[-2]["id"]


def test_purge_checks_every_id_before_the_first(bronze: MmBronze, module_dsn: str) -> None:
    letters = undecodable_letters(module_dsn, 2)
    first, second = letters[-2]["id"], letters[-1]["id"]
    code, out, err = dlq(module_dsn, "purge", first, "abc", second, "--yes")
    assert code == 2 and "'abc' is not a dead letter id" in err.splitlines()[-1]
    assert out == ""
    assert {first, second} <= {d["id"] for d in listed(module_dsn, "--limit", "1000")}
    # An id of the right form that names no pending dead letter: nothing is done either.
    for action, done in ((["purge", "--yes"], "purged"), (["replay"], "replayed")):
        code, out, err = dlq(module_dsn, action[0], first, "999999999", second, *action[1:])
        assert code == 1 and out == "", err
        assert err.strip() == (
            "mm-bronze: error: no dead letter 999999999 (unknown, or already replayed or"
            f" purged); nothing {done}"
        )
        assert {first, second} <= {d["id"] for d in listed(module_dsn, "--limit", "1000")}
    code, out, err = dlq(module_dsn, "purge", first, f"00{first}", "--yes")
    assert code == 2 and f"{first}: named more than once" in err.splitlines()[-1]
    code, out, err = dlq(module_dsn, "purge", f"00{first}", second, "--yes")
    assert code == 0, err
    assert out.splitlines() == [f"{first} purged", f"{second} purged"]


def test_cli_mistakes_are_one_line(bronze: MmBronze, module_dsn: str) -> None:
    code, _, err = dlq(module_dsn, "show", "not-an-id")
    assert code == 2 and "is not a dead letter id" in err.splitlines()[-1]
    code, _, err = dlq(module_dsn, "replay")
    assert code == 2 and "or --all" in err.splitlines()[-1]
    code, _, err = dlq(module_dsn, "show", "999999999")
    assert code == 1 and err.strip() == "mm-bronze: error: no dead letter 999999999"
    code, _, err = dlq(module_dsn, "list", "--limit", "99999999999999999999")
    assert code == 2 and "expected 1 to 100000" in err.splitlines()[-1]
    code, _, err = dlq(module_dsn, "list", "--topic", "")
    assert code == 2 and "--topic: expected a topic name" in err.splitlines()[-1]


def test_http_is_for_admin_clients_only(bronze: MmBronze, tokens: dict[str, str]) -> None:
    with httpx.Client(base_url=bronze.url, timeout=30) as client:
        for method, path in (("GET", "/dead-letters"), ("POST", "/dead-letters/1/replay")):
            response = client.request(method, path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
            for role in ("read", "ingest"):
                headers = {"Authorization": f"Bearer {tokens[role]}"}
                response = client.request(method, path, headers=headers)
                assert response.status_code == 403, (role, path)
                assert response.json()["error"] == "forbidden"


def test_http_lists_shows_and_refuses_bad_ids(
    bronze: MmBronze, module_dsn: str, tokens: dict[str, str]
) -> None:
    secret = b'{"resourceType": "Patient", "name": [{"family": "Secretname"}]}'
    event, _ = staged_event(bronze, secret)
    event = msgspec.structs.replace(event, staged_path=None, payload=secret)
    # An inline event, as a consumer sets it aside.
    set_aside(module_dsn, event, attempts=5, reason="gave up after 4 deliveries")
    letter = wait_dead_letter(module_dsn, event.uuid)
    assert letter["staged"] is False
    with admin(bronze, tokens) as client:
        page = client.get("/dead-letters", params={"topic": TOPIC, "limit": 1000}).json()
        assert letter["id"] in [d["id"] for d in page["dead_letters"]]
        assert page["next_cursor"] is None
        one = client.get("/dead-letters", params={"limit": 1}).json()
        assert len(one["dead_letters"]) == 1 and one["next_cursor"] == one["dead_letters"][0]["id"]
        shown = client.get(f"/dead-letters/{letter['id']}")
        assert shown.status_code == 200 and shown.json()["uuid"] == event.uuid
        assert "Secretname" not in shown.text and '"payload"' not in shown.text
        assert "Secretname" not in client.get("/dead-letters").text
        assert client.get("/dead-letters", params={"limit": "0"}).status_code == 400
        assert client.get("/dead-letters", params={"limit": "²"}).status_code == 400
        huge = client.get("/dead-letters", params={"limit": "9" * 5000})  # beyond int()
        assert huge.status_code == 400 and huge.json()["error"] == "invalid_limit"
        for query in ("limt=5", "limit=5&limit=6"):
            refused = client.get(f"/dead-letters?{query}")
            assert refused.status_code == 400, query
            assert refused.json()["error"] == "invalid_parameter"
            assert refused.json()["parameter"] == query.split("=")[0]
        nul = client.get("/dead-letters", params={"topic": "a\x00"})
        assert nul.status_code == 400 and nul.json()["error"] == "invalid_topic"
        for bad in ("abc", "²"):
            assert client.get(f"/dead-letters/{bad}").json()["error"] == "invalid_id"
        missing = client.post("/dead-letters/999999999/replay")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        # The item routes take no parameter: a ``dry_run`` or ``confirm`` they do not know
        # is refused, not ignored by an action that cannot be undone.
        item = f"/dead-letters/{letter['id']}"
        for method, path in (("DELETE", item), ("POST", item + "/replay"), ("GET", item)):
            refused = client.request(method, path + "?dry_run=1")
            assert refused.status_code == 400, (method, path)
            assert refused.json() == {
                "error": "invalid_parameter",
                "message": "dry_run: unknown parameter; this route takes none",
                "parameter": "dry_run",
            }
        assert client.get(item).status_code == 200  # still pending
        purged = client.delete(f"/dead-letters/00{letter['id']}")  # answered as written
        assert purged.status_code == 200
        assert purged.json() == {"status": "purged", "id": letter["id"]}
        assert client.get(f"/dead-letters/{letter['id']}").status_code == 404
        put = client.put(f"/dead-letters/{letter['id']}")
        assert put.status_code == 405
        assert set(put.headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE"}
