"""A TCP proxy on localhost that can turn into a black hole, for network-fault tests.

`FaultyProxy(host, port)` forwards every connection to the real server. After
`black_hole()` it still accepts connections and reads what clients send, but nothing moves
any more in either direction: the failure of a firewall that drops packets or of a server
that stopped answering, which no error and no connection reset reveals. `forward()` moves
data again (on new connections: bytes dropped meanwhile broke the old ones' protocol).
`close()` closes every socket, which also frees any client still waiting on one.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

__all__ = ["FaultyProxy"]

POLL_S = 0.05


class FaultyProxy:
    """Forwards 127.0.0.1:`port` to (`host`, `target_port`) until told to black-hole."""

    def __init__(self, host: str, target_port: int) -> None:
        self.target = (host, target_port)
        self.dropping = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._thread.start()

    def black_hole(self) -> None:
        """Accept, read and drop: nothing reaches either side any more."""
        self.dropping.set()

    def forward(self) -> None:
        """Move data again."""
        self.dropping.clear()

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self._closed.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def _keep(self, sock: socket.socket) -> None:
        sock.settimeout(POLL_S)
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._keep(client)
            server: socket.socket | None = None
            if not self.dropping.is_set():
                try:
                    server = socket.create_connection(self.target, timeout=5)
                    self._keep(server)
                except OSError:
                    client.close()
                    continue
            for src, dst in ((client, server), (server, client)):
                if src is not None:
                    threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket | None) -> None:
        while not self._closed.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if dst is None or self.dropping.is_set():
                continue  # the black hole: read and forget
            try:
                dst.sendall(data)
            except OSError:
                break
        if dst is not None and not self.dropping.is_set():
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
