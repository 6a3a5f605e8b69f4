"""The HTTP side: a threading server that tracks its connections, and the handler of one connection, which
reads a request, hands it to the sandbox and writes (or withholds) the answer once its latency is due."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from .jsonio import dumpb
from .odata import JSON

log = logging.getLogger(__name__)

IDLE_CONNECTION_SECONDS = 60.0


class Service(Protocol):
    """What the server needs of the sandbox behind it (`service.Sandbox`): the server knows only this,
    so the HTTP side and the service are read and changed apart."""

    verbose: bool
    connections_accepted: int
    stopping: threading.Event

    def handle(self, h: Handler, body: bytes) -> None: ...


class Server(ThreadingHTTPServer):
    """Threading server that remembers open connections so stop() can close idle keep-alives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Service) -> None:
        self.sandbox = sandbox
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self.sockets_lock:
            self.open_sockets.add(conn)
            self.sandbox.connections_accepted += 1
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_open_sockets(self) -> None:
        with self.sockets_lock:
            conns = list(self.open_sockets)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A broken connection is routine here (faults, stop()): no traceback on stderr."""
        if self.sandbox.verbose:
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """Routes one request to the sandbox; never lets an exception kill the connection thread silently."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # header and body go out as two writes: no 40 ms delayed-ACK stall
    server_version = "PaymentsSandbox/1.0"
    timeout = IDLE_CONNECTION_SECONDS
    server: Server
    due = 0.0  # monotonic time before which a payments answer is not sent (the latency)
    arrived = 0.0  # when the request line was read
    started = 0.0  # when it got a processing slot (later than `arrived` when it queued)
    deadline: Any = None  # limits.Deadline: when its processing must stop
    parsed: Any = None  # a standalone request's body is parsed from its bytes (unlike a batch's inner ones)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            sys.stderr.write(f"sandbox {self.address_string()} - {format % args}\n")

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def parse_request(self) -> bool:
        self.arrived = time.monotonic()  # the request line is in: latency counts from here
        return super().parse_request()

    def _dispatch(self) -> None:
        self._started = False
        self.due = 0.0
        sandbox = self.server.sandbox
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send_json(
                400, {"error": {"code": "BadRequest", "message": "Malformed request body framing."}}
            )
            return
        try:
            sandbox.handle(self, body)
        except Exception:  # the sandbox must answer, not die, whatever a client sends
            log.debug("sandbox handler failed", exc_info=True)
            if not self._started:
                self.close_connection = True
                self.send_json(
                    500,
                    {"error": {"code": "Internal_ServerError", "message": "An unexpected error occurred."}},
                )

    def send_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None, content_type: str = JSON
    ) -> None:
        """Answer with a JSON body and a Content-Length (so keep-alive clients stay in step), once due."""
        data = b"" if payload is None else dumpb(payload)  # None: no body (204)
        if not self._await_due():
            self.drop()
            return
        self._started = True
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _await_due(self) -> bool:
        """Hold the answer until the request's latency has passed; False if the sandbox stops first."""
        remaining = self.due - time.monotonic()
        self.due = 0.0
        return remaining <= 0 or not self.server.sandbox.stopping.wait(remaining)

    def drop(self) -> None:
        """Close the connection without writing a single byte of response (not before its latency)."""
        self._await_due()
        self._started = True
        self.close_connection = True
