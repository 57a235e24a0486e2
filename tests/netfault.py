"""A TCP proxy in front of a PostgreSQL server that can freeze: a network partition on demand.

``Proxy(upstream)`` listens on 127.0.0.1 (``.port``) and forwards every connection to the
upstream socket (a Unix socket path or a ``(host, port)``). ``freeze()`` stops forwarding in
both directions without closing anything, and makes new connections hang after accept: to
both ends it looks like a link that silently dropped every packet, while their kernels keep
the sockets open (so TCP keepalives alone would not notice for a long time). ``close()``
tears everything down. Real sockets throughout; nothing in pg-mcp is patched.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class Proxy:
    def __init__(self, upstream: str | tuple[str, int]) -> None:
        self.upstream = upstream
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, str):
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(self.upstream)
            return up
        return socket.create_connection(self.upstream)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._keep(client)
            if self._frozen.is_set():
                continue  # accepted, never answered: a cancel request goes nowhere
            try:
                up = self._connect_upstream()
            except OSError:
                client.close()
                continue
            self._keep(up)
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.05)
        while not self._closed.is_set():
            if self._frozen.is_set():
                self._closed.wait(0.05)
                continue
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            while self._frozen.is_set() and not self._closed.is_set():
                self._closed.wait(0.05)  # frozen mid-message: hold what was read
            try:
                dst.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
