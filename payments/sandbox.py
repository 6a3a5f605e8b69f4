"""Offline loopback emulator of the customerPayments endpoint. FOR DEVELOPMENT AND TESTS ONLY.

Never point production traffic at it and never expose it beyond the loopback interface: it keeps
everything in memory, accepts any bearer token and hands out fake managed-identity tokens. It exists
so the relay can be developed, demonstrated, tested and benchmarked without a tenant.

It speaks both path forms of the target (Microsoft Graph beta `/financials/...` and Business Central
API v2.0 `companies(<id>)/...`), validates a POST the way Business Central does as far as we know it
(error codes, Code[n]/Text[n] lengths, upper-cased code fields, customer lookup, duplicate line
numbers), keeps amounts as exact `Decimal` from request bytes to response bytes, can inject faults
(throttling, gateway errors, dropped connections, hung requests) and emulates the App Service
managed identity endpoint (`/msi/token`, api-version 2019-08-01). Its `latency` is the time each
payments request takes to answer, its own processing included, as a real service's would be.

It also answers JSON batching (`POST {base}/$batch`) in both forms: Graph (`/beta/$batch`, at most 20
inner requests, inner urls like `/financials/...`) and Business Central (`.../api/v2.0/$batch`, at most
100, inner urls like `companies(<id>)/...`). A batch is one HTTP request for latency, concurrency and the
`inject()` faults; each inner request is handled like a standalone one and may get an `inject_inner()`
fault of its own. Inner responses come back in reverse order: clients must map them by id.

Run standalone: ``python -m payments.sandbox --port 8400 --latency 0.05``.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .codec import dumps  # exact Decimal digits, shared with the relay

__all__ = [
    "BC_BATCH_LIMIT",
    "FAULTS",
    "GRAPH_BATCH_LIMIT",
    "INNER_FAULTS",
    "SANDBOX_COMPANY_ID",
    "SANDBOX_CUSTOMERS",
    "SANDBOX_JOURNAL_ID",
    "SANDBOX_JOURNAL_NAME",
    "SANDBOX_TOKEN_HEADER",
    "RecordedRequest",
    "Sandbox",
    "main",
]

log = logging.getLogger(__name__)

WARNING_TEXT = "payments sandbox: FOR DEVELOPMENT AND TESTS ONLY - never use it in production"

SANDBOX_COMPANY_ID = "5b1c4a0e-7d3f-4e8a-9c21-3f6d8e0a1b01"
SANDBOX_COMPANY_NAME = "CRONUS Sandbox"
SANDBOX_JOURNAL_ID = "9e2f7c14-1a5b-4d6e-8f30-7c4b2a9d0e02"
SANDBOX_JOURNAL_NAME = "GENERAL"
SANDBOX_CUSTOMERS: dict[str, str] = {
    "10000": "c0000001-0000-4000-8000-000000010000",
    "20000": "c0000002-0000-4000-8000-000000020000",
    "30000": "c0000003-0000-4000-8000-000000030000",
    "40000": "c0000004-0000-4000-8000-000000040000",
}
SANDBOX_TOKEN_HEADER = "sandbox-identity-header-not-a-secret"  # noqa: S105 - a public test fixture
SANDBOX_CLIENT_ID = "7f3e2d1c-0b9a-4876-a5d4-c3b2a1f0e9d8"  # reported when the caller names no client_id

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
FAULTS = ("401", "429", "502", "503", "504", "drop-before", "drop-after", "timeout")
INNER_FAULTS = ("429", "503")  # answered as one inner response of a $batch
GRAPH_BATCH_LIMIT = 20  # Graph JSON batching: at most 20 requests per batch
BC_BATCH_LIMIT = 100  # Business Central $batch: at most 100 operations
TIMEOUT_HOLD_SECONDS = 30.0
IDLE_CONNECTION_SECONDS = 60.0

_JSON = "application/json; charset=utf-8"
_JSON_ODATA = "application/json; odata.metadata=minimal; charset=utf-8"
_BATCH_JSON = "application/json"
_INNER_JSON_ODATA = "application/json; odata.metadata=minimal"
_ENTITY_TYPE = "Microsoft.NAV.customerPayment"
_GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_GRAPH_ROUTE = re.compile(
    r"/financials/companies/(?P<company>[^/]+)/customerPaymentJournals/(?P<journal>[^/]+)"
    r"/customerPayments(?:/(?P<entity>[^/$][^/]*))?/?$",
    re.IGNORECASE,
)
_BC_ROUTE = re.compile(
    r"/companies\((?P<company>[^)/]+)\)/customerPaymentJournals\((?P<journal>[^)/]+)\)"
    r"/customerPayments(?:\((?P<entity>[^)/]+)\))?/?$",
    re.IGNORECASE,
)
_BATCH_PATH = re.compile(r"(?P<prefix>.*)/\$batch/?", re.IGNORECASE)
_GRAPH_BASES = ("/beta", "/v1.0")
_BC_API_ROOT = re.compile(r"(?:/v2\.0(?:/[^/]+){1,2})?/api/v2\.0", re.IGNORECASE)
_IDENTITY_PATH = "/msi/token"
_INT32_MAX = 2**31 - 1

# Properties of the entity as Business Central exposes them, in response order.
_COMMON_PROPS = (
    "journalDisplayName",
    "lineNumber",
    "customerId",
    "customerNumber",
    "postingDate",
    "documentNumber",
    "externalDocumentNumber",
    "amount",
    "appliesToInvoiceId",
    "appliesToInvoiceNumber",
    "description",
    "comment",
)
_GRAPH_PROPS = frozenset((*_COMMON_PROPS, "contactId"))
_BC_PROPS = frozenset((*_COMMON_PROPS, "journalId"))
_READ_ONLY = frozenset(("id", "lastModifiedDateTime"))
_GUID_PROPS = ("customerId", "appliesToInvoiceId", "journalId")
_STRING_PROPS = (
    "journalDisplayName",
    "customerNumber",
    "contactId",
    "documentNumber",
    "externalDocumentNumber",
    "appliesToInvoiceNumber",
    "description",
    "comment",
)
_MAX_LENGTH = {
    "journalDisplayName": 10,
    "customerNumber": 20,
    "contactId": 250,
    "documentNumber": 20,
    "externalDocumentNumber": 35,
    "appliesToInvoiceNumber": 20,
    "description": 100,
    "comment": 250,
}
# Code[n] columns: Business Central stores them upper-cased. External Document No. is Code[35] in BC.
_CODE_PROPS = frozenset(
    (
        "journalDisplayName",
        "customerNumber",
        "documentNumber",
        "externalDocumentNumber",
        "appliesToInvoiceNumber",
    )
)
_EDM_TYPE = {
    "lineNumber": "Edm.Int32",
    "postingDate": "Edm.Date",
    "amount": "Edm.Decimal",
    **{name: "Edm.Guid" for name in _GUID_PROPS},
    **{name: "Edm.String" for name in _STRING_PROPS},
}
_FAULT_STATUS = {
    "401": (401, "Authentication_InvalidCredentials", "The access token has expired."),
    "429": (429, "Application_TooManyRequests", "Too many requests reached. Please try again later."),
    "502": (502, "BadGateway", "The service is temporarily unavailable (bad gateway)."),
    "503": (503, "Application_ServiceUnavailable", "The service is temporarily unavailable."),
    "504": (504, "GatewayTimeout", "The request timed out at the gateway."),
}


@dataclass
class RecordedRequest:
    """One request as received, so tests can assert on exactly what a client sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class _Journal:
    name: str
    payments: list[dict[str, Any]] = field(default_factory=list)
    lines: set[int] = field(default_factory=set)  # line numbers in use: O(1) checks for big files
    max_line: int = 0

    def add(self, stored: dict[str, Any]) -> None:
        self.payments.append(stored)
        self.lines.add(stored["lineNumber"])
        self.max_line = max(self.max_line, stored["lineNumber"])

    def clear(self) -> None:
        self.payments.clear()
        self.lines.clear()
        self.max_line = 0


@dataclass
class _Company:
    name: str
    journals: dict[str, _Journal] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)  # upper-case number -> lower-case id


class _ODataError(Exception):
    """Raised inside request handling; becomes an OData error answer."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


@lru_cache(maxsize=1024)
def _norm_guid(value: str) -> str | None:
    """Lower-case canonical GUID, tolerating OData quotes/braces in URL keys; None if not a GUID."""
    text = value.strip().strip("'\"").strip("{}")
    return text.lower() if _GUID_RE.fullmatch(text) else None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _error_body(code: str, message: str, graph: bool, client_request_id: str | None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if graph:
        error["innerError"] = {
            "request-id": str(uuid.uuid4()),
            "client-request-id": client_request_id,
            "date": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        }
    return {"error": error}


class _Server(ThreadingHTTPServer):
    """Threading server that remembers open connections so stop() can close idle keep-alives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

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


class _Handler(BaseHTTPRequestHandler):
    """Routes one request to the sandbox; never lets an exception kill the connection thread silently."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # header and body go out as two writes: no 40 ms delayed-ACK stall
    server_version = "PaymentsSandbox/1.0"
    timeout = IDLE_CONNECTION_SECONDS
    server: _Server
    _due = 0.0  # monotonic time before which a payments answer is not sent (the latency)
    _arrived = 0.0  # when the request line was read

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
        self._arrived = time.monotonic()  # the request line is in: latency counts from here
        return super().parse_request()

    def _dispatch(self) -> None:
        self._started = False
        self._due = 0.0
        sandbox = self.server.sandbox
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(400, {"error": {"code": "BadRequest", "message": "Malformed request body framing."}})
            return
        try:
            sandbox._handle(self, body)
        except Exception:  # the sandbox must answer, not die, whatever a client sends
            log.debug("sandbox handler failed", exc_info=True)
            if not self._started:
                self.close_connection = True
                self._send(
                    500,
                    {"error": {"code": "Internal_ServerError", "message": "An unexpected error occurred."}},
                )

    def _send(
        self, status: int, payload: Any, headers: dict[str, str] | None = None, content_type: str = _JSON
    ) -> None:
        """Answer with a JSON body and a Content-Length, so keep-alive clients stay in step."""
        data = dumps(payload).encode("utf-8")
        if not self._await_due():
            self._drop()
            return
        self._started = True
        self.send_response(status)
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
        remaining = self._due - time.monotonic()
        self._due = 0.0
        return remaining <= 0 or not self.server.sandbox._stopping.wait(remaining)

    def _drop(self) -> None:
        """Close the connection without writing a single byte of response (not before its latency)."""
        self._await_due()
        self._started = True
        self.close_connection = True


@dataclass(frozen=True)
class _Route:
    graph: bool
    company: str
    journal: str
    entity: str | None
    collection_path: str


@dataclass(frozen=True)
class _Batch:
    """A `$batch` endpoint: its API form, the base its relative inner urls hang off, its size limit."""

    graph: bool
    prefix: str
    limit: int


@dataclass
class _BatchItem:
    """One inner request of a batch, as the client sent it (headers still without the outer token)."""

    id: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    parsed: Any = None  # the body as the outer JSON parse left it (None: no body)


class _Headers(dict[str, str]):
    """Case-insensitive header lookup for inner requests (an email Message costs far more per item)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())


@dataclass
class _InnerCall:
    """What request handling reads of a request (`command`, `headers`), for an inner request of a batch.
    `parsed` is its body, already parsed with the outer request: parsing it again would change nothing."""

    command: str
    headers: _Headers
    parsed: Any = None


class Sandbox:
    """In-memory customerPayments service on 127.0.0.1, for development, tests and benchmarks only."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0, verbose: bool = False
    ) -> None:
        if host == "localhost":
            host = "127.0.0.1"
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"the sandbox binds an IPv4 loopback address only, not {host!r}") from None
        if not address.is_loopback:
            raise ValueError(f"the sandbox binds loopback only (development and tests), not {host!r}")
        self.host, self.port = host, port
        self.latency = latency
        self.verbose = verbose
        self.concurrency_limit: int | None = None
        self.throttled_count = 0
        self.requests: list[RecordedRequest] = []  # real HTTP requests only: a batch appears once
        self.inner_requests: list[RecordedRequest] = []  # the inner requests of batches, in order
        self.connections_accepted = 0  # TCP connections taken, ever (keep-alive shows as few)
        self.batch_count = 0  # $batch requests whose inner requests were processed
        self.token_requests: list[RecordedRequest] = []
        self.issued_tokens: set[str] = set()
        self._lock = threading.RLock()
        self._faults: deque[tuple[str, str | None]] = deque()
        self._inner_faults: deque[tuple[str, str | None]] = deque()
        self._in_flight = 0
        self._token_counter = 0
        self._companies: dict[str, _Company] = {}
        self._stopping = threading.Event()
        self._release = threading.Event()  # set (and replaced) by reset() and stop() to free held requests
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._seed()

    # ----- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Bind and serve in a daemon thread; port 0 lets the OS pick a free port."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="payments-sandbox",
            daemon=True,
        )
        self._thread.start()
        log.info("%s; listening on %s", WARNING_TEXT, self.url)
        return self

    def stop(self) -> None:
        """Stop serving, release requests held by faults or latency and close idle keep-alive connections."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        with self._lock:
            self._release.set()
            self._release = threading.Event()
        server.shutdown()
        server.close_open_sockets()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None and self.port == 0:
            raise RuntimeError("sandbox not started: the port is chosen at start()")
        return f"http://{self.host}:{self.port}"

    @property
    def graph_base_url(self) -> str:
        return self.url + "/beta"

    @property
    def bc_base_url(self) -> str:
        return self.url + "/v2.0/sandbox-tenant/sandbox/api/v2.0"

    @property
    def identity_endpoint(self) -> str:
        return self.url + _IDENTITY_PATH

    @property
    def in_flight(self) -> int:
        """Payments requests being handled right now (what concurrency_limit compares against).

        A `$batch` counts as one, however many inner requests it carries.
        """
        with self._lock:
            return self._in_flight

    # ----- seed and inspection ---------------------------------------------------------------------------
    def _seed(self) -> None:
        self._companies[SANDBOX_COMPANY_ID] = _Company(
            SANDBOX_COMPANY_NAME,
            journals={SANDBOX_JOURNAL_ID: _Journal(SANDBOX_JOURNAL_NAME)},
            customers=dict(SANDBOX_CUSTOMERS),
        )

    def add_company(self, company_id: str | None = None, *, name: str = "Sandbox Company") -> str:
        """Add a company (seeded with the SANDBOX_CUSTOMERS, no journals); returns its id."""
        cid = self._guid_arg(company_id)
        with self._lock:
            self._companies[cid] = _Company(name, customers=dict(SANDBOX_CUSTOMERS))
        return cid

    def add_journal(
        self, journal_id: str | None = None, *, name: str = "CASH", company_id: str = SANDBOX_COMPANY_ID
    ) -> str:
        """Add a customer payment journal (batch name Code[10]) to a company; returns its id."""
        if not name or len(name) > _MAX_LENGTH["journalDisplayName"]:
            raise ValueError("journal name must be 1 to 10 characters")
        jid = self._guid_arg(journal_id)
        with self._lock:
            self._company(company_id).journals[jid] = _Journal(name.upper())
        return jid

    def add_customer(
        self, number: str, id: str | None = None, *, company_id: str = SANDBOX_COMPANY_ID
    ) -> str:
        """Add a customer (number Code[20]) to a company; returns its id."""
        if not number or len(number) > _MAX_LENGTH["customerNumber"]:
            raise ValueError("customer number must be 1 to 20 characters")
        cust_id = self._guid_arg(id)
        with self._lock:
            self._company(company_id).customers[number.upper()] = cust_id
        return cust_id

    def payments(
        self, company_id: str = SANDBOX_COMPANY_ID, journal_id: str = SANDBOX_JOURNAL_ID
    ) -> list[dict]:
        """Copies of the stored payments in creation order (all properties; amount is a Decimal)."""
        with self._lock:
            journal = self._company(company_id).journals.get(_norm_guid(journal_id) or "")
            if journal is None:
                raise KeyError(f"no journal {journal_id} in company {company_id}")
            return [dict(p) for p in journal.payments]

    def inject(self, fault: str, *, times: int = 1, retry_after: str | None = None) -> None:
        """Queue `times` faults, consumed FIFO one per payments request (GET or POST).

        A `$batch` is one request: it consumes one fault, which applies to the whole batch
        ("drop-after" and "timeout" process every inner request first).
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.extend([(fault, retry_after)] * times)

    def pending_faults(self) -> list[str]:
        """Faults still queued, in the order they will be served."""
        with self._lock:
            return [f for f, _ in self._faults]

    def inject_inner(self, fault: str, *, times: int = 1, retry_after: str | None = None) -> None:
        """Queue `times` faults for inner requests of batches, consumed FIFO one per inner request.

        "429" and "503" become that inner response (OData error body, nothing created); a 429 carries
        an inner `Retry-After` header ("1" unless `retry_after` is given), a 503 only when it is given.
        """
        if fault not in INNER_FAULTS:
            raise ValueError(f"unknown inner fault {fault!r}; expected one of {', '.join(INNER_FAULTS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._inner_faults.extend([(fault, retry_after)] * times)

    def pending_inner_faults(self) -> list[str]:
        """Inner faults still queued, in the order they will be served."""
        with self._lock:
            return [f for f, _ in self._inner_faults]

    def reset(self) -> None:
        """Forget payments, requests, tokens, faults, counters; free held requests; keep the seed."""
        with self._lock:
            for company in self._companies.values():
                for journal in company.journals.values():
                    journal.clear()
            self.requests.clear()
            self.inner_requests.clear()
            self.token_requests.clear()
            self.issued_tokens.clear()
            self._faults.clear()
            self._inner_faults.clear()
            self.throttled_count = 0
            self.batch_count = 0
            self._release.set()
            self._release = threading.Event()

    @staticmethod
    def _guid_arg(value: str | None) -> str:
        if value is None:
            return str(uuid.uuid4())
        norm = _norm_guid(value)
        if norm is None:
            raise ValueError(f"{value!r} is not a GUID")
        return norm

    def _company(self, company_id: str) -> _Company:
        company = self._companies.get(_norm_guid(company_id) or "")
        if company is None:
            raise KeyError(f"no company {company_id}")
        return company

    # ----- request handling ------------------------------------------------------------------------------
    def _handle(self, h: _Handler, body: bytes) -> None:
        recorded = RecordedRequest(h.command, h.path, {k: v for k, v in h.headers.items()}, body)
        split = urlsplit(h.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        if path.rstrip("/") == _IDENTITY_PATH:
            with self._lock:
                self.token_requests.append(recorded)
            self._identity(h, query)
            return
        batch = self._batch_endpoint(path)
        if batch is not None:
            if h.command != "POST":
                with self._lock:
                    self.requests.append(recorded)
                err = _ODataError(
                    405,
                    "BadRequest_MethodNotAllowed",
                    f"'{h.command}' is not allowed on this resource.",
                    {"Allow": "POST"},
                )
                self._error(h, batch.graph, err)
                return
            self._admit(h, recorded, batch.graph, lambda fault: self._serve_batch(h, batch, body, fault))
            return
        route = self._route(path)
        allowed = ("GET",) if route is not None and route.entity is not None else ("GET", "POST")
        if route is None or h.command not in allowed:
            with self._lock:
                self.requests.append(recorded)
            graph = route.graph if route else path.startswith(("/beta/", "/v1.0/")) or "/financials/" in path
            if route is None:
                self._error(
                    h, graph, _ODataError(404, "BadRequest_NotFound", f"No resource found at '{path}'.")
                )
            else:
                err = _ODataError(
                    405,
                    "BadRequest_MethodNotAllowed",
                    f"'{h.command}' is not allowed on this resource.",
                    {"Allow": ", ".join(allowed)},
                )
                self._error(h, graph, err)
            return

        self._admit(
            h, recorded, route.graph, lambda fault: self._serve_payments(h, route, query, body, fault)
        )

    def _admit(
        self,
        h: _Handler,
        recorded: RecordedRequest,
        graph: bool,
        serve: Callable[[tuple[str, str | None] | None], None],
    ) -> None:
        """Record one payments request (or batch), then throttle, delay and hand it its fault, if any."""
        with self._lock:
            self.requests.append(recorded)
            limit = self.concurrency_limit
            if limit is not None and self._in_flight >= limit:
                self.throttled_count += 1
                throttled = True
            else:
                throttled = False
                self._in_flight += 1
        if throttled:
            msg = "Too many concurrent requests. Please try again later."
            self._error(h, graph, _ODataError(429, "Application_TooManyRequests", msg, {"Retry-After": "1"}))
            return
        # The latency is the time the request takes, the sandbox's own work included (as with a real
        # service): the answer is held until then, so `cap / latency` requests per second is reachable.
        h._due = (h._arrived or time.monotonic()) + self.latency
        try:
            with self._lock:
                fault = self._faults.popleft() if self._faults else None
            serve(fault)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _serve_payments(
        self,
        h: _Handler,
        route: _Route,
        query: dict[str, list[str]],
        body: bytes,
        fault: tuple[str, str | None] | None,
    ) -> None:
        name = fault[0] if fault else None
        if fault and name in _FAULT_STATUS:
            self._error(h, route.graph, self._status_fault(fault))
            return
        if name == "drop-before":
            h._drop()
            return
        try:
            status, payload, headers = self._process(h, route, query, body)
        except _ODataError as err:
            if name in ("drop-after", "timeout"):
                self._hold_or_drop(h, name)
            else:
                self._error(h, route.graph, err)
            return
        if name in ("drop-after", "timeout"):
            self._hold_or_drop(h, name)
            return
        h._send(status, payload, {**self._graph_headers(h, route.graph), **headers}, _JSON_ODATA)

    @staticmethod
    def _status_fault(fault: tuple[str, str | None]) -> _ODataError:
        """The error answer of an injected status fault (429 gets `Retry-After: 1` unless told otherwise)."""
        name, retry_after = fault
        status, code, message = _FAULT_STATUS[name]
        if retry_after is None and name == "429":
            retry_after = "1"
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return _ODataError(status, code, message, headers)

    def _hold_or_drop(self, h: _Handler, fault: str) -> None:
        """Never answer: hold a "timeout" until reset(), stop() or TIMEOUT_HOLD_SECONDS, then close."""
        if fault == "timeout":
            with self._lock:
                release = self._release
            release.wait(TIMEOUT_HOLD_SECONDS)
        h._drop()

    # ----- $batch ----------------------------------------------------------------------------------------
    @staticmethod
    def _batch_endpoint(path: str) -> _Batch | None:
        """`/beta/$batch` (Graph) or `.../api/v2.0/$batch` (Business Central); None for anything else."""
        m = _BATCH_PATH.fullmatch(path)
        if m is None:
            return None
        prefix = m.group("prefix")
        if prefix.lower() in _GRAPH_BASES:
            return _Batch(True, prefix, GRAPH_BATCH_LIMIT)
        if _BC_API_ROOT.fullmatch(prefix):
            return _Batch(False, prefix, BC_BATCH_LIMIT)
        return None

    def _serve_batch(
        self, h: _Handler, batch: _Batch, body: bytes, fault: tuple[str, str | None] | None
    ) -> None:
        """One outer request: the outer fault applies to the whole batch, as in `_serve_payments`."""
        name = fault[0] if fault else None
        if fault and name in _FAULT_STATUS:
            self._error(h, batch.graph, self._status_fault(fault))
            return
        if name == "drop-before":
            h._drop()
            return
        try:
            responses = self._run_batch(h, batch, body)
        except _ODataError as err:
            if name in ("drop-after", "timeout"):
                self._hold_or_drop(h, name)
            else:
                self._error(h, batch.graph, err)
            return
        if name in ("drop-after", "timeout"):
            self._hold_or_drop(h, name)
            return
        h._send(200, {"responses": responses}, self._graph_headers(h, batch.graph), _BATCH_JSON)

    def _run_batch(self, h: _Handler, batch: _Batch, body: bytes) -> list[dict[str, Any]]:
        self._check_auth(h)
        items = self._batch_items(batch, self._parse_json(h, body))
        outer_auth = h.headers.get("Authorization") or ""
        responses = [self._run_inner(h, batch, item, outer_auth) for item in items]
        with self._lock:
            self.batch_count += 1
        responses.reverse()  # Graph answers in any order: make clients map by id
        return responses

    @staticmethod
    def _batch_items(batch: _Batch, data: Any) -> list[_BatchItem]:
        """The inner requests of a batch body; a 400 for the whole batch if it is malformed or too big."""

        def bad(message: str) -> _ODataError:
            return _ODataError(400, "BadRequest_InvalidRequestBody", message)

        if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
            raise bad("The batch request body must be a JSON object with a 'requests' array.")
        requests = data["requests"]
        if not requests:
            raise bad("The batch request must contain at least one request.")
        if len(requests) > batch.limit:
            raise bad(
                f"The batch request contains {len(requests)} requests, more than the limit of "
                f"{batch.limit} requests per batch."
            )
        items: list[_BatchItem] = []
        seen: set[str] = set()
        for index, raw in enumerate(requests):
            if not isinstance(raw, dict):
                raise bad(f"Request {index} of the batch is not a JSON object.")
            rid = raw.get("id")
            if not isinstance(rid, str) or not rid:
                raise bad(f"Request {index} of the batch has no 'id' (a non-empty string).")
            if rid in seen:
                raise bad(f"The batch request contains the id '{rid}' more than once.")
            seen.add(rid)
            method, url, headers = raw.get("method"), raw.get("url"), raw.get("headers", {})
            if not isinstance(method, str) or not method:
                raise bad(f"Request '{rid}' of the batch has no 'method'.")
            if not isinstance(url, str) or not url:
                raise bad(f"Request '{rid}' of the batch has no 'url'.")
            if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
            ):
                raise bad(f"The 'headers' of request '{rid}' must be an object of strings.")
            inner_body = dumps(raw["body"]).encode("utf-8") if "body" in raw else b""
            items.append(_BatchItem(rid, method.upper(), url, dict(headers), inner_body, raw.get("body")))
        return items

    def _run_inner(self, h: _Handler, batch: _Batch, item: _BatchItem, outer_auth: str) -> dict[str, Any]:
        """One inner request, handled like a standalone request to its route, with the outer token."""
        with self._lock:
            self.inner_requests.append(RecordedRequest(item.method, item.url, dict(item.headers), item.body))
            fault = self._inner_faults.popleft() if self._inner_faults else None
        headers = _Headers((name.lower(), value) for name, value in item.headers.items())
        headers["authorization"] = outer_auth
        call = _InnerCall(item.method, headers, item.parsed)
        try:
            if fault is not None:
                raise self._status_fault(fault)
            path, query = self._inner_target(batch, item.url)
            route = self._route(path)
            if route is None or route.graph != batch.graph:
                raise _ODataError(404, "BadRequest_NotFound", f"No resource found at '{path}'.")
            allowed = ("GET",) if route.entity is not None else ("GET", "POST")
            if item.method not in allowed:
                raise _ODataError(
                    405,
                    "BadRequest_MethodNotAllowed",
                    f"'{item.method}' is not allowed on this resource.",
                    {"Allow": ", ".join(allowed)},
                )
            status, payload, extra = self._process(call, route, query, item.body)
        except _ODataError as err:
            client_request_id = headers.get("client-request-id") or h.headers.get("client-request-id")
            return {
                "id": item.id,
                "status": err.status,
                "headers": {"Content-Type": _BATCH_JSON, **err.headers},
                "body": _error_body(err.code, err.message, batch.graph, client_request_id),
            }
        except Exception:  # like a standalone request: a 500 for this item, the batch still answers
            log.debug("sandbox inner request failed", exc_info=True)
            return {
                "id": item.id,
                "status": 500,
                "headers": {"Content-Type": _BATCH_JSON},
                "body": {
                    "error": {"code": "Internal_ServerError", "message": "An unexpected error occurred."}
                },
            }
        return {
            "id": item.id,
            "status": status,
            "headers": {"Content-Type": _INNER_JSON_ODATA, **extra},
            "body": payload,
        }

    @staticmethod
    @lru_cache(maxsize=256)
    def _inner_target(batch: _Batch, url: str) -> tuple[str, dict[str, list[str]]]:
        """Path and query of an inner url: relative to the batch's base (leading slash or not) or absolute.
        Cached: a batch repeats one url; callers only read the query."""
        split = urlsplit(url)
        if split.scheme or split.netloc:
            path = split.path
        else:
            path = f"{batch.prefix}/{split.path.lstrip('/')}"
        return unquote(path), parse_qs(split.query, keep_blank_values=True)

    @staticmethod
    def _check_auth(h: _Handler | _InnerCall) -> None:
        """Any bearer token will do (the sandbox is not a security boundary); none at all is a 401."""
        auth = h.headers.get("Authorization") or ""
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _ODataError(
                401,
                "Authentication_InvalidCredentials",
                "The credentials provided are incorrect",
                {"WWW-Authenticate": "Bearer"},
            )

    def _process(
        self, h: _Handler | _InnerCall, route: _Route, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        self._check_auth(h)
        with self._lock:
            company = self._companies.get(_norm_guid(route.company) or "")
            if company is None:
                raise _ODataError(
                    404, "Internal_CompanyNotFound", f"Cannot find the company with id '{route.company}'."
                )
            journal = company.journals.get(_norm_guid(route.journal) or "")
            if journal is None:
                raise _ODataError(
                    404,
                    "BadRequest_NotFound",
                    f"The customerPaymentJournal with id '{route.journal}' does not exist.",
                )
            if h.command == "GET":
                return self._get(route, journal, query)
        record = self._validate(h, route, body)
        with self._lock:  # re-resolve: the lock was released while parsing the body
            company = self._companies[_norm_guid(route.company) or ""]
            journal = company.journals[_norm_guid(route.journal) or ""]
            stored = self._create(route, company, journal, record)
        location = f"{self.url}{route.collection_path}" + (
            f"/{stored['id']}" if route.graph else f"({stored['id']})"
        )
        return 201, self._render(stored, route.graph), {"Location": location}

    @staticmethod
    def _parse_json(h: _Handler | _InnerCall, body: bytes) -> Any:
        """A JSON request body with exact Decimal numbers; 415 unless it says application/json."""
        ctype = (h.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise _ODataError(
                415,
                "BadRequest_InvalidContentType",
                f"The content type '{h.headers.get('Content-Type') or ''}' is not supported; "
                "use 'application/json'.",
            )
        if isinstance(h, _InnerCall) and h.parsed is not None:
            return h.parsed
        try:
            return json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _ODataError(
                400, "BadRequest_InvalidRequestBody", f"The request body is not valid JSON: {exc}"
            ) from None

    def _validate(self, h: _Handler | _InnerCall, route: _Route, body: bytes) -> dict[str, Any]:
        data = self._parse_json(h, body)
        if not isinstance(data, dict):
            raise _ODataError(400, "BadRequest_InvalidRequestBody", "The request body must be a JSON object.")
        allowed = _GRAPH_PROPS if route.graph else _BC_PROPS
        record: dict[str, Any] = {}
        for key, value in data.items():
            if key in _READ_ONLY or key.startswith("@odata."):
                continue
            if key not in allowed:
                raise _ODataError(
                    400,
                    "BadRequest_InvalidRequestBody",
                    f"The property '{key}' does not exist on type '{_ENTITY_TYPE}'. Make sure to only use "
                    "property names that are defined by the type.",
                )
            if value is None:
                raise _ODataError(
                    400,
                    "BadRequest_InvalidRequestBody",
                    f"A null value was found for the property named '{key}', which has the expected type "
                    f"'{_EDM_TYPE[key]}[Nullable=False]'. The expected type does not allow null values.",
                )
            record[key] = value
        self._check_types(record)
        for key, limit in _MAX_LENGTH.items():
            value = record.get(key)
            if isinstance(value, str) and len(value) > limit:
                raise _ODataError(
                    400,
                    "Application_StringExceededLength",
                    f"The length of the string is {len(value)}, but it must be less than or equal to {limit} "
                    f"characters. Value: {value}",
                )
        return record

    @staticmethod
    def _check_types(record: dict[str, Any]) -> None:
        def bad(key: str, value: Any) -> _ODataError:
            return _ODataError(
                400,
                "BadRequest_InvalidRequestBody",
                f"Cannot convert the literal '{value}' to the expected type '{_EDM_TYPE[key]}'.",
            )

        for key in _GUID_PROPS:
            if key in record:
                value = record[key]
                norm = _norm_guid(value) if isinstance(value, str) else None
                if norm is None or not _GUID_RE.fullmatch(value):
                    raise _ODataError(
                        400, "Application_InvalidGUID", f"Invalid GUID string format: '{value}'."
                    )
                record[key] = norm
        for key in _STRING_PROPS:
            if key in record and not isinstance(record[key], str):
                raise bad(key, record[key])
        if "lineNumber" in record:
            value = record["lineNumber"]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT32_MAX:
                raise bad("lineNumber", value)
        if "postingDate" in record:
            value = record["postingDate"]
            if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
                raise bad("postingDate", value)
            try:
                date.fromisoformat(value)
            except ValueError:
                raise bad("postingDate", value) from None
        if "amount" in record:
            value = record["amount"]
            if isinstance(value, bool):
                raise bad("amount", value)
            if isinstance(value, int):
                record["amount"] = Decimal(value)
            elif isinstance(value, str) and _NUMBER_RE.fullmatch(value):
                try:
                    record["amount"] = Decimal(value)
                except InvalidOperation:
                    raise bad("amount", value) from None
            elif not isinstance(value, Decimal):
                raise bad("amount", value)

    def _create(self, route: _Route, company: _Company, journal: _Journal, record: dict[str, Any]) -> dict:
        """Resolve the customer, check the line number and store; called with the lock held."""
        number = (record.get("customerNumber") or "").upper()
        cust_id = record.get("customerId") or ""
        if cust_id == EMPTY_GUID:
            cust_id = ""
        if not number and not cust_id:
            raise _ODataError(
                400, "Application_DialogException", "A customerNumber or a customerID must be provided."
            )
        if number and number not in company.customers:
            raise _ODataError(
                400,
                "Internal_RecordNotFound",
                f"The Customer does not exist. Identification fields and values: No.='{number}'",
            )
        by_id = {v: k for k, v in company.customers.items()}
        if cust_id and cust_id not in by_id:
            raise _ODataError(
                400,
                "Internal_RecordNotFound",
                "The Customer does not exist. Identification fields and values: "
                f"SystemId='{{{cust_id.upper()}}}'",
            )
        if number and cust_id and company.customers[number] != cust_id:
            raise _ODataError(
                400,
                "Application_DialogException",
                f"The customerNumber '{number}' and the customerId '{cust_id}' "
                "do not identify the same customer.",
            )
        if not number:
            number = by_id[cust_id]
        cust_id = company.customers[number]

        used = journal.lines
        line = record.get("lineNumber") or 0
        if line and line in used:
            raise _ODataError(
                409,
                "Internal_EntityWithSameKeyExists",
                "The record in table Gen. Journal Line already exists. Identification fields and values: "
                f"Journal Template Name='CASHRCPT',Journal Batch Name='{journal.name}',Line No.='{line}'",
            )
        if not line:
            line = (journal.max_line // 10000 + 1) * 10000

        def code(key: str, default: str = "") -> str:
            assert key in _CODE_PROPS
            return str(record.get(key, default)).upper()

        stored: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "journalId": _norm_guid(route.journal),
            "journalDisplayName": code("journalDisplayName", journal.name),
            "lineNumber": line,
            "customerId": cust_id,
            "customerNumber": number,
            "contactId": record.get("contactId", ""),
            "postingDate": record.get("postingDate") or datetime.now(UTC).date().isoformat(),
            "documentNumber": code("documentNumber"),
            "externalDocumentNumber": code("externalDocumentNumber"),
            "amount": record.get("amount", Decimal(0)),
            "appliesToInvoiceId": record.get("appliesToInvoiceId", EMPTY_GUID),
            "appliesToInvoiceNumber": code("appliesToInvoiceNumber"),
            "description": record.get("description", ""),
            "comment": record.get("comment", ""),
            "lastModifiedDateTime": _now_iso(),
        }
        journal.add(stored)
        return dict(stored)

    @staticmethod
    def _render(stored: dict[str, Any], graph: bool) -> dict[str, Any]:
        """The entity as the given API form shows it: contactId on Graph only, journalId on BC only."""
        drop = "journalId" if graph else "contactId"
        return {k: v for k, v in stored.items() if k != drop}

    def _get(self, route: _Route, journal: _Journal, query: dict[str, list[str]]) -> tuple[int, Any, dict]:
        """Collection or entity read; called with the lock held."""
        if route.entity is not None:
            wanted = _norm_guid(route.entity)
            for p in journal.payments:
                if p["id"] == wanted:
                    return 200, self._render(p, route.graph), {}
            raise _ODataError(
                404, "Internal_RecordNotFound", f"The customerPayment '{route.entity}' does not exist."
            )
        clauses = _parse_filter(query.get("$filter", [""])[0])
        rows = [p for p in journal.payments if all(match(p) for match in clauses)]
        top = query.get("$top", [""])[0]
        if top:
            if not top.isdigit():
                raise _ODataError(400, "BadRequest_InvalidToken", f"Invalid value '{top}' for $top.")
            rows = rows[: int(top)]
        return 200, {"value": [self._render(p, route.graph) for p in rows]}, {}

    def _error(self, h: _Handler, graph: bool, err: _ODataError) -> None:
        client_request_id = h.headers.get("client-request-id")
        body = _error_body(err.code, err.message, graph, client_request_id)
        h._send(err.status, body, {**self._graph_headers(h, graph), **err.headers})

    @staticmethod
    def _graph_headers(h: _Handler, graph: bool) -> dict[str, str]:
        if not graph:
            return {}
        headers = {"request-id": str(uuid.uuid4())}
        if h.headers.get("client-request-id"):
            headers["client-request-id"] = h.headers["client-request-id"]
        return headers

    @staticmethod
    @lru_cache(maxsize=1024)
    def _route(path: str) -> _Route | None:
        for regex, graph in ((_GRAPH_ROUTE, True), (_BC_ROUTE, False)):
            m = regex.search(path)
            if m:
                collection = path[: m.start()] + path[m.start() : m.end()].rstrip("/")
                if m.group("entity") is not None:
                    cut = collection.rfind("/") if graph else collection.rfind("(")
                    collection = collection[:cut]
                return _Route(graph, m.group("company"), m.group("journal"), m.group("entity"), collection)
        return None

    def _identity(self, h: _Handler, query: dict[str, list[str]]) -> None:
        """App Service managed identity protocol (api-version 2019-08-01)."""

        def fail(status: int, error: str, description: str) -> None:
            h._send(status, {"error": error, "error_description": description})

        if h.command != "GET":
            fail(405, "invalid_request", "Only GET is supported.")
            return
        if h.headers.get("X-IDENTITY-HEADER") != SANDBOX_TOKEN_HEADER:
            fail(401, "unauthorized_client", "The X-IDENTITY-HEADER header is missing or wrong.")
            return
        if query.get("api-version", [""])[0] != "2019-08-01":
            fail(400, "invalid_request", "api-version must be 2019-08-01.")
            return
        resource = query.get("resource", [""])[0]
        if not resource:
            fail(400, "invalid_request", "The 'resource' query parameter is required.")
            return
        with self._lock:
            self._token_counter += 1
            token = f"sandbox-token-{self._token_counter}"
            self.issued_tokens.add(token)
        client_id = query.get("client_id", [""])[0] or SANDBOX_CLIENT_ID
        h._send(
            200,
            {
                "access_token": token,
                "expires_on": str(int(time.time()) + 3600),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            },
        )


# ----- $filter ---------------------------------------------------------------------------------------------
_CLAUSE_RE = re.compile(
    r"\s*(?P<field>[A-Za-z]+)\s+(?P<op>[A-Za-z]+)\s+(?P<value>'(?:[^']|'')*'|[^\s'()]+)\s*"
)
_AND_RE = re.compile(r"and\s+", re.IGNORECASE)
_FILTER_STRINGS = ("documentNumber", "externalDocumentNumber", "customerNumber")


def _unsupported(message: str) -> _ODataError:
    return _ODataError(400, "BadRequest_MethodNotImplemented", message)


def _parse_filter(text: str) -> list[Any]:
    """The small `$filter` subset the relay needs: `<field> eq <literal>` clauses joined by `and`."""
    clauses: list[Any] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _CLAUSE_RE.match(text, pos)
        if not m:
            raise _unsupported(f"The $filter expression '{text}' is not supported by the sandbox.")
        name, op, literal = m.group("field"), m.group("op"), m.group("value")
        if op != "eq":
            raise _unsupported(f"The operator '{op}' is not supported in $filter by the sandbox.")
        clauses.append(_clause(name, literal))
        pos = m.end()
        if pos < len(text):
            a = _AND_RE.match(text, pos)
            if not a:
                raise _unsupported(f"The $filter expression '{text}' is not supported by the sandbox.")
            pos = a.end()
    return clauses


def _clause(name: str, literal: str) -> Any:
    if name in _FILTER_STRINGS:
        if not (len(literal) >= 2 and literal[0] == literal[-1] == "'"):
            raise _ODataError(
                400, "BadRequest_InvalidToken", f"{name} must be compared with a quoted string."
            )
        want = literal[1:-1].replace("''", "'").upper()
        return lambda p: str(p[name]).upper() == want
    if name == "customerId":
        guid = _norm_guid(literal)
        if guid is None:
            raise _ODataError(400, "Application_InvalidGUID", f"Invalid GUID string format: '{literal}'.")
        return lambda p: p["customerId"] == guid
    if name in ("amount", "lineNumber"):
        number = literal[:-1] if literal[-1:] in ("m", "M") else literal
        if not _NUMBER_RE.fullmatch(number):
            raise _ODataError(400, "BadRequest_InvalidToken", f"'{literal}' is not a number.")
        value = Decimal(number)
        return lambda p: Decimal(p[name]) == value
    raise _unsupported(f"Filtering on '{name}' is not supported by the sandbox.")


# ----- standalone ------------------------------------------------------------------------------------------
def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground until Ctrl-C (development and tests only)."""
    parser = argparse.ArgumentParser(
        prog="python -m payments.sandbox",
        description="Loopback emulator of the customerPayments API. For development and tests only.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: chosen by the OS)")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds each payments request takes to answer, the sandbox's own work included",
    )
    parser.add_argument(
        "--concurrency-limit", type=int, default=None, help="answer 429 above this many in flight"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    # A real service has no interpreter lock: let a thread whose request just arrived run within
    # 0.5 ms rather than the default 5 ms, so that benchmarks measure the client, not this process.
    sys.setswitchinterval(0.0005)
    # Payments and recorded requests live as long as the sandbox: once a full collection has found
    # them alive, keep them out of the next ones, which would otherwise pause every request thread
    # for longer and longer as they pile up.
    gc.freeze()
    gc.callbacks.append(lambda phase, info: phase == "stop" and info["generation"] == 2 and gc.freeze())
    sandbox = Sandbox(port=args.port, latency=args.latency, verbose=args.verbose)
    sandbox.concurrency_limit = args.concurrency_limit
    sandbox.start()
    log.warning(WARNING_TEXT)
    lines = [
        "=" * 78,
        WARNING_TEXT,
        "=" * 78,
        f"Graph base URL:          {sandbox.graph_base_url}",
        f"Business Central base:   {sandbox.bc_base_url}",
        f"Identity endpoint:       {sandbox.identity_endpoint}",
        f"IDENTITY_HEADER:         {SANDBOX_TOKEN_HEADER}",
        f"Company id:              {SANDBOX_COMPANY_ID}",
        f"Journal id:              {SANDBOX_JOURNAL_ID} ({SANDBOX_JOURNAL_NAME})",
        *(f"Customer {num}:          {cid}" for num, cid in SANDBOX_CUSTOMERS.items()),
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly on SIGTERM too, like Ctrl-C
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    print("sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
