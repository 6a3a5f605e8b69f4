"""The HTTP contract's vocabulary: the names the webhook answers with and the OpenAPI document
describes (problem types, headers, routes, outcomes), and the answer itself. Both import it; it imports
neither."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import codec

PROBLEM = "urn:payments-relay:problem:"
PROBLEM_JSON = "application/problem+json"
IGNORED_HEADER = "Payments-Ignored-Properties"
ALREADY_HEADER = "Payments-Already-Posted"
# Present when amounts are written as money received (PAYMENTS_AMOUNT_SIGN=positive): they were negated.
NEGATED_HEADER = "Payments-Amounts-Negated"
# The Functions host answers an HTTP trigger within 230 s; stop starting new posts well before.
HTTP_TIME_BUDGET_SECONDS = 180.0
# A validation answer lists at most this many problems and counts the rest: its size stays bounded
# whatever the body holds.
MAX_REPORTED_ERRORS = 100
STATUS_ROUTE = "/api/batches"  # GET {STATUS_ROUTE}/{id}: a batch answered 202 Accepted
SIGNED_ROUTE = "/api/webhooks"  # a Standard Webhooks sender's routes: {SIGNED_ROUTE}/{sender}/...
# Every problem type an HTTP route answers with (the slug after PROBLEM).
PROBLEM_TYPES = (
    "invalid-route",
    "unsupported-media-type",
    "body-too-large",
    "malformed-body",
    "invalid-idempotency-key",
    "validation-failed",
    "idempotency-key-reused",
    "request-in-progress",
    "target-rejected",
    "outcome-unknown",
    "relay-not-authorized",
    "target-unavailable",
    "relay-storage-unavailable",
    "relay-misconfigured",
    "internal-error",
    "batch-not-found",
    "status-unavailable",
    "unauthenticated",
    "forbidden",
    "auth-unavailable",
    "unknown-sender",
    "signature-missing",
    "signature-invalid",
    "signature-expired",
    "signature-replayed",
)
OUTCOMES = (
    "created",
    "skipped",
    "invalid",
    "rejected",
    "unavailable",
    "ambiguous",
    "denied",
    "in-flight",
    "conflict",
    "accepted",
)


@dataclass(slots=True)
class Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"  # always UTF-8
    encoded: bytes | None = None  # the body's bytes, once written (`handle_post` writes them)

    def content(self) -> bytes:
        if self.encoded is None:
            self.encoded = b"" if self.body is None else codec.dumpb(self.body)
        return self.encoded


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> Answer:
    body: dict[str, Any] = {"type": PROBLEM + slug, "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return Answer(status, body, {}, PROBLEM_JSON)
