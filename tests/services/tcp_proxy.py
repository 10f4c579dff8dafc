"""A TCP proxy in front of a service, to cut it off (an outage) and restore it on demand."""

from __future__ import annotations

import socket
import threading
import time

from tests.services.mm_bronze import free_port


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target_port``; ``cut`` drops every connection and
    refuses new ones until ``restore``. ``upload_rate`` (bytes/s per connection) slows
    uploads down, so that a test can act while a batch is still being written."""

    def __init__(self, target_port: int, *, upload_rate: float | None = None) -> None:
        self.target_port = target_port
        self.upload_rate = upload_rate
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    restore = start

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _close(conn)

    stop = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(upstream)
                    return
                self._conns.update((client, upstream))
            for src, dst, rate in ((client, upstream, self.upload_rate), (upstream, client, None)):
                threading.Thread(target=self._pump, args=(src, dst, rate), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, rate: float | None) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
