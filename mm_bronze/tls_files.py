"""A door's TLS files loaded into a server context, with errors that name what is wrong."""

from __future__ import annotations

import os
import ssl

from mm_bronze.errors import ConfigError


class _Encrypted(Exception):
    """The key asks for a passphrase."""


def _no_passphrase() -> bytes:
    # OpenSSL asks only for an encrypted key; a server has nobody to type a passphrase (on a
    # terminal, OpenSSL's own prompt would wait for one).
    raise _Encrypted


def load_pair(context: ssl.SSLContext, cert: str, key: str, door: str) -> None:
    """Load ``cert`` and ``key`` (``door``'s ``tls_cert`` and ``tls_key``) into ``context``;
    raises ``ConfigError`` naming the setting and file at fault: a missing file, a key
    encrypted with a passphrase, or files that are not a matching PEM pair."""
    for setting, path in (("tls_cert", cert), ("tls_key", key)):
        if not os.path.isfile(path):
            raise ConfigError(f"invalid setting: {door}.{setting} {path}: no such file")
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _Encrypted:
        raise ConfigError(
            f"invalid setting: {door}.tls_key {key} is encrypted with a passphrase; give"
            f" mm-bronze the key unencrypted (e.g. openssl pkey -in {key} -out PLAIN.pem)"
        ) from None
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"invalid setting: {door} TLS files cannot be loaded ({door}.tls_cert {cert},"
            f" {door}.tls_key {key}): {reason}; they must be a PEM certificate and its"
            " unencrypted PEM private key"
        ) from exc


def server_context(door: str, cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """The server context of ``door`` (TLS 1.2 or later) with its certificate and key and,
    when ``client_ca`` is set, client certificates required and checked against it; raises
    ``ConfigError`` naming the setting and file at fault."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_pair(context, cert, key, door)
    if client_ca:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"invalid setting: {door}.tls_client_ca {client_ca} cannot be loaded: {exc}"
            ) from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context
