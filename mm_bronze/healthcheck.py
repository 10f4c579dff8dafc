"""``python -m mm_bronze.healthcheck [PATH]``: the container health probe of the HTTP door.

It asks the door on this host for ``PATH`` (``/healthz`` by default) the way the door
serves it, read from the same settings (environment and ``MM_BRONZE_CONFIG``): over HTTPS
when ``http.tls_cert`` is set (the certificate names the public host, not 127.0.0.1, so it
is not verified here), over plain HTTP otherwise. Exit status 0 when the door answers 200,
1 otherwise, with one line on stderr saying why. With mutual TLS the probe has no client
certificate: a completed TCP connection is the test.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import sys

from mm_bronze.settings import load_settings

TIMEOUT = 3.0


def probe(path: str = "/healthz") -> str | None:
    """Why the door is not healthy, or None when ``path`` answers 200."""
    door = load_settings().http
    host = "127.0.0.1" if door.host in ("0.0.0.0", "::", "") else door.host
    try:
        if door.tls_client_ca:
            socket.create_connection((host, door.port), timeout=TIMEOUT).close()
            return None
        if door.tls_cert:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, door.port, timeout=TIMEOUT, context=context
            )
        else:
            connection = http.client.HTTPConnection(host, door.port, timeout=TIMEOUT)
        try:
            connection.request("GET", path)
            status = connection.getresponse().status
        finally:
            connection.close()
    except OSError as exc:
        return f"{host}:{door.port}: {exc}"
    return None if status == 200 else f"{path} answered {status}"


def main() -> int:
    why = probe(sys.argv[1] if len(sys.argv) > 1 else "/healthz")
    if why is not None:
        print(f"mm-bronze unhealthy: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
