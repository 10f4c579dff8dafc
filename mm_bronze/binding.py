"""Can each door bind its address? Checked before anything opens, so a port in use is one line."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from mm_bronze.errors import ConfigError


@dataclass(frozen=True)
class Door:
    """A listening door and the names a user changes its address by."""

    name: str
    host: str
    port: int
    port_names: str  # e.g. "--http-port, MM_BRONZE_HTTP_PORT or http.port"
    host_names: str
    reuse_port: bool = False  # listens with SO_REUSEPORT: a listener that does too is no conflict

    def problem(self, exc: OSError) -> str:
        """One line: the door, its address, why, and the setting or flag to change."""
        reason = (exc.strerror or str(exc)).lower()
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        if exc.errno in (errno.EADDRNOTAVAIL, socket.EAI_NONAME):
            fix = f"set another address with {self.host_names}"
        else:
            fix = f"set another port with {self.port_names}"
        return f"{self.name} cannot listen on {address} ({reason}): {fix}"


class BindError(ConfigError):
    """One or more doors cannot listen; the message has one line per door."""


# What a failed bind() says; other OSErrors from a door are not about its address.
BIND_ERRNOS = {errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL, socket.EAI_NONAME}


def bind_error(door: Door, exc: OSError) -> OSError | BindError:
    """The ``BindError`` for ``exc`` when it is a failed bind, else ``exc`` itself."""
    return BindError(door.problem(exc)) if exc.errno in BIND_ERRNOS else exc


def check_doors(doors: list[Door]) -> None:
    """Raise ``BindError`` naming every door whose address cannot be bound now."""
    problems = []
    for door in doors:
        try:
            _try_bind(door.host, door.port, door.reuse_port)
        except OSError as exc:
            problems.append(door.problem(exc))
    if problems:
        raise BindError("\n".join(problems))


def _try_bind(host: str, port: int, reuse_port: bool) -> None:
    # The servers bind with SO_REUSEADDR too, so only a listening socket makes this fail (and,
    # with SO_REUSEPORT, only one that does not share its port).
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(socket.EAI_NONAME, f"unknown address {host}") from exc
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
