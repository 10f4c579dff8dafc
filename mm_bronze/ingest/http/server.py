"""Run the HTTP app with hypercorn inside the process's loop; the runtime owns the signals."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
import time

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import ASGIApp

from mm_bronze.ingest.http import protocol
from mm_bronze.settings import HttpSettings
from mm_bronze.tls_files import server_context


class DoorConfig(Config):
    """hypercorn's configuration, with the headers it adds to every response (``Date``,
    ``Server``) made once a second instead of once per response."""

    def __init__(self) -> None:
        super().__init__()
        self._response_headers: dict[str, tuple[int, list[tuple[bytes, bytes]]]] = {}

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        second = int(time.time())
        cached = self._response_headers.get(protocol)
        if cached is None or cached[0] != second:
            cached = (second, super().response_headers(protocol))
            self._response_headers[protocol] = cached
        return list(cached[1])


def hypercorn_config(settings: HttpSettings) -> Config:
    config = DoorConfig()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # rendered by mm_bronze.logging
    config.graceful_timeout = settings.graceful_timeout
    config.keep_alive_timeout = 75.0
    if settings.tls_cert or settings.tls_key or settings.tls_client_ca:
        apply_tls(config, settings)
    return config


def apply_tls(config: Config, settings: HttpSettings) -> None:
    """Serve HTTPS (HTTP/1.1 only) with the configured files; raises ``ConfigError`` when they
    cannot be loaded, before anything listens (hypercorn loads them again for itself). Half a
    pair is refused when the settings load (``settings._check_http_tls``)."""
    server_context("http", settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    config.certfile = settings.tls_cert
    config.keyfile = settings.tls_key
    config.alpn_protocols = ["http/1.1"]  # the door is tested as HTTP/1.1 only
    if settings.tls_client_ca:
        config.ca_certs = settings.tls_client_ca
        config.verify_mode = ssl.CERT_REQUIRED


def shared_listener(settings: HttpSettings) -> str:
    """hypercorn's bind for a socket listening on the door's address with ``SO_REUSEPORT``
    (``http.reuse_port``): every process of the same user that listens so on that address
    shares it, and the kernel spreads new connections among them. hypercorn sets the option
    only for its own worker processes, so the socket is bound here and handed over by its
    descriptor, which hypercorn then owns (and closes). Raises ``OSError`` if it cannot bind."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as hypercorn's own
        sock.bind((settings.host, settings.port))
    except OSError:
        sock.close()
        raise
    return f"fd://{sock.detach()}"


async def serve_http(app: ASGIApp, settings: HttpSettings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then finish in-flight requests and return."""
    protocol.install()
    config = hypercorn_config(settings)
    if settings.reuse_port:
        config.bind = [shared_listener(settings)]
    # What start-up built lives as long as the process: the collector need not scan it again.
    gc.freeze()
    await serve(app, config, shutdown_trigger=stop.wait, mode="asgi")  # type: ignore[arg-type]
