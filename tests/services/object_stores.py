"""Real object stores for tests: moto (S3), gcp-storage-emulator (GCS), azurite (Azure Blob).

Each runs on a free loopback port for the whole session and hands out fresh buckets
(containers), so tests never see each other's objects.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Before gcsfs is imported: the emulator speaks no gRPC (see TESTING.md).
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import fsspec
import pytest

from tests.polling import wait_listening
from tests.services.mm_bronze import free_port

ROOT = Path(__file__).resolve().parents[2]
AZURITE_DIR = ROOT / ".venv" / "azurite"
AZURITE_VERSION = "3"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class ObjectStoreService:
    """One emulator: its URL scheme, the storage options clients need, fresh buckets."""

    scheme = ""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.options = options

    def filesystem(self) -> fsspec.AbstractFileSystem:
        """A client of its own (no shared instance, no listing cache), as a reader would use."""
        return fsspec.filesystem(
            self.scheme, skip_instance_cache=True, use_listings_cache=False, **self.options
        )

    def new_bucket(self) -> str:
        """Create an empty bucket; return its name."""
        bucket = f"t{uuid.uuid4().hex[:16]}"
        self.filesystem().mkdir(bucket)
        return bucket

    def new_url(self, prefix: str = "raw") -> str:
        return f"{self.scheme}://{self.new_bucket()}/{prefix}"

    def __repr__(self) -> str:
        return self.name


class S3Service(ObjectStoreService):
    """moto's S3 server in a process of its own (large uploads would compete with the test
    for the GIL in a thread)."""

    scheme = "s3"

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        super().__init__(
            "s3",
            {
                "key": "testing",
                "secret": "testing",
                "endpoint_url": f"http://127.0.0.1:{self.port}",
            },
        )

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_listening(self.port, proc=self._proc)

    def stop(self) -> None:
        _stop(self._proc)
        self._proc = None

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The server stopped with SIGSTOP: a store that hangs instead of failing (connections
        are still accepted by the kernel, nothing is ever answered), until the block ends."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self._proc.pid, signal.SIGCONT)


class GcsService(ObjectStoreService):
    """gcp-storage-emulator in memory, in a thread."""

    scheme = "gs"

    def __init__(self) -> None:
        from gcp_storage_emulator.server import create_server

        logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
        self.port = free_port()
        self._server = create_server("127.0.0.1", self.port, in_memory=True)
        super().__init__("gcs", {"endpoint_url": f"http://127.0.0.1:{self.port}", "token": "anon"})

    def start(self) -> None:
        self._server.start()
        wait_listening(self.port)

    def stop(self) -> None:
        self._server.stop()


class AzureService(ObjectStoreService):
    """azurite's Blob service, run with node directly (an npx parent would leave it behind)."""

    scheme = "az"

    def __init__(self, location: Path) -> None:
        self.port = free_port()
        self.location = location
        self._proc: subprocess.Popen[bytes] | None = None
        connection = (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{self.port}/devstoreaccount1;"
        )
        super().__init__("azure", {"connection_string": connection})

    def start(self) -> None:
        node = shutil.which("node")
        if node is None:
            pytest.fail("node is required for the azurite Azure Blob emulator")
        script = azurite_script()
        self._proc = subprocess.Popen(
            [
                node,
                str(script),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.location),
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        wait_listening(self.port, proc=self._proc)

    def stop(self) -> None:
        _stop(self._proc)
        self._proc = None


def azurite_script() -> Path:
    """The azurite-blob entry point, installed with npm into .venv/azurite when missing."""
    script = AZURITE_DIR / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is required to install the azurite Azure Blob emulator")
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(AZURITE_DIR),
                "--no-audit",
                "--no-fund",
                f"azurite@{AZURITE_VERSION}",
            ],
            check=True,
            capture_output=True,
        )
    return script


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    service = S3Service(tmp_path_factory.mktemp("moto") / "moto.log")
    service.start()
    yield service
    service.stop()


@pytest.fixture
def s3_alone(tmp_path: Path) -> Iterator[S3Service]:
    """A moto of the test's own, for a test that freezes it (never the session's)."""
    service = S3Service(tmp_path / "moto.log")
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def gcs() -> Iterator[GcsService]:
    service = GcsService()
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureService]:
    service = AzureService(tmp_path_factory.mktemp("azurite"))
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session", params=["s3", "gcs", "azure"])
def object_store(request: pytest.FixtureRequest) -> ObjectStoreService:
    """Each cloud backend in turn."""
    service: ObjectStoreService = request.getfixturevalue(request.param)
    return service
