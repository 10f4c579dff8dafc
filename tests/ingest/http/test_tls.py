"""HTTPS on the HTTP door, with optional client certificates (mutual TLS)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from tests.polling import wait_for
from tests.services.mm_bronze import MmBronze, free_port, run_cli

ROUTE = "/ingest/fhir/json/R4/patient"
BODY = b'{"resourceType": "Patient", "id": "over-tls"}'


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("http-tls")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("partner@example.org")
    out = {
        "cert": folder / "server.pem",
        "key": folder / "server.key",
        "ca": folder / "ca.pem",
        "client": folder / "client.pem",
    }
    server.cert_chain_pems[0].write_to_path(out["cert"])
    server.private_key_pem.write_to_path(out["key"])
    ca.cert_pem.write_to_path(out["ca"])
    client.private_key_and_cert_chain_pem.write_to_path(out["client"])
    return out


def https_ready(server: MmBronze, verify: ssl.SSLContext, timeout: float = 60) -> None:
    url = f"https://127.0.0.1:{server.http_port}/healthz"

    def healthy() -> bool:
        assert server.proc is not None and server.proc.poll() is None, server.logs()
        try:
            return httpx.get(url, verify=verify, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout=timeout, every=0.2, what="the HTTPS door to answer")


def client_context(files: dict[str, Path], *, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(files["ca"]))
    if with_cert:
        context.load_cert_chain(str(files["client"]))
    return context


@pytest.fixture
def https_server(
    tmp_path: Path, module_dsn: str, files: dict[str, Path], request: pytest.FixtureRequest
) -> Iterator[MmBronze]:
    env = {
        "POSTGRES_DSN": module_dsn,
        "MM_BRONZE_HTTP_TLS_CERT": str(files["cert"]),
        "MM_BRONZE_HTTP_TLS_KEY": str(files["key"]),
    }
    if request.param == "mutual":
        env["MM_BRONZE_HTTP_TLS_CLIENT_CA"] = str(files["ca"])
    server = MmBronze(tmp_path, "--http", env=env)
    server.start(wait=False)
    https_ready(server, client_context(files, with_cert=True))
    yield server
    server.stop()


@pytest.mark.parametrize("https_server", ["server-only"], indirect=True)
def test_https_ingests_and_plain_http_is_not_served(
    https_server: MmBronze, files: dict[str, Path]
) -> None:
    base = f"https://127.0.0.1:{https_server.http_port}"
    with httpx.Client(base_url=base, verify=client_context(files, with_cert=False)) as client:
        response = client.post(ROUTE, content=BODY)
        assert response.status_code == 202, response.text
        assert response.http_version == "HTTP/1.1"
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"http://127.0.0.1:{https_server.http_port}{ROUTE}", content=BODY, timeout=5)


@pytest.mark.parametrize("https_server", ["mutual"], indirect=True)
def test_mutual_tls_needs_a_client_certificate(
    https_server: MmBronze, files: dict[str, Path]
) -> None:
    base = f"https://127.0.0.1:{https_server.http_port}"
    with httpx.Client(base_url=base, verify=client_context(files, with_cert=True)) as client:
        assert client.post(ROUTE, content=BODY).status_code == 202
    with pytest.raises(httpx.HTTPError):
        with httpx.Client(base_url=base, verify=client_context(files, with_cert=False)) as client:
            client.post(ROUTE, content=BODY)


@pytest.mark.parametrize("mistake", ["missing", "encrypted", "swapped"])
def test_unusable_tls_files_stop_the_start_with_one_line_that_names_them(
    tmp_path: Path, module_dsn: str, files: dict[str, Path], mistake: str
) -> None:
    cert, key = str(files["cert"]), str(files["key"])
    if mistake == "missing":
        cert = str(tmp_path / "missing.pem")
        expected = f"http.tls_cert {cert}: no such file"
    elif mistake == "encrypted":  # without a terminal OpenSSL said "[Errno 22] Invalid argument"
        plain = serialization.load_pem_private_key(files["key"].read_bytes(), password=None)
        encrypted = tmp_path / "encrypted.key"
        encrypted.write_bytes(
            plain.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
        key = str(encrypted)
        expected = f"http.tls_key {key} is encrypted with a passphrase"
    else:
        key = cert
        expected = f"http TLS files cannot be loaded (http.tls_cert {cert}, http.tls_key {key})"
    result = run_cli(
        "serve",
        "--http",
        "--http-port",  # not the default: a `make run` beside the tests holds it
        str(free_port()),
        "--data-dir",
        str(tmp_path),
        env={
            "POSTGRES_DSN": module_dsn,
            "MM_BRONZE_HTTP_TLS_CERT": cert,
            "MM_BRONZE_HTTP_TLS_KEY": key,
        },
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("https_server", ["server-only", "mutual"], indirect=True)
def test_the_container_health_probe_follows_the_door_to_https(
    https_server: MmBronze, files: dict[str, Path], tmp_path: Path
) -> None:
    """``python -m mm_bronze.healthcheck`` (the image's HEALTHCHECK) reads the same settings
    as the door: with TLS on it asks over HTTPS, where a plain-HTTP probe always failed."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MM_BRONZE_")},
        **{k: v for k, v in https_server.env.items() if k.startswith("MM_BRONZE_HTTP_")},
        "MM_BRONZE_HTTP_PORT": str(https_server.http_port),
    }
    probe = [sys.executable, "-m", "mm_bronze.healthcheck", "/healthz"]
    healthy = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=60)
    assert healthy.returncode == 0, healthy.stderr
    env["MM_BRONZE_HTTP_PORT"] = str(free_port())  # nothing listens there
    down = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 1
    assert down.stderr.startswith("mm-bronze unhealthy: 127.0.0.1:")
