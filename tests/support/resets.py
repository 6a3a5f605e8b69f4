"""A loopback TCP proxy in front of one of Azurite's services that breaks one connection on purpose, as a
load balancer or a busy service does: the next request carrying a marker has its connection reset, either
before it is passed on (it never arrived) or after the service answered (it arrived; the answer is lost)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator


class ResettingProxy:
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed: tuple[bytes, bool, int] | None = None  # (marker, arrived, matches to let pass first)
        self.resets = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, marker: bytes, *, arrived: bool, skip: int = 0) -> None:
        """Reset the connection of the (skip+1)th request from now whose bytes carry `marker`."""
        with self._lock:
            self._armed = (marker, arrived, skip)

    def _fires(self, chunk: bytes) -> bool | None:
        """None: pass the chunk on; else the request to break, and whether it is to arrive first."""
        with self._lock:
            if self._armed is None or self._armed[0] not in chunk:
                return None
            marker, arrived, skip = self._armed
            if skip:
                self._armed = (marker, arrived, skip - 1)
                return None
            self._armed = None
            self.resets += 1
            return arrived

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed: the test is over
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            swallow = threading.Event()  # the next answer is not passed on: the client's connection resets
            threading.Thread(target=self._up, args=(client, upstream, swallow), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, swallow), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket, swallow: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                fired = self._fires(chunk)
                if fired is False:  # never arrives
                    break
                if fired:
                    swallow.set()
                upstream.sendall(chunk)
        _reset(client)  # an RST if the client still waits for an answer (else it has closed: harmless)
        with contextlib.suppress(OSError):
            upstream.close()

    def _down(self, upstream: socket.socket, client: socket.socket, swallow: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while chunk := upstream.recv(65536):
                if swallow.is_set():  # it arrived and was answered: the answer is lost
                    break
                client.sendall(chunk)
        # Wake the other direction (blocked reading the client), which resets the connection.
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RD)


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a reset by peer, not an orderly close."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


@contextlib.contextmanager
def resetting(port: int) -> Iterator[ResettingProxy]:
    proxy = ResettingProxy(port)
    try:
        yield proxy
    finally:
        proxy._listener.close()
