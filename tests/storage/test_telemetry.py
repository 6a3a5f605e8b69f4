"""Telemetry with in-memory exporters: the OpenTelemetry SDK wired as the distro wires it (a tracer, a
meter and a log handler on the `payments` logger), the registered functions called with the host's
trace context, the real ledger in Azurite and the sandbox as the target. Asserts on what would reach
Application Insights: the spans of one trace, the metric increments, the log lines, and that nothing
exported holds a token, an IBAN or a whole payload."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.storage.test_statements import camt, seed
from tests.support.filedrop import configure_storage, deliver, upload
from tests.support.webhook import call
from tests.support.work import queue_host, queue_settings

# The SDK's logs API is not stable yet: its handler warns that it will move.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
PAYER_IBAN = "NL91ABNA0417164300"


class _Spans(InMemorySpanExporter):
    """Keeps spans only while a telemetry test runs (the global provider stays for the session)."""

    active = False

    def export(self, spans):
        return super().export(spans) if self.active else SpanExportResult.SUCCESS


class Exported:
    """What the SDK exported since the test began."""

    def __init__(self) -> None:
        self.spans = _Spans()
        self.metrics = InMemoryMetricReader()
        self.logs = InMemoryLogRecordExporter()
        self._seen: dict[tuple, float] = {}
        self.handler: logging.Handler | None = None

    def reset(self) -> None:
        self.spans.clear()
        self.logs.clear()
        self._seen = self._points()

    def _points(self) -> dict[tuple, float]:
        data = self.metrics.get_metrics_data()
        out: dict[tuple, float] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        key = (metric.name, tuple(sorted(point.attributes.items())))
                        out[key] = getattr(point, "value", None) or getattr(point, "count", 0)
        return out

    def increments(self, name: str, by: tuple[str, ...] | None = None) -> Counter:
        """How much each attribute set of metric `name` grew since reset() (keyed by the attributes
        named in `by`, else by outcome or status)."""
        now, out = self._points(), Counter()
        for (metric, attrs), value in now.items():
            if metric == name and value != self._seen.get((metric, attrs), 0):
                if by is not None:
                    out[tuple(dict(attrs)[a] for a in by)] += value - self._seen.get((metric, attrs), 0)
                    continue
                out[dict(attrs).get("outcome") or dict(attrs).get("status") or str(dict(attrs))] += (
                    value - self._seen.get((metric, attrs), 0)
                )
        return out

    def texts(self) -> list[str]:
        """Every exported string: span names, attributes, events, metric attributes, log bodies and attributes."""
        out = []
        for span in self.spans.get_finished_spans():
            out.append(span.name)
            out += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
            for event in span.events:
                out += [event.name, *(f"{k}={v}" for k, v in (event.attributes or {}).items())]
        for key in self._points():
            out.append(repr(key))
        for record in self.logs.get_finished_logs():
            out.append(str(record.log_record.body))
            out += [f"{k}={v}" for k, v in (record.log_record.attributes or {}).items()]
        return out


_EXPORTED: Exported | None = None


@pytest.fixture
def exported(sandbox) -> Exported:
    """The SDK's global providers, set once for the session (OpenTelemetry allows that only once)."""
    global _EXPORTED
    if _EXPORTED is None:
        _EXPORTED = Exported()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(_EXPORTED.spans))
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[_EXPORTED.metrics]))
        logs = LoggerProvider()
        logs.add_log_record_processor(SimpleLogRecordProcessor(_EXPORTED.logs))
        _EXPORTED.handler = LoggingHandler(logger_provider=logs)
    logger = logging.getLogger("payments")
    logger.addHandler(_EXPORTED.handler)
    logger.setLevel(logging.INFO)
    _EXPORTED.spans.active = True
    _EXPORTED.reset()
    yield _EXPORTED
    _EXPORTED.spans.active = False
    _EXPORTED.reset()
    logger.removeHandler(_EXPORTED.handler)
    logger.setLevel(logging.NOTSET)


def _forbidden(sandbox, payload_texts: list[str]) -> list[str]:
    return [*sandbox.issued_tokens, PAYER_IBAN, "NL91 ABNA", *payload_texts]


def test_a_webhook_payment_is_one_trace_from_the_hosts_traceparent_to_the_target(drop, sandbox, exported):
    body = {
        "customerNumber": "10000",
        "documentNumber": "TEL-1",
        "amount": "-12.34",
        "description": "Tel one",
    }
    resp, _ = call(body, traceparent=TRACEPARENT)
    assert resp.status_code == 201
    spans = exported.spans.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    [invocation] = [s for s in spans if s.name == "customer_payments"]
    assert format(invocation.parent.span_id, "016x") == "00f067aa0ba902b7"  # the host's span is its parent
    [insert] = [s for s in spans if s.name == "target insert"]
    sent = [r for r in sandbox.requests if r.method == "POST"][-1]
    assert (
        insert.attributes["client_request_id"]
        == sent.headers["client-request-id"]
        == resp.headers["client-request-id"]
    )
    assert insert.attributes["payments.company_id"] == C and insert.attributes["payments.journal_id"] == J
    assert (
        insert.attributes["payments.outcome"] == "answered"
        and insert.attributes["http.response.status_code"] == 201
    )
    ledger = [s for s in spans if s.name.startswith("ledger ")]
    assert {s.name for s in ledger} >= {"ledger insert", "ledger replace"}  # claimed, then recorded posted
    assert all(s.attributes["payments.company_id"] == C for s in ledger)
    assert exported.increments("payments.received") == {
        "{'entry_point': 'webhook', 'target': 'businesscentral'}": 1
    }
    assert exported.increments("payments.outcome") == {"created": 1}
    assert exported.increments("target.requests") == {"201": 1}
    [line] = [
        r.log_record for r in exported.logs.get_finished_logs() if r.log_record.attributes.get("outcome")
    ]
    assert line.attributes["document_number"] == "TEL-1"
    assert line.attributes["client_request_id"] == resp.headers["client-request-id"]
    assert line.attributes["ledger_key"].startswith("p-")
    texts = " ".join(exported.texts())
    for secret in _forbidden(sandbox, [json.dumps(body), "Tel one", "-12.34"]):
        assert secret not in texts


def test_an_ambiguous_outcome_is_an_error_span_an_error_line_and_a_metric(drop, azure_env, sandbox, exported):
    azure_env("businesscentral", **drop.settings, PAYMENTS_MAX_ATTEMPTS="1")
    sandbox.inject("drop-after")
    resp, answer = call(
        {"customerNumber": "10000", "documentNumber": "TEL-2", "amount": "-5.00"}, traceparent=TRACEPARENT
    )
    assert resp.status_code == 502 and answer["mayExist"] is True
    [insert] = [s for s in exported.spans.get_finished_spans() if s.name == "target insert"]
    assert insert.attributes["payments.outcome"] == "ambiguous"
    assert insert.status.status_code.name == "ERROR"
    assert [e.attributes["http.response.status_code"] for e in insert.events] == ["none"]
    assert exported.increments("payments.outcome") == {"ambiguous": 1}
    assert exported.increments("target.requests") == {"none": 1}
    [line] = [
        r.log_record for r in exported.logs.get_finished_logs() if r.log_record.attributes.get("outcome")
    ]
    assert line.severity_text == "ERROR" and line.attributes["document_number"] == "TEL-2"


def test_a_file_drop_and_a_statement_are_traced_counted_and_logged_without_ibans(drop, sandbox, exported):
    seed(sandbox)
    csv = "customerNumber,documentNumber,amount\r\n10000,TEL-F1,-1.10\r\n10000,TEL-F2,-2,20\r\n"
    deliver(drop, upload(drop, f"{C}/{J}/pay.csv", csv), traceparent=TRACEPARENT)
    spans = exported.spans.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    assert exported.increments("payments.outcome") == {"created": 1, "invalid": 1}
    lines = {
        r.log_record.attributes["outcome"]: r.log_record.attributes
        for r in exported.logs.get_finished_logs()
        if r.log_record.attributes.get("outcome")
    }
    assert lines["created"]["file"] == f"{C}/{J}/pay.csv" and lines["created"]["location"] == "line 2"
    assert lines["invalid"]["location"] == "line 3"

    exported.reset()
    entries = [
        {
            "ref": "R-1",
            "amount": "150.00",
            "payer": "Fabrikam Lighting GmbH",
            "iban": PAYER_IBAN,
            "text": "SI-104711",
        },
        {"ref": "R-2", "amount": "9.99", "payer": "Someone Else", "iban": PAYER_IBAN, "text": "thanks"},
    ]
    deliver(drop, upload(drop, f"{C}/{J}/statement.xml", camt("053", entries)), traceparent=TRACEPARENT)
    assert exported.increments("payments.outcome") == {"created": 1, "review": 1}
    assert exported.increments("bank.review_rows") == {"{'entry_point': 'statement'}": 1}
    texts = " ".join(exported.texts())
    for secret in _forbidden(sandbox, ["Fabrikam Lighting GmbH 150", "Someone Else"]):
        assert secret not in texts


def test_through_the_work_queue_a_payment_is_accepted_by_the_webhook_and_created_by_the_queue(
    azure_env, azurite, sandbox, exported
):
    """Each outcome is counted where it is decided: accepted at the webhook, created by the queue
    function, never twice."""
    env = configure_storage(azure_env, azurite, **queue_settings())
    with queue_host(env):
        resp, _ = call({"customerNumber": "10000", "documentNumber": "TEL-Q1", "amount": "-3.00"})
    assert resp.status_code == 201
    assert exported.increments("payments.outcome", by=("entry_point", "outcome")) == {
        ("webhook", "accepted"): 1,
        ("queue", "created"): 1,
    }


def test_a_payment_sent_again_through_the_queue_is_counted_as_skipped_once(
    azure_env, azurite, sandbox, exported
):
    env = configure_storage(azure_env, azurite, **queue_settings())
    body = {"customerNumber": "10000", "documentNumber": "TEL-Q2", "amount": "-4.00"}
    with queue_host(env):
        assert call(body)[0].status_code == 201
        exported.reset()
        assert call(body)[0].status_code == 200  # answered from the ledger: already posted
    assert exported.increments("payments.outcome", by=("entry_point", "outcome")) == {
        ("webhook", "skipped"): 1
    }


def test_a_statement_line_sent_again_after_a_refusal_is_counted_once(drop, azure_env, sandbox, exported):
    """A refusal forgotten and the line sent again: one outcome for it (created), not rejected and created."""
    from tests.storage.test_statements import ENTRIES, _choose, report_of

    seed(sandbox)
    azure_env("businesscentral", **drop.settings, PAYMENTS_BATCH_SIZE="100", PAYMENTS_MAX_ATTEMPTS="1")
    sandbox.inject_inner("400")
    first = upload(drop, f"{C}/{J}/statement.xml", camt("053", [ENTRIES[0]]))
    deliver(drop, first)
    back = upload(drop, f"{C}/{J}/review.csv", _choose(drop, report_of(drop, first), {"150.00": "SI-104711"}))
    exported.reset()
    deliver(drop, back)
    assert exported.increments("payments.outcome", by=("entry_point", "outcome")) == {
        ("review", "created"): 1
    }


def test_a_file_drop_through_the_queue_names_its_file_in_the_queue_functions_lines(
    azure_env, azurite, sandbox, exported
):
    env = configure_storage(azure_env, azurite, **queue_settings())
    name = upload(
        env, f"{C}/{J}/queued.csv", "customerNumber,documentNumber,amount\r\n10000,TEL-QF,-6.00\r\n"
    )
    with queue_host(env):
        deliver(env, name)
    lines = [
        r.log_record.attributes
        for r in exported.logs.get_finished_logs()
        if r.log_record.attributes.get("outcome")
    ]
    assert [(a["outcome"], a["entry_point"], a["file"]) for a in lines] == [
        ("accepted", "file", name),
        ("created", "queue", name),
    ]
