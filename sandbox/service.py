"""The `Sandbox`: its lifecycle, seed helpers and inspection, and the dispatch of each request (identity,
`$batch` or payments) through throttling, latency and injected faults.

Longer than 400 lines: one dispatcher of every route the sandbox serves; what it dispatches to (limits
and identities in `admission`, entities, books, posting, `$batch`) lives in modules of its own."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import posting, receivables
from .admission import Admitting
from .batch import parse_items, run_inner
from .books import Books
from .entity import create, find_journal, insert, read, render, validate
from .faults import Fault, FaultQueues, is_status_fault, status_fault
from .identity import IDENTITY_PATH, serve_token_request
from .limits import Admission, Limits
from .odata import BATCH_JSON, JSON_ODATA, Call, ODataError, check_auth, error_body, norm_guid, parse_json
from .routing import BatchEndpoint, Route, batch_endpoint, route
from .server import Handler, Server
from .store import (
    Company,
    RecordedRequest,
    seed_companies,
)

log = logging.getLogger(__name__)

WARNING_TEXT = "payments sandbox: FOR DEVELOPMENT AND TESTS ONLY - never use it in production"

# What serving a request produced: status, payload, headers and content type of the answer.
_Answer = tuple[int, Any, dict[str, str], str]


class Sandbox(Admitting, Books):
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
        self.limits = Limits()  # per identity: Business Central online's unless a test changes them
        self.insert_gap = 0.0  # seconds between reading a journal's last line and inserting after it
        # Server-driven paging of customers and salesInvoices: at most this many records per answer, then
        # an @odata.nextLink (Business Central's maximum, 20,000; tests set a small one).
        self.page_size = receivables.MAX_PAGE_SIZE
        self.throttled_count = 0  # 429s answered by the limits
        self.queue_timeouts = 0  # 503s: queued longer than limits.queue_timeout
        self.timeouts = 0  # 408s and 504s: processing cut off by the operation or request timeout
        self.line_collisions = 0  # inserts that overlapped another in one journal and lost the number
        # Instruments for load tests (not behaviour): the most payments requests processed at once, and
        # the most writing requests (POST, or a $batch naming the journal) processed at once per journal.
        self.peak_in_flight = 0
        self.peak_journal_writers = 0
        self._journal_writers: Counter[str] = Counter()
        self.requests: list[RecordedRequest] = []  # real HTTP requests only: a batch appears once
        self.inner_requests: list[RecordedRequest] = []  # the inner requests of batches, in order
        self.connections_accepted = 0  # TCP connections taken, ever (keep-alive shows as few)
        self.batch_count = 0  # $batch requests whose inner requests were processed
        self.token_requests: list[RecordedRequest] = []
        self.issued_tokens: set[str] = set()
        self.stopping = threading.Event()  # set by stop(): answers held for their latency are dropped
        self._lock = threading.RLock()
        self._faults = FaultQueues(self._lock)
        self._in_flight = 0
        self._admissions: dict[str, Admission] = {}  # per identity (client id, or the bearer token)
        self.unregistered: set[str] = set()  # client ids Business Central does not know (`unregister`)
        # Limits of their own for some identities (client id): one another integration shares, whose
        # budget is partly spent (the limits are per user or service principal, whoever sends).
        self.identity_limits: dict[str, Limits] = {}
        self.requests_by_identity: Counter[str] = Counter()  # payments requests admitted, per identity
        self._token_owners: dict[str, str] = {}  # token -> client id it was issued for
        self._token_counter = 0
        self._companies: dict[str, Company] = seed_companies()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Bind and serve in a daemon thread; port 0 lets the OS pick a free port."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self.stopping.clear()
        self._server = Server((self.host, self.port), self)
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
        self.stopping.set()
        self._faults.release_held()
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
        return self.url + IDENTITY_PATH

    @property
    def in_flight(self) -> int:
        """Payments requests being processed right now, every identity together (queued ones are not).

        A `$batch` counts as one, however many inner requests it carries.
        """
        with self._lock:
            return self._in_flight

    @property
    def queued(self) -> int:
        """Payments requests waiting for a processing slot, every identity together."""
        with self._lock:
            admissions = list(self._admissions.values())
        return sum(a.queued for a in admissions)

    # ----- faults and reset -------------------------------------------------------------------------------
    def inject(self, fault: str, *, times: int = 1, retry_after: str | None = None) -> None:
        """Queue `times` faults, consumed FIFO one per payments request (GET or POST).

        A `$batch` is one request: it consumes one fault, which applies to the whole batch
        ("drop-after" and "timeout" process every inner request first).
        """
        self._faults.inject(fault, times=times, retry_after=retry_after)

    def pending_faults(self) -> list[str]:
        """Faults still queued, in the order they will be served."""
        return self._faults.pending()

    def inject_inner(self, fault: str, *, times: int = 1, retry_after: str | None = None) -> None:
        """Queue `times` faults for inner requests of batches, consumed FIFO one per inner request.

        "429" and "503" become that inner response (OData error body, nothing created); a 429 carries
        an inner `Retry-After` header ("1" unless `retry_after` is given), a 503 only when it is given.
        """
        self._faults.inject_inner(fault, times=times, retry_after=retry_after)

    def pending_inner_faults(self) -> list[str]:
        """Inner faults still queued, in the order they will be served."""
        return self._faults.pending_inner()

    def reset(self) -> None:
        """Forget payments, requests, tokens, faults, counters; free held requests; keep the seed."""
        with self._lock:
            for company in self._companies.values():
                company.work_date = None
                company.ledger_entries.clear()
                company.restore()  # posting applied payments to invoices: the seed's amounts return
                for journal in company.journals.values():
                    journal.clear()
            self.requests.clear()
            self.inner_requests.clear()
            self.token_requests.clear()
            self.issued_tokens.clear()
            self._faults.clear()
            self.throttled_count = self.queue_timeouts = self.timeouts = self.line_collisions = 0
            self.peak_in_flight = self.peak_journal_writers = 0
            self._journal_writers.clear()
            self.batch_count = 0
            self._admissions = {}
            self.unregistered.clear()
            self.identity_limits.clear()
            self.requests_by_identity.clear()
            self._faults.release_held()

    # ----- request handling ------------------------------------------------------------------------------
    def handle(self, h: Handler, body: bytes) -> None:
        """Answer one HTTP request (its body already read) through `h`: the server calls this."""
        recorded = RecordedRequest(h.command, h.path, {k: v for k, v in h.headers.items()}, body)
        split = urlsplit(h.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        if path.rstrip("/") == IDENTITY_PATH:
            with self._lock:
                self.token_requests.append(recorded)
            serve_token_request(h, query, self._issue_token)
            return
        batch = batch_endpoint(path)
        if batch is not None:
            if h.command != "POST":
                with self._lock:
                    self.requests.append(recorded)
                err = ODataError(
                    405,
                    "BadRequest_MethodNotAllowed",
                    f"'{h.command}' is not allowed on this resource.",
                    {"Allow": "POST"},
                )
                self._error(h, batch.graph, err)
                return
            self._admit(h, recorded, batch.graph, lambda fault: self._serve_batch(h, batch, body, fault))
            return
        if (posting_target := posting.route(path)) is not None:
            with self._lock:
                self.requests.append(recorded)
            self._serve_posting(h, posting_target, query)
            return
        if (books := receivables.route(path)) is not None:
            if h.command != "GET":
                with self._lock:
                    self.requests.append(recorded)
                err = ODataError(
                    405,
                    "BadRequest_MethodNotAllowed",
                    f"'{h.command}' is not allowed on this resource in the sandbox.",
                    {"Allow": "GET"},
                )
                self._error(h, books.graph, err)
                return
            self._admit(h, recorded, books.graph, lambda fault: self._serve_books(h, books, query, fault))
            return
        target = route(path)
        allowed = ("GET",) if target is not None and target.entity is not None else ("GET", "POST")
        if target is None or h.command not in allowed:
            with self._lock:
                self.requests.append(recorded)
            graph = (
                target.graph if target else path.startswith(("/beta/", "/v1.0/")) or "/financials/" in path
            )
            if target is None:
                self._error(
                    h, graph, ODataError(404, "BadRequest_NotFound", f"No resource found at '{path}'.")
                )
            else:
                err = ODataError(
                    405,
                    "BadRequest_MethodNotAllowed",
                    f"'{h.command}' is not allowed on this resource.",
                    {"Allow": ", ".join(allowed)},
                )
                self._error(h, graph, err)
            return

        self._admit(
            h, recorded, target.graph, lambda fault: self._serve_payments(h, target, query, body, fault)
        )

    def _serve(self, h: Handler, graph: bool, fault: Fault | None, work: Callable[[], _Answer]) -> None:
        """Serve one payments request or batch with its outer fault, if any: a status fault answers
        instead, "drop-before" drops it unprocessed, "drop-after" and "timeout" process it first."""
        name = fault[0] if fault else None
        if fault and is_status_fault(name):
            self._error(h, graph, status_fault(fault))
            return
        if name == "drop-before":
            h.drop()
            return
        try:
            status, payload, headers, content_type = work()
        except ODataError as err:
            if name in ("drop-after", "timeout"):
                self._faults.hold_or_drop(h, name)
            else:
                self._error(h, graph, err)
            return
        if name in ("drop-after", "timeout"):
            self._faults.hold_or_drop(h, name)
            return
        h.send_json(status, payload, headers, content_type)

    def _serve_payments(
        self, h: Handler, target: Route, query: dict[str, list[str]], body: bytes, fault: Fault | None
    ) -> None:
        def work() -> _Answer:
            self._within_deadline(h, h.due)
            status, payload, headers = self._process(h, target, query, body)
            return status, payload, {**self._graph_headers(h, target.graph), **headers}, JSON_ODATA

        self._serve(h, target.graph, fault, work)

    def _serve_books(
        self, h: Handler, target: receivables.Target, query: dict[str, list[str]], fault: Fault | None
    ) -> None:
        """customers, salesInvoices, companyInformation: read like any request to Business Central (the
        limits, latency and injected faults apply), one page at a time."""

        def work() -> _Answer:
            self._within_deadline(h, h.due)
            check_auth(h)
            with self._lock:
                company = posting.company_of(self._companies, target.company)
                body, headers = receivables.read(h, target, company, query, self.url, self.page_size)
            return 200, body, {**self._graph_headers(h, target.graph), **headers}, JSON_ODATA

        self._serve(h, target.graph, fault, work)

    def _serve_batch(self, h: Handler, batch: BatchEndpoint, body: bytes, fault: Fault | None) -> None:
        def work() -> _Answer:
            responses = self._run_batch(h, batch, body)
            return 200, {"responses": responses}, self._graph_headers(h, batch.graph), BATCH_JSON

        self._serve(h, batch.graph, fault, work)

    def _run_batch(self, h: Handler, batch: BatchEndpoint, body: bytes) -> list[dict[str, Any]]:
        check_auth(h)
        items = parse_items(batch, parse_json(h, body))
        outer_auth = h.headers.get("Authorization") or ""
        # Business Central stops a $batch at its first failed operation and answers only up to it,
        # unless asked `Prefer: odata.continue-on-error` (not in its docs; reported by Kauffmann's "Batch
        # calls with Business Central (2) - Error handling" and on the community forum). Graph runs all.
        stop_on_error = not batch.graph and "odata.continue-on-error" not in (h.headers.get("Prefer") or "")
        # Business Central runs the operations of a batch one after another, each taking its time.
        responses = []
        finish = h.started
        for item in items:
            finish += self.latency
            self._within_deadline(h, finish)
            with self._lock:
                self.inner_requests.append(
                    RecordedRequest(item.method, item.url, dict(item.headers), item.body)
                )
                fault = self._faults.take_inner()
            responses.append(run_inner(h, batch, item, outer_auth, fault, self._process))
            if finish > time.monotonic() and self.stopping.wait(finish - time.monotonic()):
                break
            if stop_on_error and responses[-1]["status"] >= 400:
                break
        h.due = finish
        with self._lock:
            self.batch_count += 1
        responses.reverse()  # Graph answers in any order: make clients map by id
        return responses

    def _process(
        self, h: Call, target: Route, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        check_auth(h)
        with self._lock:
            journal = find_journal(self._companies, target)
            if h.command == "GET":
                return read(target, journal, query, self.url)
        record = self._validate(h, target, body)
        with self._lock:  # re-resolve: the lock was released while parsing the body
            company = self._companies[norm_guid(target.company) or ""]
            journal = company.journals[norm_guid(target.journal) or ""]
            line = create(target, company, journal, record)
            if not self.insert_gap:
                stored = insert(journal, line)
        if self.insert_gap:
            # Business Central reads the journal's last line, then inserts after it: an insert that
            # overlaps another in this gap computes the same line number and fails on the key.
            self.stopping.wait(self.insert_gap)
            with self._lock:
                try:
                    stored = insert(journal, line)
                except ODataError:
                    self.line_collisions += 1
                    raise
        location = f"{self.url}{target.collection_path}" + (
            f"/{stored['id']}" if target.graph else f"({stored['id']})"
        )
        return (
            201,
            render(stored, target.graph, f"{self.url}{target.context}/$entity"),
            {"Location": location},
        )

    def _serve_posting(self, h: Handler, target: tuple[str, str, str | None, bool], query: Any) -> None:
        """`generalLedgerEntries` (GET) and a journal's `Microsoft.NAV.post` action (POST, answered 204)."""
        kind, company_id, journal_id, graph = target
        try:
            check_auth(h)
            if h.command != ("GET" if kind == "entries" else "POST"):
                raise ODataError(405, "BadRequest_MethodNotAllowed", f"'{h.command}' is not allowed here.")
            with self._lock:
                company = posting.company_of(self._companies, company_id)
                if kind == "entries":
                    h.send_json(200, posting.entries(company, query), content_type=JSON_ODATA)
                    return
                journal = find_journal(self._companies, Route(graph, company_id, journal_id or "", None, ""))
                posting.post(company, journal)
            h.send_json(204, None)
        except ODataError as err:
            self._error(h, graph, err)

    def _validate(self, h: Call, target: Route, body: bytes) -> dict[str, Any]:
        return validate(parse_json(h, body), target.graph)

    def _error(self, h: Handler, graph: bool, err: ODataError) -> None:
        client_request_id = h.headers.get("client-request-id")
        body = error_body(err.code, err.message, graph, client_request_id)
        h.send_json(err.status, body, {**self._graph_headers(h, graph), **err.headers})

    @staticmethod
    def _graph_headers(h: Handler, graph: bool) -> dict[str, str]:
        if not graph:
            return {}
        headers = {"request-id": str(uuid.uuid4())}
        if h.headers.get("client-request-id"):
            headers["client-request-id"] = h.headers["client-request-id"]
        return headers
