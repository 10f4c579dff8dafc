"""Run ``mm-bronze`` as a real subprocess, the way users run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.polling import wait_for
from tests.ports import free_port


class MmBronze:
    """One ``mm-bronze serve`` process with its own data dir."""

    def __init__(
        self,
        data_dir: Path,
        *roles: str,
        env: dict[str, str] | None = None,
        http_port: int | None = None,
        mllp_port: int | None = None,
        sftp_port: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.roles = roles or ("--all",)
        self.http_port = http_port or free_port()
        self.mllp_port = mllp_port or free_port()
        self.sftp_port = sftp_port or free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MM_BRONZE_")},
            "MM_BRONZE_LOG_FORMAT": "json",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0
        self.log_path = data_dir / f"serve-{self.http_port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, *, wait: bool = True, timeout: float = 60) -> MmBronze:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self._log_start = log.tell()  # this run's lines follow those of earlier runs
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mm_bronze",
                "serve",
                *self.roles,
                "--data-dir",
                str(self.data_dir),
                "--http-port",
                str(self.http_port),
                "--mllp-port",
                str(self.mllp_port),
                *self._sftp_args(),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def _sftp_args(self) -> list[str]:
        if "--sftp" in self.roles or "--all" in self.roles:
            return ["--sftp-port", str(self.sftp_port)]
        return []

    def wait_ready(self, timeout: float = 60) -> None:
        proc = self.proc
        assert proc is not None
        # A door that shares its port (http.reuse_port) cannot be asked through it: another
        # process may answer. Its log says when it listens.
        probe = self._runs("http") and self.env.get("MM_BRONZE_HTTP_REUSE_PORT") != "true"

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"mm-bronze exited {proc.returncode}:\n{self.logs()}")
            if not probe:
                return self._ready_logged()
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=timeout, every=0.1, what="mm-bronze to be ready", detail=self.logs)

    def _runs(self, door: str) -> bool:
        return f"--{door}" in self.roles or "--all" in self.roles

    def _ready_logged(self) -> bool:
        """The latest run has logged that it started and that each door it runs listens
        (``mm-bronze started`` comes before the doors bind). The log is read once."""
        logs = self.run_logs()
        doors = [f"{door} listening" for door in ("http", "sftp", "mllp") if self._runs(door)]
        return all(line in logs for line in ("mm-bronze started", *doors))

    def run_logs(self) -> str:
        """The log of the latest ``start`` only."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines, decoded."""
        return [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> MmBronze:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def exit_time(server: MmBronze, limit: float) -> float:
    """Seconds from SIGTERM to the process's exit (fails past ``limit``)."""
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(limit)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        logs = server.run_logs()[-3000:]
        raise AssertionError(f"no exit {limit} s after SIGTERM:\n{logs}") from None
    assert code == 0, server.run_logs()[-3000:]
    return time.monotonic() - started


def run_cli(
    *args: str, env: dict[str, str] | None = None, input: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MM_BRONZE_")},
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "mm_bronze", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input.decode() if input else None,
    )
