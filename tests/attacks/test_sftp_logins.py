"""Password guessing over SFTP: a few attempts per connection, a growing delay, a log line."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator

import asyncssh
import paramiko
import pytest

from tests.ingest.sftp.helpers import write_users
from tests.services.mm_bronze import MmBronze

DELAY = 0.1  # the first failure's delay; it doubles per failure for a user or an address


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[MmBronze]:
    data_dir = tmp_path_factory.mktemp("sftp-logins")
    write_users(data_dir, {"lab1": ("the-password", "write"), "lab2": ("other-pw", "write")})
    proc = MmBronze(
        data_dir,
        env={"POSTGRES_DSN": module_dsn, "MM_BRONZE_SFTP_AUTH_FAILURE_DELAY": str(DELAY)},
    )
    proc.start()
    yield proc
    proc.stop()


class Guesser(asyncssh.SSHClient):
    """Offers a new wrong password each time the server asks; notes when it was asked."""

    def __init__(self, tries: int) -> None:
        self.asked: list[float] = []
        self._tries = tries

    def password_auth_requested(self) -> str | None:
        self.asked.append(time.monotonic())
        if len(self.asked) > self._tries:
            return None
        return f"guess-{len(self.asked)}"


def guess(port: int, user: str, tries: int) -> list[float]:
    """Wrong passwords on one connection until it is closed; how long each answer took."""

    async def run() -> list[float]:
        guesser = Guesser(tries)
        with pytest.raises((asyncssh.PermissionDenied, asyncssh.DisconnectError, OSError)):
            await asyncssh.connect(
                "127.0.0.1",
                port,
                username=user,
                client_factory=lambda: guesser,
                known_hosts=None,
                client_keys=None,
                agent_path=None,
                preferred_auth="password",
            )
        return [b - a for a, b in itertools.pairwise(guesser.asked)]

    return asyncio.run(run())


def test_a_connection_gets_six_attempts_each_answered_later(server: MmBronze) -> None:
    took = guess(server.sftp_port, "lab1", 200)
    # took[i]: from guess i+1 to the server asking again (it never asks after the 6th).
    assert len(took) == 5, took
    # Failure n is answered no sooner than DELAY * 2 ** (n - 1): 0.1, 0.2, 0.4, 0.8, 1.6 s.
    # (Lower bounds only: a loaded machine can only make each answer later.)
    assert all(t >= DELAY * 2**n * 0.95 for n, t in enumerate(took)), took
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    refused = [x for x in lines if x.get("event") == "sftp login refused" and x["user"] == "lab1"]
    assert [x["failures"] for x in refused] == [1, 2, 3, 4, 5, 6]
    closed = [x for x in lines if x.get("event", "").startswith("sftp too many authentication")]
    assert closed and closed[-1]["user"] == "lab1" and closed[-1]["peer"] == "127.0.0.1"
    assert not any("guess-" in line for line in server.logs().splitlines())


def test_the_delay_follows_the_address_to_another_user(server: MmBronze) -> None:
    # The address has failed 6 times already: the first guess for another user waits too.
    took = guess(server.sftp_port, "lab2", 1)
    assert took and took[0] >= DELAY * 2**6 * 0.9, took


def test_the_right_password_still_works(server: MmBronze) -> None:
    transport = paramiko.Transport(("127.0.0.1", server.sftp_port))
    try:
        transport.connect(username="lab1", password="the-password")
        assert transport.is_authenticated()
    finally:
        transport.close()
