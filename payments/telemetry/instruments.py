"""The spans, metrics and outcome log lines the relay records, through the OpenTelemetry API.

Names and dimensions are the contract the alerts and the workbook in `infra/` query: change them
together. Dimensions are few and low in cardinality (entry point, target, outcome, operation, status,
queue); what identifies one payment (ledger key, client-request-id, document numbers) goes on spans
and log lines, never on metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# Which entry point the payments being handled came through: webhook, file, statement, review, queue
# (posted by the work queue's function) or cli; set by each entry point for the duration of its call.
ENTRY_POINT: ContextVar[str] = ContextVar("payments_entry_point", default="webhook")
# The file being processed (its name in the inbox), for the outcome log lines.
SOURCE: ContextVar[str | None] = ContextVar("payments_source", default=None)

tracer = trace.get_tracer("payments")
_meter = metrics.get_meter("payments")
_received = _meter.create_counter("payments.received", unit="{payment}", description="payments taken in")
_outcome = _meter.create_counter("payments.outcome", unit="{payment}", description="payments by outcome")
_requests = _meter.create_counter("target.requests", unit="{request}", description="requests to the target")
_throttled = _meter.create_counter("target.throttled", unit="{request}", description="the target's 429s")
_retries = _meter.create_counter("target.retries", unit="{request}", description="requests sent again")
_duration = _meter.create_histogram("target.duration", unit="ms", description="one exchange with the target")
_depth = _meter.create_gauge("queue.depth", unit="{message}", description="messages or blobs waiting")
_review = _meter.create_counter("bank.review_rows", unit="{row}", description="credits put to the operator")
_refused = _meter.create_counter("callers.refused", unit="{call}", description="calls refused at the door")

outcome_log = logging.getLogger("payments.outcome")
_LEVEL = {
    "created": logging.INFO,
    "skipped": logging.INFO,
    "accepted": logging.INFO,
    "ambiguous": logging.ERROR,
}
_propagator = TraceContextTextMapPropagator()


@contextmanager
def invocation(function: str, trace_context: Any = None, **attributes: str) -> Iterator[trace.Span]:
    """One span for one invocation, continuing the host's trace (`context.trace_context`: W3C
    traceparent and tracestate), so the host's request, this span and the target requests are one trace.
    An internal span: the host already records the invocation itself as a request. An exception is
    recorded by its type only (its message may carry storage or target text)."""
    carrier = {}
    parent = getattr(trace_context, "trace_parent", None)
    if parent:
        carrier["traceparent"] = str(parent)
        state = getattr(trace_context, "trace_state", None)
        if state:
            carrier["tracestate"] = str(state)
    ctx = _propagator.extract(carrier) if carrier else None
    with tracer.start_as_current_span(
        function,
        context=ctx,
        kind=SpanKind.INTERNAL,
        attributes={"faas.name": function, **attributes},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("error.type", type(exc).__name__)
            raise


class Exchange:
    """What one request to the target came to, recorded on its span and in the request metrics."""

    def __init__(self, span: trace.Span, operation: str):
        self.span = span
        self.operation = operation
        self.exchanges = 0

    def answered(self, status: int | None, seconds: float) -> None:
        """One exchange on the wire (an attempt, or a 401's retry with a fresh token)."""
        self.exchanges += 1
        attempt = self.exchanges
        code = str(status) if status is not None else "none"
        dims = {"operation": self.operation, "status": code}
        _requests.add(1, {**dims, "method": "POST" if self.operation != "read" else "GET"})
        _duration.record(seconds * 1000.0, dims)
        if status == 429:
            _throttled.add(1, {"operation": self.operation})
        if attempt > 1:
            _retries.add(1, {"operation": self.operation})
        self.span.add_event("answer", {"http.response.status_code": code, "attempt": attempt})

    def settled(self, outcome: str, status: int | None = None, attempts: int = 1) -> None:
        self.span.set_attribute("payments.outcome", outcome)
        self.span.set_attribute("payments.attempts", attempts)
        if status is not None:
            self.span.set_attribute("http.response.status_code", status)
        if outcome in ("ambiguous", "unavailable", "denied", "rejected"):
            self.span.set_status(Status(StatusCode.ERROR, outcome))


@contextmanager
def target_request(
    operation: str, method: str, *, client_request_id: str, company: str | None, journal: str | None
) -> Iterator[Exchange]:
    """A span for one request to the target (all its attempts), with the ids an operator searches by."""
    attributes = {
        "payments.operation": operation,
        "http.request.method": method,
        "client_request_id": client_request_id,
    }
    if company:
        attributes["payments.company_id"] = company
    if journal:
        attributes["payments.journal_id"] = journal
    with tracer.start_as_current_span(
        f"target {operation}", kind=SpanKind.CLIENT, attributes=attributes, record_exception=False
    ) as span:
        yield Exchange(span, operation)


@contextmanager
def ledger_span(operation: str, partition: str | None = None, key: str | None = None) -> Iterator[trace.Span]:
    """A span for one ledger operation (one storage round trip, or one transaction of many)."""
    attributes = {"payments.ledger.operation": operation}
    if partition:
        company, _, journal = partition.partition("_")
        attributes.update({"payments.company_id": company, "payments.journal_id": journal})
    if key:
        attributes["payments.ledger_key"] = key
    with tracer.start_as_current_span(
        f"ledger {operation}", attributes=attributes, record_exception=False
    ) as span:
        yield span


def received(count: int, target: str) -> None:
    """Payments taken in by an entry point (valid or not)."""
    if count:
        _received.add(count, {"entry_point": ENTRY_POINT.get(), "target": target})


def payment_outcome(
    outcome: str,
    *,
    target: str,
    key: str | None = None,
    client_request_id: str | None = None,
    company: str | None = None,
    journal: str | None = None,
    natural: dict[str, str] | None = None,
    location: str | None = None,
    note: str | None = None,
    count: int = 1,
) -> None:
    """Count one payment's outcome and write its one log line, with the keys an operator searches by
    (`count`: that many payments of one refused batch, in one line)."""
    entry = ENTRY_POINT.get()
    _outcome.add(count, {"entry_point": entry, "target": target, "outcome": outcome})
    fields: dict[str, Any] = {
        "outcome": outcome,
        "count": count if count != 1 else None,
        "entry_point": entry,
        "ledger_key": key,
        "client_request_id": client_request_id,
        "company_id": company,
        "journal_id": journal,
        "document_number": (natural or {}).get("documentNumber"),
        "external_document_number": (natural or {}).get("externalDocumentNumber"),
        "file": SOURCE.get(),
        "location": location,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    level = _LEVEL.get(outcome, logging.WARNING)
    if outcome_log.isEnabledFor(level):
        said = " ".join(f"{k}={v}" for k, v in fields.items() if k not in ("outcome",))
        outcome_log.log(level, "payment %s: %s%s", outcome, said, f" ({note})" if note else "", extra=fields)


def queue_depth(queue: str, depth: int) -> None:
    """How many messages (or dead-lettered blobs) wait in one queue now (emitted by a timer)."""
    _depth.set(depth, {"queue": queue})


def caller_refused(status: int, problem: str) -> None:
    """A call refused before anything was read (401, 403, 503), by its problem type."""
    _refused.add(1, {"status": status, "problem": problem})


def review_rows(count: int = 1) -> None:
    """Credits put to the operator in a review file."""
    _review.add(count, {"entry_point": ENTRY_POINT.get()})
