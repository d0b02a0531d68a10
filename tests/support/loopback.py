"""Loopback endpoints that misbehave: a closed port and listeners that never answer."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator


def closed_port() -> int:
    """A loopback port that nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port whose TCP handshake completes but which never sends a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


class CountingListener:
    """A loopback listener that accepts every connection and never sends a byte; a context manager.

    ``hang_up`` closes each connection as soon as it is accepted (a server that
    drops it before its banner, as sshd past ``MaxStartups``); otherwise it is
    held until the client closes it. ``accepted`` counts the connections and
    ``most_open`` the most that were open at one time.
    """

    def __init__(self, *, hang_up: bool) -> None:
        self.hang_up = hang_up
        self.accepted = 0
        self.most_open = 0
        self._server = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._server.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> CountingListener:
        self._selector.register(self._server, selectors.EVENT_READ)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready = [key.fileobj for key, _ in self._selector.select(0.05)]
            for conn in ready:  # hang-ups first: a client that closed is no longer open
                if conn is not self._server and not conn.recv(4096):  # type: ignore[union-attr]
                    self._selector.unregister(conn)
                    conn.close()  # type: ignore[union-attr]
            if self._server in ready:
                self._accept()

    def _accept(self) -> None:
        conn, _ = self._server.accept()
        self.accepted += 1
        if self.hang_up:
            conn.close()
            return
        self._selector.register(conn, selectors.EVENT_READ)
        self.most_open = max(self.most_open, len(self._selector.get_map()) - 1)
