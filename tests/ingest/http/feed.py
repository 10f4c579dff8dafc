"""A downstream reader of the GET /submissions feed, and a consumer crash to read through."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import psycopg

from tests.ingest.http.helpers import post_many
from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze


class FeedReader:
    """Follows ``after`` with long polls on a thread, saving its cursor after each page
    (as the README's consumer loop does); ``stop`` ends it like a crash of the reader: the
    page in flight then is never saved."""

    def __init__(self, url: str, cursor: int = 0, wait: float = 5, limit: int = 37) -> None:
        self.url = url
        self.cursor = cursor
        self.wait = wait
        self.limit = limit
        self.seen: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._saving = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FeedReader:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Crash: from now on ``seen`` and ``cursor`` stay as they are. The thread itself
        ends when its poll in flight returns (see ``join``)."""
        with self._saving:
            self._stop.set()

    def join(self) -> None:
        self.stop()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.wait + 30) as http:
            while not self._stop.is_set():
                params = {"after": self.cursor, "wait": self.wait, "limit": self.limit}
                try:
                    response = http.get("/submissions", params=params)
                except httpx.HTTPError as exc:  # the door restarting: retry from the cursor
                    if self._stop.is_set():
                        return
                    self.errors.append(type(exc).__name__)
                    time.sleep(0.2)
                    continue
                with self._saving:
                    if self._stop.is_set():
                        return
                    if response.status_code != 200:
                        self.errors.append(f"{response.status_code} {response.text}")
                    else:
                        page = response.json()
                        self.seen += [item["uuid"] for item in page["items"]]
                        self.cursor = page["next"]
                        continue
                time.sleep(0.2)


def payload(i: int) -> bytes:
    fields = f'"id": "feed-{i}", "status": "final", "code": {{"text": "feed"}}'
    return ('{"resourceType": "Observation", ' + fields + "}").encode()


def recorded(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM ingestion.submissions").fetchone()
    assert row is not None
    return int(row[0])


def feed_sees_everything(
    tmp_path: Path,
    env: dict[str, str],
    dsn: str,
    *,
    total_first: int = 1000,
    total_second: int = 200,
) -> None:
    """A reader follows the feed while the consumers' process is killed mid-load and
    restarted, and the reader itself stops and resumes from its saved cursor: every
    accepted uuid is seen, none twice."""
    http = MmBronze(tmp_path, "--http", env=env).start()
    readers = [FeedReader(http.url).start()]
    total = total_first + total_second
    uuids = asyncio.run(post_many(http.url, [payload(i) for i in range(total_first)]))
    # One connection polls the count: a new one per poll would cost the server a backend.
    counts = psycopg.connect(dsn, autocommit=True)
    consumers = MmBronze(tmp_path, "--consumers", env=env).start(wait=False)
    try:
        wait_for(lambda: recorded(counts) >= 60, timeout=120, what="the first submissions recorded")
        consumers.kill()
        assert recorded(counts) < total_first, "consumers finished before they could be killed"
        # The reader crashes too, and a new one resumes from the cursor it saved.
        readers[0].stop()
        readers.append(FeedReader(http.url, cursor=readers[0].cursor).start())
        more = [payload(i) for i in range(total_first, total)]
        uuids += asyncio.run(post_many(http.url, more))
        consumers = MmBronze(tmp_path, "--consumers", env=env).start()
        wait_for(lambda: recorded(counts) >= total, timeout=180, what="every submission recorded")
        wait_for(
            lambda: sum(len(r.seen) for r in readers) >= total,
            timeout=60,
            what="the reader to catch up",
        )
    finally:
        counts.close()
        for reader in readers:
            reader.stop()
        consumers.stop()
        http.stop()  # answers the polls still waiting
        for reader in readers:
            reader.join()
    seen = [uuid for reader in readers for uuid in reader.seen]
    assert set(seen) == set(uuids), f"missing {len(set(uuids) - set(seen))}"
    assert len(seen) == len(set(seen)), "a submission was delivered twice"
    assert [e for r in readers for e in r.errors] == []
