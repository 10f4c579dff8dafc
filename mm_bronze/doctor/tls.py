"""TLS files of the HTTP and MLLP doors: readable, the certificate matching its key, and
not expiring soon."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mm_bronze.doctor.check import Check, describe, failed, passed, skipped
from mm_bronze.settings import Settings

CERT_MIN_DAYS = 30  # a certificate expiring sooner than this is a failure


def check_tls(settings: Settings, door: str, *, now: dt.datetime | None = None) -> Check:
    """The ``http`` or ``mllp`` door's ``tls_cert``, ``tls_key`` and ``tls_client_ca``."""
    section = getattr(settings, door)
    name = f"{door} tls"
    if not section.tls_cert:
        return skipped(name, f"not configured ({door}.tls_cert is empty)")
    now = now or dt.datetime.now(dt.UTC)
    cert_path, key_path = Path(section.tls_cert), Path(section.tls_key)
    try:
        chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    except Exception as exc:
        return failed(
            name,
            f"{door}.tls_cert {cert_path}: {describe(exc)}",
            f"point {door}.tls_cert at a readable PEM certificate (chain), the server's first",
        )
    leaf = chain[0]
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except Exception as exc:
        return failed(
            name,
            f"{door}.tls_key {key_path}: {describe(exc)}",
            f"point {door}.tls_key at the certificate's unencrypted PEM private key",
        )
    if _public(key.public_key()) != _public(leaf.public_key()):
        return failed(
            name,
            f"{door}.tls_cert {cert_path} does not match {door}.tls_key {key_path}",
            "configure the key the certificate was issued for (or the certificate for this key)",
        )
    until = leaf.not_valid_after_utc
    left = until - now
    if leaf.not_valid_before_utc > now:
        return failed(
            name,
            f"{cert_path} is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            "check the clock of this machine, or install a certificate valid now",
        )
    if left < dt.timedelta(days=CERT_MIN_DAYS):
        when = "expired" if left.total_seconds() <= 0 else f"expires in {left.days} days"
        return failed(
            name,
            f"{cert_path} {when} ({until:%Y-%m-%d} UTC)",
            f"renew the certificate and replace {cert_path} (then restart mm-bronze)",
        )
    if section.tls_client_ca:
        try:
            x509.load_pem_x509_certificates(Path(section.tls_client_ca).read_bytes())
        except Exception as exc:
            return failed(
                name,
                f"{door}.tls_client_ca {section.tls_client_ca}: {describe(exc)}",
                f"point {door}.tls_client_ca at a readable PEM bundle of client CA certificates",
            )
    subject = leaf.subject.rfc4514_string() or "no subject"
    return passed(name, f"{cert_path} ({subject}) matches its key, valid until {until:%Y-%m-%d}")


def _public(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
