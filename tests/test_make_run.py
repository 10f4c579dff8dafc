"""``make run`` hands the terminal to the server: one Ctrl-C reaches it once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.polling import wait_for
from tests.services.mm_bronze import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("sig", "group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c-to-the-terminal-group", "sigterm-to-make"],
)
def test_one_signal_through_make_stops_the_server_once(
    tmp_path: Path, sig: signal.Signals, group: bool
) -> None:
    http = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MM_BRONZE_")},
        "MM_BRONZE_DATA_DIR": str(tmp_path / "data"),
        "MM_BRONZE_HTTP_PORT": str(http),
        "MM_BRONZE_MLLP_PORT": str(free_port()),
        "SFTP_PORT": str(free_port()),
        "MM_BRONZE_LOG_FORMAT": "json",
        "MAKEFLAGS": "",
    }
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        # A process group of its own, like a terminal's foreground job.
        make = subprocess.Popen(
            ["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:

        def ready() -> bool:
            assert make.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{http}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=120, every=0.2, what="make run to be ready", detail=log.read_text)
        if group:
            os.killpg(make.pid, sig)  # what Ctrl-C does: the whole foreground group
        else:
            make.send_signal(sig)  # make passes SIGTERM on to the command it runs
        make.wait(timeout=90)
    finally:
        # Whatever is left of the group (a server that missed the signal) stops now.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGTERM)
    events = [json.loads(x)["event"] for x in log.read_text().splitlines() if x.startswith("{")]
    assert events.count("shutting down") == 1, events
    assert "second signal, still shutting down" not in events
    assert events[-1] == "mm-bronze stopped"
