"""Ports for the services a test or benchmark starts."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10000
_handed_out: set[int] = set()
_random = random.Random()


def _ephemeral_low() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _share(low: int, high: int) -> tuple[int, int]:
    """This process's share of ports ``[low, high)``: all of them, or, when pytest-xdist runs
    the tests in several worker processes, a slice apart from every other worker's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2:
        return low, high
    width = (high - low) // count
    start = low + int(worker[2:]) % count * width
    return start, start + width


def free_port() -> int:
    """A loopback port nobody listens on, never handed out before in this run.

    Asking the kernel for port 0 is not enough: it can hand the same port to two
    callers before either binds it, and an outgoing connection can take it too. The
    port is therefore drawn below the kernel's ephemeral range, which neither of
    those ever uses, and remembered; each test worker draws from its own slice.
    """
    low, high = _share(_LOWEST, _ephemeral_low())
    if high - low >= 1000:
        for _ in range(1000):
            port = _random.randrange(low, high)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
