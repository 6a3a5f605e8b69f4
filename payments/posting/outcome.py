"""The vocabulary every entry point reports in: what happened to one payment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import AmbiguousOutcome, NotAuthorized, PermanentRejection, TargetError, TargetUnavailable
from ..model import FieldError
from ..outbound import Created

Kind = Literal[
    "created",  # posted now
    "skipped",  # posted before (found in the ledger, or at the target by reconciliation): not posted again
    "invalid",
    "rejected",
    "unavailable",
    "ambiguous",
    "denied",
    "in-flight",  # another request or worker is posting this very payment right now
    "conflict",  # the Idempotency-Key was used before for a different payment
    "accepted",  # on the work queue: it will be posted; its batch's status says when
]


@dataclass(slots=True)
class Outcome:
    """What happened to one payment. `created` is the target's object; `error` explains the rest."""

    kind: Kind
    created: dict[str, Any] | None = None
    error: TargetError | None = None
    errors: list[FieldError] = field(default_factory=list)
    client_request_id: str | None = None
    attempted: bool = True
    note: str | None = None  # why a payment was skipped or left ambiguous
    replay_status: int | None = None  # for an Idempotency-Key replay: the status first answered

    @property
    def ok(self) -> bool:
        return self.kind in ("created", "skipped")


def kind_of(exc: TargetError) -> Kind:
    """The outcome a target error stands for."""
    if isinstance(exc, PermanentRejection):
        return "rejected"
    if isinstance(exc, NotAuthorized):
        return "denied"
    if isinstance(exc, TargetUnavailable):
        return "unavailable"
    if isinstance(exc, AmbiguousOutcome):
        return "ambiguous"
    raise TypeError(f"unclassified target error {type(exc).__name__}")  # pragma: no cover


def answered(answer: Created | TargetError) -> Outcome:
    """The outcome of one answer from the target."""
    if isinstance(answer, TargetError):
        return Outcome(kind_of(answer), error=answer, client_request_id=answer.client_request_id)
    return Outcome("created", created=answer.body, client_request_id=answer.client_request_id)


def stops_posting(outcome: Outcome) -> bool:
    """True when this outcome says the target is down or refuses us: stop sending more."""
    return outcome.attempted and outcome.kind in ("unavailable", "denied")
