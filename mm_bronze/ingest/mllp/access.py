"""Who may connect to the MLLP door: peer address allow-list, TLS and client certificates."""

from __future__ import annotations

import ipaddress
import ssl

from mm_bronze.addresses import is_loopback
from mm_bronze.errors import ConfigError
from mm_bronze.settings import MllpSettings
from mm_bronze.tls_files import server_context


class PeerPolicy:
    """Allowed peer networks (empty: any) and allowed client certificate fingerprints."""

    def __init__(self, allowed_peers: list[str], fingerprints: list[str]) -> None:
        self._networks = [ipaddress.ip_network(p, strict=False) for p in allowed_peers]
        self._fingerprints = {_normalise(f) for f in fingerprints}

    def allows_address(self, address: str) -> bool:
        if not self._networks:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self._networks)

    def allows_certificate(self, fingerprint: str | None) -> bool:
        if not self._fingerprints:
            return True
        return fingerprint is not None and _normalise(fingerprint) in self._fingerprints


def _normalise(fingerprint: str) -> str:
    return fingerprint.replace(":", "").strip().lower()


def check_exposure(settings: MllpSettings) -> None:
    """Refuse to listen beyond loopback with no way to tell senders apart."""
    if is_loopback(settings.host) or settings.allowed_peers or settings.tls_client_ca:
        return
    raise ConfigError(
        f"refusing to serve MLLP on non-loopback address {settings.host} with neither "
        "mllp.allowed_peers nor mllp.tls_client_ca set"
    )


def server_ssl_context(settings: MllpSettings) -> ssl.SSLContext | None:
    """The TLS context from configuration, or None when TLS is off; raises ``ConfigError``."""
    if not settings.tls_cert:
        return None
    return server_context("mllp", settings.tls_cert, settings.tls_key, settings.tls_client_ca)
