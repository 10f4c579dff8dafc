"""Who may send: the peer address allow-list, TLS, client certificates, safe defaults."""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.ingest.mllp.helpers import END, START, RawMllp, oru, parse_ack, wait_rows
from tests.polling import wait_listening
from tests.services.mm_bronze import MmBronze, free_port, run_cli


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls")
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {"cert": folder / "server.pem", "key": folder / "server.key", "ca": folder / "ca.pem"}
    server_cert.cert_chain_pems[0].write_to_path(files["cert"])
    server_cert.private_key_pem.write_to_path(files["key"])
    ca.cert_pem.write_to_path(files["ca"])
    return files


@pytest.fixture(scope="module")
def allowed_client(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("lab-sender@example.org")


def fingerprint(cert: trustme.LeafCert) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    return hashlib.sha256(der).hexdigest()


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory,
    module_dsn: str,
    tls_files: dict[str, Path],
    allowed_client: trustme.LeafCert,
) -> Iterator[MmBronze]:
    proc = MmBronze(
        tmp_path_factory.mktemp("mllp-tls"),
        env={
            "POSTGRES_DSN": module_dsn,
            "MM_BRONZE_MLLP_TLS_CERT": str(tls_files["cert"]),
            "MM_BRONZE_MLLP_TLS_KEY": str(tls_files["key"]),
            "MM_BRONZE_MLLP_TLS_CLIENT_CA": str(tls_files["ca"]),
            "MM_BRONZE_MLLP_TLS_CLIENT_FINGERPRINTS": f'["{fingerprint(allowed_client)}"]',
            "MM_BRONZE_MLLP_ALLOWED_PEERS": '["127.0.0.0/8", "::1"]',
        },
    )
    proc.start()
    wait_listening(proc.mllp_port)
    yield proc
    proc.stop()


def tls_connect(port: int, ca: trustme.CA, client: trustme.LeafCert | None) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if client is not None:
        client.configure_cert(context)
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def read_reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(END):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_tls_with_an_allowed_client_certificate(
    tls_server: MmBronze, ca: trustme.CA, allowed_client: trustme.LeafCert, module_dsn: str
) -> None:
    message = oru("TLS1")
    with tls_connect(tls_server.mllp_port, ca, allowed_client) as sock:
        sock.sendall(START + message + END)
        ack = parse_ack(read_reply(sock).removeprefix(START).removesuffix(END))
    assert (ack.code, ack.control_id) == ("AA", "TLS1")
    rows = wait_rows(module_dsn, hashlib.sha256(message).hexdigest(), 1)
    meta = rows[0][3]
    assert meta["remote_addr"] == "127.0.0.1"
    assert meta["tls_client_certificate"] == fingerprint(allowed_client)


def refused(port: int, ca: trustme.CA, client: trustme.LeafCert | None) -> bool:
    """True when the server ends the TLS connection without answering a message."""
    try:
        with tls_connect(port, ca, client) as sock:
            sock.sendall(START + oru("REFUSED") + END)
            return read_reply(sock) == b""
    except (ssl.SSLError, ConnectionError):
        return True  # with TLS 1.3 the client learns of a refused certificate late


def test_tls_refuses_other_clients(tls_server: MmBronze, ca: trustme.CA) -> None:
    # Signed by the trusted CA but not on the fingerprint list.
    assert refused(tls_server.mllp_port, ca, ca.issue_cert("someone-else@example.org"))
    # No client certificate at all.
    assert refused(tls_server.mllp_port, ca, None)
    # A certificate from another CA.
    assert refused(tls_server.mllp_port, ca, trustme.CA().issue_cert("intruder@example.org"))
    # Plain MLLP on the TLS port gets nothing back.
    with RawMllp(tls_server.mllp_port, timeout=30) as conn:
        conn.send(oru("TLS4"))
        assert conn.read_frame() is None
    assert "client certificate not allowed" in tls_server.logs()


def test_peer_outside_allowed_networks_is_refused(
    tmp_path_factory: pytest.TempPathFactory, module_dsn: str
) -> None:
    env = {"POSTGRES_DSN": module_dsn, "MM_BRONZE_MLLP_ALLOWED_PEERS": '["10.0.0.0/8"]'}
    with MmBronze(tmp_path_factory.mktemp("mllp-peers"), env=env) as proc:
        wait_listening(proc.mllp_port)
        with RawMllp(proc.mllp_port) as conn:
            conn.send(oru("PEER1"))
            assert conn.read_frame() is None
        assert "mllp peer refused: address not allowed" in proc.logs()


def test_configuration_errors_are_named(module_dsn: str) -> None:
    env = {"POSTGRES_DSN": module_dsn, "MM_BRONZE_MLLP_ALLOWED_PEERS": '["10.0.0.300/8"]'}
    result = run_cli("config", env=env)
    assert result.returncode == 2
    assert "mllp.allowed_peers" in result.stderr and "10.0.0.300/8" in result.stderr

    result = run_cli("config", env={"MM_BRONZE_MLLP_TLS_CERT": "/nonexistent.pem"})
    assert result.returncode == 2 and "tls_key" in result.stderr


def test_refuses_a_public_address_without_peer_restrictions(
    tmp_path: Path, module_dsn: str
) -> None:
    result = run_cli(
        "serve",
        "--mllp",
        "--mllp-host",
        "0.0.0.0",
        "--mllp-port",  # not the default: a `make run` beside the tests holds it
        str(free_port()),
        "--data-dir",
        str(tmp_path),
        env={"POSTGRES_DSN": module_dsn},
    )
    assert result.returncode == 2, result.stderr
    assert "refusing to serve MLLP on non-loopback address 0.0.0.0" in result.stderr
