"""What the relay tells an operator: traces (one per invocation, continued from the host's
`traceparent`, with a span per target request and per ledger operation), business outcomes as metrics
(never sampled), and one structured log line per payment outcome.

The code everywhere uses the OpenTelemetry API only (`instruments`), which costs next to nothing when
no SDK is configured; `setup.configure` wires the Azure Monitor distro once per worker when the
standard settings switch it on. What is recorded is chosen here, in one place, so that nothing carries
a token, an IBAN, a payer's name beside an amount, or a whole payload.
"""

from .instruments import (
    ENTRY_POINT,
    SOURCE,
    caller_refused,
    invocation,
    ledger_span,
    payment_outcome,
    queue_depth,
    received,
    review_rows,
    target_request,
    tracer,
)
from .setup import configure, enabled

__all__ = [
    "ENTRY_POINT",
    "SOURCE",
    "caller_refused",
    "configure",
    "enabled",
    "invocation",
    "ledger_span",
    "payment_outcome",
    "queue_depth",
    "received",
    "review_rows",
    "target_request",
    "tracer",
]
